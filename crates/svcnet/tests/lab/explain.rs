//! `svcnet explain` in a lab, for a healthy Service and for each failure the debugging page
//! shows (docs/debugging-services.md): a selector that matches nothing, a pod that is not
//! ready, a wrong targetPort, a Local policy on a node without endpoints, a source range
//! that refuses the client, and a NodePort reached on a node address that does not serve it.
//! Each asserts the reason explain gives, and real traffic confirms the verdict; `--probe`
//! traces a real connection with nftables' trace and must agree with the walk.

use std::process::Command;
use std::time::Duration;

use crate::support::{Lab, SVCNET, client_pod, wait_for};

fn explain(lab: &Lab, args: &[&str]) -> String {
    let out = Command::new(SVCNET)
        .args(["explain", "--lab", &lab.name])
        .args(args)
        .output()
        .unwrap();
    let text = crate::support::text(&out);
    assert!(out.status.success(), "svcnet explain {args:?} failed:\n{text}");
    text
}

/// A netexec pod declaring its port 8080, on `node`.
fn web_pod(name: &str, app: &str, node: u32, readiness_port: u16) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {app}}}}}
spec:
  nodeName: node-{node}
  containers:
    - name: netexec
      image: registry.k8s.io/e2e-test-images/agnhost:2.53
      args: [netexec, --http-port=8080]
      ports: [{{containerPort: 8080}}]
      readinessProbe: {{tcpSocket: {{port: {readiness_port}}}, periodSeconds: 1}}
"
    )
}

fn service(name: &str, spec: &str) -> String {
    format!("apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec: {spec}\n")
}

on_svcnet_and_upstream!(explain_names_the_reason_for_each_failure);

