//! ServiceCIDR and IPAddress (networking.k8s.io/v1) through kubectl: the default ServiceCIDR
//! mirrors the flag, every allocated ClusterIP has its IPAddress, a ServiceCIDR added at run
//! time extends a full range, a ServiceCIDR in use is kept until its last address goes, and
//! an IPAddress a client creates reserves its address.

use crate::api::ApiServer as Server;
use crate::{kubectl, kubectl_until};

fn run(server: &Server, args: &[&str]) -> String {
    let (ok, text) = kubectl(server, args);
    assert!(ok, "kubectl {args:?} failed:\n{text}");
    text
}

fn apply(server: &Server, manifest: &str) -> String {
    let file = server.dir.path().join("manifest.yaml");
    std::fs::write(&file, manifest).unwrap();
    run(server, &["apply", "-f", file.to_str().unwrap()])
}

fn service(name: &str) -> String {
    format!("apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec: {{ports: [{{port: 80}}]}}\n")
}

fn cluster_ip(server: &Server, name: &str) -> String {
    run(server, &["get", "service", name, "-o", "jsonpath={.spec.clusterIP}"])
}

#[test]
fn service_cidrs_extend_the_range_and_ip_addresses_follow_services() {
    // a /29 holds six addresses; `kubernetes` takes the first
    let server = Server::start_with(&["--service-cluster-ip-range", "10.96.0.0/29"]);
    let listed = kubectl_until(&server, &["get", "servicecidrs"], |t| t.contains("kubernetes"));
    assert!(listed.contains("10.96.0.0/29"), "{listed}");
    kubectl_until(
        &server,
        &[
            "get",
            "servicecidr",
            "kubernetes",
            "-o",
            "jsonpath={.status.conditions[0].status}",
        ],
        |t| t == "True",
    );
    let finalizers = run(
        &server,
        &[
            "get",
            "servicecidr",
            "kubernetes",
            "-o",
            "jsonpath={.metadata.finalizers}",
        ],
    );
    assert!(
        finalizers.contains("networking.k8s.io/service-cidr-finalizer"),
        "{finalizers}"
    );

    // every allocated address has its IPAddress naming its Service
    for i in 0..5 {
        apply(&server, &service(&format!("s{i}")));
    }
    let ip = cluster_ip(&server, "s0");
    let parent = run(&server, &["get", "ipaddress", &ip]);
    assert!(parent.contains("services/default/s0"), "{parent}");
    let all = run(&server, &["get", "ipaddresses", "-o", "name"]);
    assert_eq!(all.lines().count(), 6, "{all}");

    // the range is full; a ServiceCIDR added now extends it without a restart
    let file = server.dir.path().join("s5.yaml");
    std::fs::write(&file, service("s5")).unwrap();
    let (ok, text) = kubectl(&server, &["apply", "-f", file.to_str().unwrap()]);
    assert!(!ok && text.contains("range is full"), "{text}");
    apply(
        &server,
        "apiVersion: networking.k8s.io/v1\nkind: ServiceCIDR\nmetadata: {name: extra}\nspec: {cidrs: [10.97.0.0/29]}\n",
    );
    kubectl_until(&server, &["apply", "-f", file.to_str().unwrap()], |_| true);
    let s5 = cluster_ip(&server, "s5");
    assert!(s5.starts_with("10.97.0."), "s5 got {s5}");

    // invalid ServiceCIDRs are refused with upstream's messages
    let bad = server.dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: networking.k8s.io/v1\nkind: ServiceCIDR\nmetadata: {name: bad}\nspec: {cidrs: [10.98.0.1/24]}\n",
    )
    .unwrap();
    let (ok, text) = kubectl(&server, &["apply", "-f", bad.to_str().unwrap()]);
    assert!(
        !ok && text.contains("must not have bits set beyond the prefix length"),
        "{text}"
    );
    let (ok, text) = kubectl(
        &server,
        &[
            "patch",
            "servicecidr",
            "extra",
            "--type=merge",
            "-p",
            r#"{"spec":{"cidrs":["10.99.0.0/29"]}}"#,
        ],
    );
    assert!(!ok && text.contains("field is immutable"), "{text}");

    // the ServiceCIDR in use is kept, Terminating, until its last address goes
    run(&server, &["delete", "servicecidr", "extra", "--wait=false"]);
    kubectl_until(
        &server,
        &[
            "get",
            "servicecidr",
            "extra",
            "-o",
            "jsonpath={.status.conditions[0].reason}",
        ],
        |t| t == "Terminating",
    );
    run(&server, &["delete", "service", "s5"]);
    kubectl_until(&server, &["get", "servicecidrs", "-o", "name"], |t| {
        !t.contains("extra")
    });

    // a client's IPAddress reserves its address: the Service asking for it is refused
    run(&server, &["delete", "service", "s0"]);
    kubectl_until(&server, &["get", "ipaddresses", "-o", "name"], |t| {
        !t.contains(&format!("/{ip}\n"))
    });
    apply(
        &server,
        &format!(
            "apiVersion: networking.k8s.io/v1\nkind: IPAddress\nmetadata: {{name: {ip}}}\nspec: {{parentRef: {{group: example.com, resource: gateways, name: gw}}}}\n"
        ),
    );
    let wants = server.dir.path().join("wants.yaml");
    std::fs::write(
        &wants,
        format!("apiVersion: v1\nkind: Service\nmetadata: {{name: wants}}\nspec: {{clusterIP: {ip}, ports: [{{port: 80}}]}}\n"),
    )
    .unwrap();
    let (ok, text) = kubectl(&server, &["apply", "-f", wants.to_str().unwrap()]);
    assert!(!ok && text.contains("provided IP is already allocated"), "{text}");
    // an IPAddress without a parent is refused as upstream refuses it
    let orphan = server.dir.path().join("orphan.yaml");
    std::fs::write(
        &orphan,
        "apiVersion: networking.k8s.io/v1\nkind: IPAddress\nmetadata: {name: 10.96.0.7}\nspec: {}\n",
    )
    .unwrap();
    let (ok, text) = kubectl(&server, &["apply", "-f", orphan.to_str().unwrap()]);
    assert!(!ok && text.contains("spec.parentRef: Required value"), "{text}");
}

#[test]
fn a_deleted_ip_address_of_a_service_comes_back() {
    let server = Server::start();
    apply(&server, &service("web"));
    let ip = cluster_ip(&server, "web");
    run(&server, &["delete", "ipaddress", &ip]);
    let back = kubectl_until(&server, &["get", "ipaddress", &ip], |t| {
        t.contains("services/default/web")
    });
    assert!(back.contains(&ip), "{back}");
}
