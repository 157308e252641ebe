//! Cluster DNS in the lab, on every setup: `kube-system/kube-dns` (10.96.0.10) answers from
//! pods through the node's proxy, per Kubernetes' DNS specification: Service names through
//! the pod's search path (curl and getent use the system resolver), headless Services with
//! their ready pods and per-pod names, SRV for named ports, PTR, ExternalName CNAMEs and pod
//! names; every pod gets upstream's resolv.conf.

use std::time::Duration;

use crate::support::{ControlPlane, Lab, SVCNET, netexec_pod, wait_for};

fn web_pod(name: &str, extra_spec: &str) -> String {
    netexec_pod(name, "web", None, extra_spec)
}

/// `svcnet agnhost dig NAME --type T` from the client pod.
fn dig(lab: &Lab, name: &str, record_type: &str) -> String {
    let out = std::process::Command::new(SVCNET)
        .args([
            "lab",
            "exec",
            "client",
            "--name",
            &lab.name,
            "--",
            SVCNET,
            "agnhost",
            "dig",
            name,
            "--type",
            record_type,
        ])
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn in_client(lab: &Lab, command: &[&str]) -> String {
    let out = std::process::Command::new(SVCNET)
        .args(["lab", "exec", "client", "--name", &lab.name, "--"])
        .args(command)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn cluster_dns(control_plane: ControlPlane) {
    let lab = Lab::up_on(2, control_plane);
    lab.apply(&web_pod("web-0", "  hostname: web-0\n  subdomain: web-headless\n"));
    lab.apply(&web_pod("web-1", "  hostname: web-1\n  subdomain: web-headless\n"));
    lab.apply(
        "apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  containers: [{name: shell, image: busybox, command: [sleep, infinity]}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web-headless}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: docs}
spec:
  type: ExternalName
  externalName: kubernetes.io
",
    );
    lab.wait_ready_pods("app=web", 2);
    wait_for("the cluster DNS's two ready pods", Duration::from_secs(60), || {
        let ready = lab.get(
            &["pods", "-n", "kube-system", "-l", "k8s-app=kube-dns"],
            r#"{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}"#,
        );
        (ready.lines().filter(|l| *l == "True").count() == 2).then_some(())
    });
    let dns_ip = lab.get(&["service", "kube-dns", "-n", "kube-system"], "{.spec.clusterIP}");
    assert_eq!(dns_ip, "10.96.0.10");

    // the pod's resolver: upstream's search path and ndots
    let resolv = in_client(&lab, &["cat", "/etc/resolv.conf"]);
    assert_eq!(
        resolv,
        "search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5"
    );
    // a Service by its short name, as the Kubernetes docs use it (curl, the system resolver)
    let answer = wait_for("curl http://web/hostname", Duration::from_secs(30), || {
        let out = in_client(&lab, &["curl", "-s", "--max-time", "2", "http://web/hostname"]);
        out.starts_with("web-").then_some(out)
    });
    assert!(answer == "web-0" || answer == "web-1", "{answer}");
    let cluster_ip = lab.get(&["service", "web"], "{.spec.clusterIP}");
    let full = in_client(&lab, &["getent", "hosts", "web.default.svc.cluster.local"]);
    assert!(full.starts_with(&cluster_ip), "{full}");

    // headless: the ready pods, and each pod by its hostname
    let pods: Vec<String> = ["web-0", "web-1"]
        .iter()
        .map(|p| lab.get(&["pod", p], "{.status.podIP}"))
        .collect();
    let headless = dig(&lab, "web-headless.default.svc.cluster.local", "A");
    for ip in &pods {
        assert!(headless.contains(ip), "{headless}");
    }
    let one = dig(&lab, "web-0.web-headless.default.svc.cluster.local", "A");
    assert!(one.contains(&pods[0]) && !one.contains(&pods[1]), "{one}");

    // SRV for the named port: the Service itself, and each pod when headless
    let srv = dig(&lab, "_http._tcp.web.default.svc.cluster.local", "SRV");
    assert!(srv.contains("SRV 0 100 80 web.default.svc.cluster.local."), "{srv}");
    let srv = dig(&lab, "_http._tcp.web-headless.default.svc.cluster.local", "SRV");
    assert!(
        srv.contains("8080 web-0.web-headless.default.svc.cluster.local."),
        "{srv}"
    );
    assert!(
        srv.contains("8080 web-1.web-headless.default.svc.cluster.local."),
        "{srv}"
    );

    // PTR, ExternalName, pods, the schema version, and names that do not exist
    let reversed: Vec<&str> = cluster_ip.split('.').rev().collect();
    let ptr = dig(&lab, &format!("{}.in-addr.arpa", reversed.join(".")), "PTR");
    assert!(ptr.contains("PTR web.default.svc.cluster.local."), "{ptr}");
    let cname = dig(&lab, "docs.default.svc.cluster.local", "A");
    assert!(cname.contains("CNAME kubernetes.io."), "{cname}");
    let dashed = pods[0].replace('.', "-");
    let pod = dig(&lab, &format!("{dashed}.default.pod.cluster.local"), "A");
    assert!(pod.contains(&pods[0]), "{pod}");
    let version = dig(&lab, "dns-version.cluster.local", "TXT");
    assert!(version.contains("1.1.0"), "{version}");
    let missing = dig(&lab, "nothing.default.svc.cluster.local", "A");
    assert!(
        missing.contains("status: Non-Existent Domain") || missing.contains("NXDomain"),
        "{missing}"
    );

    // a new Service is answered within moments; a deleted one goes
    lab.apply("apiVersion: v1\nkind: Service\nmetadata: {name: late}\nspec: {selector: {app: web}, ports: [{port: 81, targetPort: 8080}]}\n");
    wait_for("the new Service's name", Duration::from_secs(10), || {
        let out = in_client(&lab, &["getent", "hosts", "late"]);
        (!out.is_empty()).then_some(())
    });
    lab.k(&["delete", "service", "late"]);
    wait_for("the deleted Service's name to go", Duration::from_secs(10), || {
        in_client(&lab, &["getent", "hosts", "late"]).is_empty().then_some(())
    });
}

on_both_control_planes!(cluster_dns);
