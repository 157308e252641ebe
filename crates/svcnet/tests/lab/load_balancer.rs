//! `type: LoadBalancer` in a 2-node lab, on every setup: the lab's load-balancer controller
//! gives each Service an address from its pool (status ingress, ipMode VIP), the external
//! host reaches it through the announcing node, `loadBalancerSourceRanges` and
//! `allocateLoadBalancerNodePorts: false` are honoured, an externalTrafficPolicy Local
//! Service is announced only from a node with an endpoint (and keeps the client's address),
//! and a Service that stops being a LoadBalancer gives its address back.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::support::{ControlPlane, Lab, distinct, netexec_pod, wait_for};

const EXTERNAL_HOST: &str = "10.240.0.100";

fn backend(name: &str, app: &str, node: u32) -> String {
    netexec_pod(name, app, Some(node), "")
}

fn load_balancer(name: &str, app: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  type: LoadBalancer
  selector: {{app: {app}}}
  ports: [{{port: 80, targetPort: 8080}}]
{extra_spec}"
    )
}

/// Waits for `service`'s ingress address and checks it is a VIP from the lab's pool.
fn ingress(lab: &Lab, service: &str) -> String {
    let ip = wait_for(
        &format!("an ingress address for {service}"),
        Duration::from_secs(20),
        || {
            let ip = lab.get(&["service", service], "{.status.loadBalancer.ingress[0].ip}");
            (!ip.is_empty()).then_some(ip)
        },
    );
    let parsed: Ipv4Addr = ip.parse().expect("an IPv4 ingress address");
    assert!(
        (Ipv4Addr::new(10, 240, 0, 200)..=Ipv4Addr::new(10, 240, 0, 250)).contains(&parsed),
        "{service}'s address {ip} is from the lab's pool"
    );
    let mode = lab.get(&["service", service], "{.status.loadBalancer.ingress[0].ipMode}");
    assert_eq!(mode, "VIP", "{service}'s ingress is a VIP");
    ip
}

/// The answers the external host gets over `count` requests to `target` (`/hostname` unless
/// `request` says otherwise).
fn from_outside(lab: &Lab, target: &str, request: &str, count: u32) -> Vec<String> {
    let count = count.to_string();
    let out = lab.ask_from_outside(&[target, "--request", request, "--count", &count, "--timeout-ms", "700"]);
    out.lines().map(str::to_owned).collect()
}