fn explain_names_the_reason_for_each_failure(control_plane: crate::support::ControlPlane) {
    // node-2's address does not serve node ports
    let extra = ["--no-dns", "--nodeport-addresses", "10.240.0.11/32"];
    let (lab, _) = Lab::up_with_path_on(2, &extra, None, control_plane);
    lab.apply(&client_pod("client", Some(1)));
    lab.apply(&web_pod("web-1", "web", 1, 8080));
    lab.apply(&web_pod("web-2", "web", 2, 8080));
    // never ready: nothing listens on 9999
    lab.apply(&web_pod("sleepy", "web", 2, 9999));
    lab.apply(&web_pod("solo", "solo", 2, 8080));
    let port = "ports: [{port: 80, targetPort: 8080}]";
    lab.apply(&service("web", &format!("{{selector: {{app: web}}, {port}}}")));
    lab.apply(&service("nomatch", &format!("{{selector: {{app: nothing}}, {port}}}")));
    lab.apply(&service(
        "wrongport",
        "{selector: {app: web}, ports: [{port: 80, targetPort: 9090}]}",
    ));
    lab.apply(&service(
        "local",
        &format!("{{type: NodePort, externalTrafficPolicy: Local, selector: {{app: solo}}, {port}}}"),
    ));
    lab.apply(&service(
        "ranged",
        &format!("{{type: LoadBalancer, loadBalancerSourceRanges: [192.0.2.0/24], selector: {{app: web}}, {port}}}"),
    ));
    lab.apply(&service(
        "web-np",
        &format!("{{type: NodePort, selector: {{app: web}}, {port}}}"),
    ));
    lab.wait_ready_pods("app=web", 2);
    lab.wait_ready_pods("app=solo", 1);
    wait_for("the client", Duration::from_secs(60), || {
        (lab.get(&["pod", "client"], "{.status.phase}") == "Running").then_some(())
    });
    let lb_ip = wait_for("a load-balancer address", Duration::from_secs(30), || {
        let ip = lab.get(&["service", "ranged"], "{.status.loadBalancer.ingress[0].ip}");
        (!ip.is_empty()).then_some(ip)
    });
    // the proxies have the endpoints (explain compiles what they should have)
    let web = format!("{}:80", lab.get(&["service", "web"], "{.spec.clusterIP}"));
    wait_for("web answering", Duration::from_secs(30), || {
        lab.ask_from_pod("client", &[&web]).starts_with("web-").then_some(())
    });

    // healthy: both ready pods are used, half the connections each, rules as compiled
    let healthy = explain(&lab, &["client", "svc/web"]);
    assert!(
        healthy.contains("web-1 on node-1: used") && healthy.contains("web-2 on node-2: used"),
        "{healthy}"
    );
    assert!(
        healthy.contains("50.0%  DNAT to") && healthy.contains("(web-1 on node-1); the client's address is kept"),
        "{healthy}"
    );
    assert!(
        healthy.contains("the node's rules equal the rules compiled"),
        "{healthy}"
    );
    // pod not ready: listed, not used, and why
    assert!(healthy.contains("sleepy on node-2: not used: not ready"), "{healthy}");

    // selector matches nothing: no endpoints, refused; and it is
    let nomatch = explain(&lab, &["client", "svc/nomatch"]);
    assert!(nomatch.contains("does the selector match any pod?"), "{nomatch}");
    assert!(nomatch.contains("100.0%  rejected by a REJECT rule"), "{nomatch}");
    let nomatch_ip = format!("{}:80", lab.get(&["service", "nomatch"], "{.spec.clusterIP}"));
    assert_eq!(lab.ask_from_pod("client", &[&nomatch_ip]), "ERROR refused");

    // wrong targetPort: the pods declare 8080, the service sends to 9090; the pod refuses
    let wrong = explain(&lab, &["client", "svc/wrongport"]);
    assert!(
        wrong.contains("pod web-1 declares container port(s) 8080 but the service sends to 9090: is targetPort right?"),
        "{wrong}"
    );
    assert!(wrong.contains("DNAT to 10.244."), "{wrong}");
    let wrong_ip = format!("{}:80", lab.get(&["service", "wrongport"], "{.spec.clusterIP}"));
    assert_eq!(lab.ask_from_pod("client", &[&wrong_ip]), "ERROR refused");

    // externalTrafficPolicy Local on a node without an endpoint: dropped for outside clients
    let local = explain(&lab, &["external", "svc/local", "--node", "node-1"]);
    assert!(
        local.contains("solo on node-2: not used: on another node, and the traffic policy is Local"),
        "{local}"
    );
    assert!(local.contains("100.0%  dropped"), "{local}");
    let node_port = lab.get(&["service", "local"], "{.spec.ports[0].nodePort}");
    let answer = lab.ask_from_outside(&[&format!("10.240.0.11:{node_port}"), "--timeout-ms", "1000"]);
    assert_eq!(answer, "ERROR timeout");

    // a source range that leaves the external host out
    let ranged = explain(&lab, &["external", "svc/ranged"]);
    assert!(
        ranged.contains("loadBalancerSourceRanges 192.0.2.0/24: the client 10.240.0.100 is outside them"),
        "{ranged}"
    );
    assert!(
        ranged.contains("=> prerouting  firewall-check[1]") && ranged.contains("100.0%  dropped"),
        "{ranged}"
    );
    let answer = lab.ask_from_outside(&[&format!("{lb_ip}:80"), "--timeout-ms", "1000"]);
    assert_eq!(answer, "ERROR timeout");

    // a NodePort on node-2's address, which nodePortAddresses leaves out: no rule applies
    let web_np = lab.get(&["service", "web-np"], "{.spec.ports[0].nodePort}");
    let unserved = explain(&lab, &["external", &format!("10.240.0.12:{web_np}")]);
    assert!(
        unserved.contains("no address of node node-2 is in nodePortAddresses (10.240.0.11/32)"),
        "{unserved}"
    );
    assert!(
        unserved.contains("no rule rewrote it: delivered to the node itself"),
        "{unserved}"
    );
    let answer = lab.ask_from_outside(&[&format!("10.240.0.12:{web_np}"), "--timeout-ms", "1000"]);
    assert_eq!(answer, "ERROR refused");
    // while node-1's address serves it
    let served = explain(&lab, &["external", &format!("10.240.0.11:{web_np}")]);
    assert!(served.contains("the node port is served on 10.240.0.11"), "{served}");

    // --probe: a real connection, traced in the node, takes one of the walk's paths
    for args in [
        vec!["client", "svc/web"],
        vec!["client", "svc/nomatch"],
        vec!["node/node-2", "svc/web"],
        vec!["external", "svc/local", "--node", "node-1"],
        vec!["external", &format!("10.240.0.11:{web_np}")],
        vec!["external", &format!("10.240.0.12:{web_np}")],
    ] {
        let mut with_probe = args.clone();
        with_probe.push("--probe");
        let probed = explain(&lab, &with_probe);
        assert!(
            probed.contains("agrees with the walk: the kernel's path is one of the walk's"),
            "{args:?}:\n{probed}"
        );
    }
    let probed = explain(&lab, &["client", "svc/web", "--probe"]);
    assert!(
        probed.contains("Probe: a real connection: answered, to 10.244."),
        "{probed}"
    );
    assert!(
        probed.contains(
            "kernel trace: count-prerouting > filter-prerouting-pre-dnat > nat-prerouting > services > cluster-ip-lb"
        ),
        "{probed}"
    );
    let probed = explain(&lab, &["client", "svc/nomatch", "--probe"]);
    assert!(probed.contains("Probe: a real connection: refused"), "{probed}");

    // any cluster: the kubeconfig, the node's namespace and the proxy's settings, no --lab
    let out = Command::new(SVCNET)
        .args(["explain", "--kubeconfig", lab.kubeconfig.to_str().unwrap(), "--netns"])
        .arg(format!("svl-{}-node1", lab.name))
        .args(["--cluster-cidr", "10.244.0.0/16", "--service-cidr", "10.96.0.0/16"])
        .args(["--nodeport-addresses", "10.240.0.11/32", "client", "svc/web"])
        .output()
        .unwrap();
    let anywhere = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{anywhere}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        anywhere.contains("web-1 on node-1: used") && anywhere.contains("50.0%  DNAT to"),
        "{anywhere}"
    );
    assert!(
        anywhere.contains("the node's rules equal the rules compiled"),
        "{anywhere}"
    );

    // -o json, for tools
    let json = explain(&lab, &["client", "svc/web", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["verdicts"].as_array().map(Vec::len), Some(2), "{json}");
    assert_eq!(v["kernel"]["Ok"]["rulesMatch"], serde_json::Value::Bool(true), "{json}");
}
