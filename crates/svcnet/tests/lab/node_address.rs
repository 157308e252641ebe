//! A node's address changes (`svcnet lab node node-1 --ip …`): its kubelet reports the new
//! address, NodePorts answer on it and no longer on the old one within a second, with no
//! restart of the node's proxy, both with every node address serving NodePorts and with
//! `nodePortAddresses` set to the switch subnet (where the proxy must follow the Node object);
//! pods on other nodes still reach the node's pods.
//!
//! Upstream's kube-proxy instead exits when its Node's addresses change (its DaemonSet, here
//! the lab's supervisor, starts it again); the all-upstream setup checks that it does and that
//! the new address works once it is back.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{ControlPlane, Lab, SVCNET, distinct, netexec_pod, wait_for};

const OLD: &str = "10.240.0.11";
const NEW: &str = "10.240.0.61";

fn backend(node: u32) -> String {
    netexec_pod(&format!("web-{node}"), "web", Some(node), "")
}

fn proxy_pid(lab: &Lab) -> String {
    std::fs::read_to_string(lab.state_dir().join("proxies/node-1.pid")).expect("node-1's proxy pid file")
}

/// One request from the external host: the answer, or `ERROR …`.
fn once(lab: &Lab, target: &str) -> String {
    lab.ask_from_outside(&[target, "--timeout-ms", "150"])
}

fn node_address_change(control_plane: ControlPlane, extra: &[&str]) {
    // kube-proxy restarts itself on a node address change; svcnet's proxy follows in place
    let proxy_restarts = matches!(control_plane, ControlPlane::UpstreamWithKubeProxy);
    let within = if proxy_restarts {
        Duration::from_secs(30)
    } else {
        Duration::from_secs(1)
    };
    let (lab, _) = Lab::up_with_path_on(2, extra, None, control_plane);
    lab.apply(&backend(1));
    lab.apply(&backend(2));
    lab.apply(&crate::support::client_pod("client", Some(2)));
    lab.apply(
        "apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
",
    );
    lab.wait_ready_pods("app=web", 2);
    let (old, new) = (format!("{OLD}:30080"), format!("{NEW}:30080"));
    wait_for("the NodePort on node-1's address", Duration::from_secs(20), || {
        (!once(&lab, &old).starts_with("ERROR")).then_some(())
    });
    let pid = proxy_pid(&lab);

    let out = Command::new(SVCNET)
        .args(["lab", "node", "node-1", "--ip", NEW, "--name", &lab.name])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "lab node failed: {said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains(&format!("{OLD} -> {NEW}")), "{said}");
    let changed = Instant::now();
    let address = lab.get(
        &["node", "node-1"],
        r#"{.status.addresses[?(@.type=="InternalIP")].address}"#,
    );
    assert_eq!(address, NEW, "the Node object reports the new address");

    // within a second: the new address answers, the old one does not
    if proxy_restarts {
        wait_for("kube-proxy to be started again", within, || {
            (proxy_pid(&lab) != pid).then_some(())
        });
    }
    loop {
        let (on_new, on_old) = (once(&lab, &new), once(&lab, &old));
        if !on_new.starts_with("ERROR") && on_old.starts_with("ERROR") {
            break;
        }
        assert!(
            changed.elapsed() < within,
            "{within:?} after the change: the new address answered {on_new:?}, the old one {on_old:?}"
        );
    }
    eprintln!("NodePort on the new address after {} ms", changed.elapsed().as_millis());
    let answers = distinct(&lab.ask_from_outside(&[&new, "--count", "30", "--timeout-ms", "1000"]));
    assert_eq!(
        answers,
        ["web-1", "web-2"].map(String::from).into(),
        "every endpoint through the new address"
    );
    if !proxy_restarts {
        assert_eq!(proxy_pid(&lab), pid, "node-1's proxy was not restarted");
    }

    // pods elsewhere still reach node-1's pods (node-2 routes node-1's pod CIDR anew)
    let cluster_ip = lab.get(&["service", "web"], "{.spec.clusterIP}");
    let inside = distinct(&lab.ask_from_pod(
        "client",
        &[&format!("{cluster_ip}:80"), "--count", "30", "--timeout-ms", "1000"],
    ));
    assert_eq!(inside, ["web-1", "web-2"].map(String::from).into());
    let status = lab.lab_status();
    assert!(
        status.lines().any(|l| l.starts_with("node-1") && l.contains(NEW)),
        "{status}"
    );
}

mod every_node_address {
    use super::*;

    #[test]
    fn svcnet() {
        node_address_change(ControlPlane::Svcnet, &[]);
    }

    #[test]
    fn upstream() {
        node_address_change(ControlPlane::Upstream, &[]);
    }

    #[test]
    fn kube_proxy() {
        node_address_change(ControlPlane::UpstreamWithKubeProxy, &[]);
    }
}

mod node_port_addresses_cidr {
    use super::*;

    #[test]
    fn svcnet() {
        node_address_change(ControlPlane::Svcnet, &["--nodeport-addresses", "10.240.0.0/24"]);
    }
}