/// Waits until the external host's answers from `target` are exactly `want`.
fn expect_outside(lab: &Lab, target: &str, want: &[&str], why: &str) {
    let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = distinct(&from_outside(lab, target, "/hostname", 30).join("\n"));
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "waiting for {why}: got {got:?}, not {want:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn load_balancers(control_plane: ControlPlane) {
    let (lab, _) = Lab::up_with_path_on(2, &[], None, control_plane);
    lab.apply(&backend("web-1", "web", 1));
    lab.apply(&backend("web-2", "web", 2));
    lab.apply(&backend("solo", "solo", 2));
    lab.apply(&crate::support::client_pod("client", Some(1)));
    lab.apply(&load_balancer("web", "web", ""));
    lab.wait_ready_pods("app=web", 2);
    lab.wait_ready_pods("app=solo", 1);

    // an address from the pool, reached from outside on every endpoint, and from a pod
    let ip = ingress(&lab, "web");
    // who wrote what, as managedFields name them: the load balancer the Service's status,
    // the kubelet the Pod's
    let managers = "{range .metadata.managedFields[*]}{.manager}/{.subresource};{end}";
    let service_managers = lab.get(&["service", "web"], managers);
    assert!(
        service_managers.contains("svcnet-lab-load-balancer/status;"),
        "{service_managers}"
    );
    let pod_managers = lab.get(&["pod", "web-1"], managers);
    assert!(pod_managers.contains("kubelet/status;"), "{pod_managers}");
    let target = format!("{ip}:80");
    expect_outside(
        &lab,
        &target,
        &["web-1", "web-2"],
        "the external host to reach both endpoints",
    );
    let inside = distinct(&lab.ask_from_pod("client", &[&target, "--count", "30", "--timeout-ms", "1000"]));
    assert_eq!(
        inside,
        ["web-1", "web-2"].map(String::from).into(),
        "a pod reaches the address too"
    );
    let events = lab.get(
        &[
            "events",
            "--field-selector",
            "involvedObject.name=web,involvedObject.kind=Service",
        ],
        "{.items[*].reason}",
    );
    assert!(
        events.contains("IPAllocated") && events.contains("nodeAssigned"),
        "{events}"
    );

    // source ranges: the external host is let in only when a range holds its address
    lab.k(&[
        "patch",
        "service",
        "web",
        "-p",
        r#"{"spec":{"loadBalancerSourceRanges":["192.0.2.0/24"]}}"#,
    ]);
    wait_for(
        "the source range to shut the external host out",
        Duration::from_secs(20),
        || {
            let answers = from_outside(&lab, &target, "/hostname", 3);
            answers.iter().all(|a| a.starts_with("ERROR")).then_some(())
        },
    );
    let range = format!(r#"{{"spec":{{"loadBalancerSourceRanges":["{EXTERNAL_HOST}/32"]}}}}"#);
    lab.k(&["patch", "service", "web", "-p", &range]);
    expect_outside(
        &lab,
        &target,
        &["web-1", "web-2"],
        "a range holding the external host to let it in",
    );

    // no NodePorts, still load-balanced
    lab.apply(&load_balancer(
        "no-node-ports",
        "web",
        "  allocateLoadBalancerNodePorts: false\n",
    ));
    let bare = ingress(&lab, "no-node-ports");
    assert_ne!(bare, ip, "each Service gets an address of its own");
    let node_port = lab.get(&["service", "no-node-ports"], "{.spec.ports[0].nodePort}");
    assert_eq!(node_port, "", "allocateLoadBalancerNodePorts: false allocates none");
    expect_outside(
        &lab,
        &format!("{bare}:80"),
        &["web-1", "web-2"],
        "a LoadBalancer without NodePorts",
    );

    // Local: announced from the endpoint's node only, and the client's address is kept
    lab.apply(&load_balancer("solo", "solo", "  externalTrafficPolicy: Local\n"));
    let solo = format!("{}:80", ingress(&lab, "solo"));
    expect_outside(&lab, &solo, &["solo"], "the Local Service from its endpoint's node");
    let seen = from_outside(&lab, &solo, "/clientip", 1);
    assert!(
        seen[0].starts_with(&format!("{EXTERNAL_HOST}:")),
        "externalTrafficPolicy Local keeps the client's address: {seen:?}"
    );
    // the endpoint moves to node-1: so does the announcement
    lab.k(&["delete", "pod", "solo", "--grace-period=0"]);
    lab.apply(&backend("solo", "solo", 1));
    lab.wait_ready_pods("app=solo", 1);
    expect_outside(
        &lab,
        &solo,
        &["solo"],
        "the announcement to follow the endpoint to node-1",
    );
    let describe = lab.k(&["describe", "service", "solo"]);
    assert!(describe.contains("announcing from node \"node-1\""), "{describe}");

    // no longer a LoadBalancer: the status is cleared and the address goes back to the pool
    lab.k(&[
        "patch",
        "service",
        "web",
        "-p",
        r#"{"spec":{"type":"ClusterIP","loadBalancerSourceRanges":null}}"#,
    ]);
    wait_for("web's ingress to be cleared", Duration::from_secs(20), || {
        lab.get(&["service", "web"], "{.status.loadBalancer.ingress}")
            .is_empty()
            .then_some(())
    });
    lab.apply(&load_balancer("late", "web", ""));
    assert_eq!(
        ingress(&lab, "late"),
        ip,
        "the freed address is the lowest free one again"
    );
}

on_both_control_planes!(load_balancers);
