//! The lab end to end: a 2-node cluster from `svcnet lab up`, driven with real kubectl, with
//! real TCP and UDP traffic from pods and from the external host. The upstream e2e behaviours
//! of reference §8 that need traffic.

/// Each scenario as two tests: `<scenario>::svcnet` (svcnet's control plane) and
/// `<scenario>::upstream` (upstream's kube-apiserver and kube-controller-manager), with
/// svcnet's proxy on both: for what the control plane and the lab's kubelets serve.
macro_rules! on_svcnet_and_upstream {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[test]
            fn svcnet() {
                super::$scenario(crate::support::ControlPlane::Svcnet);
            }
            #[test]
            fn upstream() {
                super::$scenario(crate::support::ControlPlane::Upstream);
            }
        }
    )*};
}

mod attach;
mod maglev;
mod names;
mod port_forward;
mod sandbox;
mod scale;
mod support;
mod upstream;
mod volumes;

use std::time::Duration;

use support::{ControlPlane, Lab, distinct, wait_for};

const AGNHOST: &str = "registry.k8s.io/e2e-test-images/agnhost:2.53";

fn deployment(name: &str, replicas: u32, extra_pod_spec: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      {extra_pod_spec}
      containers:
        - name: netexec
          image: {AGNHOST}
          args: [netexec, --http-port=8080, --udp-port=8080]
          readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}
"
    )
}

fn cluster_ip(lab: &Lab, service: &str) -> String {
    lab.get(&["service", service], "{.spec.clusterIP}")
}

/// `n` answers to /hostname through `target` from the client pod, one connection each.
fn hostnames_from_client(lab: &Lab, target: &str, n: u32) -> String {
    lab.ask_from_pod("client", &[target, "--count", &n.to_string(), "--timeout-ms", "1000"])
}

/// Each scenario, as one test per setup: `<scenario>::svcnet` (svcnet's control plane and
/// proxy), `<scenario>::upstream` (upstream's kube-apiserver and kube-controller-manager,
/// svcnet's proxy) and `<scenario>::kube_proxy` (all upstream: kube-proxy in nftables mode on
/// every node). The scenarios describe Kubernetes behaviour, so they hold for every setup.
macro_rules! on_both_control_planes {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[test]
            fn svcnet() {
                super::$scenario(super::ControlPlane::Svcnet);
            }
            #[test]
            fn upstream() {
                super::$scenario(super::ControlPlane::Upstream);
            }
            #[test]
            fn kube_proxy() {
                super::$scenario(super::ControlPlane::UpstreamWithKubeProxy);
            }
        }
    )*};
}

mod dns;
mod dual_stack;
mod exec;
mod explain;
mod load_balancer;
mod node_address;
mod topology;

on_svcnet_and_upstream!(restart_policies_and_a_crashed_lab);

on_both_control_planes!(
    demo_shows_clusterip_and_nodeport_traffic,
    nodeport_clusterip_protocols_and_endpoints,
    session_affinity_and_local_external_traffic_policy,
    connections_survive_pod_deletion_and_agent_restart_and_down_leaves_nothing,
);

fn demo_shows_clusterip_and_nodeport_traffic(control_plane: ControlPlane) {
    // the lab needs none of the network tools: it talks netlink itself (upstream's kube-proxy
    // runs the nft program, so it stays for that setup)
    let without: &[&str] = match control_plane {
        ControlPlane::UpstreamWithKubeProxy => &["ip", "conntrack", "sysctl"],
        _ => &["ip", "nft", "conntrack", "sysctl"],
    };
    let path = Lab::path_without(without);
    let (lab, printed) = Lab::up_with_path_on(2, &["--demo"], Some(path.path()), control_plane);
    for line in [
        "DNS name demo from pod client: 10.96.",
        "ClusterIP from pod client: demo-",
        "NodePort on node-1 from the external host: demo-",
        "NodePort on node-2 from the external host: demo-",
        "LoadBalancer 10.240.0.200 from the external host: demo-",
        "ClusterIP from the external host (must fail): ERROR",
    ] {
        assert!(printed.contains(line), "missing {line:?} in:\n{printed}");
    }
    // the printed commands work as printed (curl through the lab's own exec/external)
    let command = printed
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("try: ")
                .filter(|c| c.contains("external") && c.contains(":30080"))
        })
        .expect("a NodePort command")
        .to_owned();
    let words: Vec<&str> = command.split_whitespace().collect();
    let program = if words[0] == "svcnet" {
        support::SVCNET
    } else {
        words[0]
    };
    let out = std::process::Command::new(program)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .args(&words[1..])
        .output()
        .unwrap();
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(answer.starts_with("demo-"), "{command}: {answer}");
    assert_eq!(lab.get(&["deployment", "demo"], "{.status.readyReplicas}"), "3");
}

/// On upstream's control plane, `kubectl logs` goes through kube-apiserver to the lab's
/// kubelet API, which answers only kube-apiserver (mutual TLS with the lab's CA).
#[test]
fn logs_through_upstream_s_api_server_and_the_kubelet_api() {
    let lab = Lab::up_on(1, ControlPlane::Upstream);
    lab.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: talker}\nspec:\n  containers: [{name: sh, image: busybox, command: [sh, -c, 'echo one; echo two; echo three; sleep 3600']}]\n",
    );
    let all = wait_for(
        "talker's output through kube-apiserver",
        Duration::from_secs(60),
        || {
            let (ok, out) = lab.kubectl(&["logs", "talker"]);
            (ok && out.contains("three")).then_some(out)
        },
    );
    assert_eq!(all, "one\ntwo\nthree\n");
    assert_eq!(lab.k(&["logs", "talker", "--tail=1"]).trim(), "three");
    // the kubelet API answers no one else on this machine
    let port = lab.get(&["node", "node-1"], "{.status.daemonEndpoints.kubeletEndpoint.Port}");
    assert!(
        !port.is_empty() && port != "0",
        "the Node reports its kubelet API port: {port:?}"
    );
    let anonymous = std::process::Command::new("curl")
        .args(["-sk", "--max-time", "5"])
        .arg(format!("https://127.0.0.1:{port}/containerLogs/default/talker/sh"))
        .output()
        .unwrap();
    assert!(
        !anonymous.status.success() && !String::from_utf8_lossy(&anonymous.stdout).contains("one"),
        "a client without the lab's certificate read logs: {:?}",
        anonymous
    );
    // while kube-apiserver's client certificate is let in (so the refusal above is the
    // certificate's doing)
    let dir = lab.state_dir().join("upstream");
    let with_cert = std::process::Command::new("curl")
        .args(["-s", "--max-time", "5", "--cacert"])
        .arg(dir.join("ca.crt"))
        .arg("--cert")
        .arg(dir.join("apiserver-kubelet-client.crt"))
        .arg("--key")
        .arg(dir.join("apiserver-kubelet-client.key"))
        .arg(format!(
            "https://127.0.0.1:{port}/containerLogs/default/talker/sh?tailLines=2"
        ))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&with_cert.stdout),
        "two\nthree\n",
        "{with_cert:?}"
    );
}

/// Logs and the proxy subresources need the API server to reach the lab's pods and their
/// output: svcnet's API server does through the lab's hooks; upstream's through its egress
/// selector (the lab's `CONNECT` proxy into a node's namespace) and the lab's kubelet API.
fn logs_and_proxies_reach_pods_through_the_api_server(control_plane: ControlPlane) {
    let lab = Lab::up_on(2, control_plane);
    lab.apply(&deployment("web", 2, ""));
    lab.apply(
        "apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: tcp, port: 80, targetPort: 8080}]
",
    );
    lab.apply(EMPTY_SERVICE);
    lab.wait_ready_pods("app=web", 2);
    let web_pod = lab.get(&["pods", "-l", "app=web"], "{.items[0].metadata.name}");
    // kubectl logs shows a container's output
    let logs = lab.k(&["logs", &web_pod]);
    assert!(logs.contains(&format!("netexec {web_pod} serving")), "{logs}");
    let (ok, text) = lab.kubectl(&["logs", &web_pod, "-c", "nope"]);
    assert!(
        !ok && text.contains(&format!("container nope is not valid for pod {web_pod}")),
        "{text}"
    );

    // the API server's service and pod proxies reach pods through the lab
    let via_proxy = lab.k(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/services/web:tcp/proxy/hostname",
    ]);
    assert!(via_proxy.starts_with("web-"), "{via_proxy}");
    // and so does `kubectl proxy`, the way users reach a service from their machine
    let (proxy, port) = lab.kubectl_proxy(30);
    let through_kubectl_proxy = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .arg(format!(
            "http://127.0.0.1:{port}/api/v1/namespaces/default/services/web:tcp/proxy/hostname"
        ))
        .output()
        .unwrap();
    support::stop(proxy);
    let answer = String::from_utf8_lossy(&through_kubectl_proxy.stdout).into_owned();
    assert!(answer.starts_with("web-"), "{answer}");
    let pod_ip = lab.get(&["pod", via_proxy.trim()], "{.status.podIP}");
    let echoed = lab.k(&[
        "get",
        "--raw",
        &format!(
            "/api/v1/namespaces/default/pods/{}:8080/proxy/echo?msg=hi",
            via_proxy.trim()
        ),
    ]);
    assert_eq!(echoed, "hi", "pod proxy to {pod_ip}");
    let (ok, text) = lab.kubectl(&["get", "--raw", "/api/v1/namespaces/default/services/empty/proxy/"]);
    assert!(
        !ok && text.contains(r#"no endpoints available for service "empty""#),
        "{text}"
    );
}

on_svcnet_and_upstream!(logs_and_proxies_reach_pods_through_the_api_server);

/// A Service that selects no pod.
const EMPTY_SERVICE: &str = "apiVersion: v1
kind: Service
metadata: {name: empty}
spec:
  selector: {app: nothing}
  ports: [{port: 80, targetPort: 8080}]
";

fn nodeport_clusterip_protocols_and_endpoints(control_plane: ControlPlane) {
    let lab = Lab::up_on(2, control_plane);
    lab.apply(&deployment("web", 2, ""));
    lab.apply(EMPTY_SERVICE);
    lab.apply(&support::client_pod("client", None));
    lab.apply(
        "apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports:
    - {name: tcp, port: 80, targetPort: 8080, protocol: TCP, nodePort: 30080}
    - {name: udp, port: 80, targetPort: 8080, protocol: UDP, nodePort: 30080}
---
apiVersion: v1
kind: Pod
metadata: {name: never-ready, labels: {app: unready}}
spec:
  containers:
    - name: netexec
      image: registry.k8s.io/e2e-test-images/agnhost:2.53
      args: [netexec, --http-port=8080]
      readinessProbe: {exec: {command: ['false']}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: unready-published}
spec:
  publishNotReadyAddresses: true
  selector: {app: unready}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: unready}
spec:
  selector: {app: unready}
  ports: [{port: 80, targetPort: 8080}]
",
    );
    lab.wait_ready_pods("app=web", 2);
    lab.wait_ready_pods("app=client", 1);
    let ip = cluster_ip(&lab, "web");
    let target = format!("{ip}:80");

    // ClusterIP from a pod, TCP and UDP on the same port
    let answers = wait_for("the ClusterIP to answer", Duration::from_secs(10), || {
        let a = hostnames_from_client(&lab, &target, 20);
        (!a.contains("ERROR")).then_some(a)
    });
    assert!(answers.lines().all(|l| l.starts_with("web-")), "{answers}");
    let udp = lab.ask_from_pod("client", &[&target, "--udp", "--request", "hostname", "--count", "5"]);
    assert!(
        udp.lines().count() == 5 && udp.lines().all(|l| l.starts_with("web-")),
        "{udp}"
    );

    // the NodePort from outside through both nodes, TCP and UDP
    for node_ip in ["10.240.0.11", "10.240.0.12"] {
        // each node's proxy programs the service on its own schedule (kube-proxy at most once
        // a second): wait until this node answers, then require every answer right
        wait_for(&format!("the NodePort on {node_ip}"), Duration::from_secs(10), || {
            (!lab
                .ask_from_outside(&[&format!("{node_ip}:30080")])
                .starts_with("ERROR"))
            .then_some(())
        });
        let tcp = lab.ask_from_outside(&[&format!("{node_ip}:30080"), "--count", "3"]);
        assert!(
            tcp.lines().count() == 3 && tcp.lines().all(|l| l.starts_with("web-")),
            "{node_ip}: {tcp}"
        );
        let udp = lab.ask_from_outside(&[&format!("{node_ip}:30080"), "--udp", "--request", "hostname"]);
        assert!(udp.starts_with("web-"), "{node_ip} UDP: {udp}");
    }
    // the ClusterIP is not reachable from outside the cluster
    let outside = lab.ask_from_outside(&[&target, "--timeout-ms", "1000"]);
    assert!(outside.starts_with("ERROR"), "{outside}");

    // describe tells a pod's story from the scheduler's and kubelet's events
    let web_pod = lab.get(&["pods", "-l", "app=web"], "{.items[0].metadata.name}");
    let described = lab.k(&["describe", "pod", &web_pod]);
    let events = described.split("Events:").nth(1).unwrap_or("");
    assert!(
        events.contains(&format!("Successfully assigned default/{web_pod} to node-"))
            && events.contains("default-scheduler")
            && events.contains("Started container netexec"),
        "{described}"
    );

    // no endpoints: refused at once (not a timeout)
    let empty = format!("{}:80", cluster_ip(&lab, "empty"));
    // (once the proxy programmed the service: kube-proxy syncs at most once a second)
    wait_for("a service without endpoints to refuse", Duration::from_secs(10), || {
        (hostnames_from_client(&lab, &empty, 1) == "ERROR refused").then_some(())
    });
    // publishNotReadyAddresses routes to a pod that is not ready; without it, refused
    let published = format!("{}:80", cluster_ip(&lab, "unready-published"));
    let answer = wait_for(
        "the unready pod behind publishNotReadyAddresses",
        Duration::from_secs(20),
        || {
            let a = hostnames_from_client(&lab, &published, 1);
            (a == "never-ready").then_some(a)
        },
    );
    assert_eq!(answer, "never-ready");
    let unready = format!("{}:80", cluster_ip(&lab, "unready"));
    wait_for(
        "a service whose only pod is not ready to refuse",
        Duration::from_secs(10),
        || (hostnames_from_client(&lab, &unready, 1) == "ERROR refused").then_some(()),
    );

    // scaling changes the endpoints: new pods get traffic, removed ones stop getting it
    lab.k(&["scale", "deployment", "web", "--replicas=4"]);
    lab.wait_ready_pods("app=web", 4);
    let seen = wait_for("traffic to all 4 pods", Duration::from_secs(10), || {
        let seen = distinct(&hostnames_from_client(&lab, &target, 40));
        (seen.len() == 4).then_some(seen)
    });
    assert!(seen.iter().all(|h| h.starts_with("web-")), "{seen:?}");
    lab.k(&["scale", "deployment", "web", "--replicas=1"]);
    let remaining = wait_for("one pod left", Duration::from_secs(30), || {
        let names = lab.get(&["pods", "-l", "app=web"], "{.items[*].metadata.name}");
        (names.split_whitespace().count() == 1).then_some(names)
    });
    let seen = wait_for("traffic to the one remaining pod", Duration::from_secs(10), || {
        let seen = distinct(&hostnames_from_client(&lab, &target, 20));
        (seen.len() == 1).then_some(seen)
    });
    assert_eq!(seen.into_iter().next().unwrap(), remaining.trim());

    // kubectl's generators (protobuf bodies): create a deployment, expose it, traffic flows
    lab.k(&[
        "create",
        "deployment",
        "made",
        &format!("--image={AGNHOST}"),
        "--replicas=2",
        "--port=8080",
        "--",
        "/agnhost",
        "netexec",
        "--http-port=8080",
    ]);
    lab.k(&["expose", "deployment", "made", "--port=80", "--target-port=8080"]);
    lab.wait_ready_pods("app=made", 2);
    let made = format!("{}:80", cluster_ip(&lab, "made"));
    let seen = wait_for("traffic to both created pods", Duration::from_secs(10), || {
        let seen = distinct(&hostnames_from_client(&lab, &made, 20));
        (seen.len() == 2).then_some(seen)
    });
    assert!(seen.iter().all(|h| h.starts_with("made-")), "{seen:?}");
}

fn session_affinity_and_local_external_traffic_policy(control_plane: ControlPlane) {
    let lab = Lab::up_on(2, control_plane);
    lab.apply(&deployment("web", 3, ""));
    lab.apply(&deployment(
        "local",
        1,
        "nodeSelector: {kubernetes.io/hostname: node-1}",
    ));
    lab.apply(&support::client_pod("client", None));
    lab.apply(
        "apiVersion: v1
kind: Service
metadata: {name: sticky}
spec:
  selector: {app: web}
  sessionAffinity: ClientIP
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: local}
spec:
  type: NodePort
  externalTrafficPolicy: Local
  selector: {app: local}
  ports: [{port: 80, targetPort: 8080, nodePort: 30090}]
---
apiVersion: v1
kind: Service
metadata: {name: cluster}
spec:
  type: NodePort
  selector: {app: local}
  ports: [{port: 80, targetPort: 8080, nodePort: 30091}]
",
    );
    lab.wait_ready_pods("app=web", 3);
    lab.wait_ready_pods("app=local", 1);
    lab.wait_ready_pods("app=client", 1);

    // ClientIP affinity: 15 requests, one pod; switched off, the requests spread again
    let sticky = format!("{}:80", cluster_ip(&lab, "sticky"));
    let answers = wait_for("the sticky service to answer", Duration::from_secs(10), || {
        let a = hostnames_from_client(&lab, &sticky, 15);
        (!a.contains("ERROR")).then_some(a)
    });
    assert_eq!(distinct(&answers).len(), 1, "{answers}");
    lab.k(&[
        "patch",
        "service",
        "sticky",
        "-p",
        r#"{"spec":{"sessionAffinity":"None"}}"#,
    ]);
    wait_for("requests to spread over the pods", Duration::from_secs(10), || {
        (distinct(&hostnames_from_client(&lab, &sticky, 30)).len() > 1).then_some(())
    });

    // externalTrafficPolicy Local keeps the client's address and only answers on nodes with
    // a local endpoint (the pod runs on node-1)
    let via_node1 = wait_for("the Local NodePort on node-1", Duration::from_secs(10), || {
        let a = lab.ask_from_outside(&["10.240.0.11:30090", "--request", "/clientip"]);
        (!a.starts_with("ERROR")).then_some(a)
    });
    assert!(
        via_node1.starts_with("10.240.0.100:"),
        "client address not preserved: {via_node1}"
    );
    let via_node2 = lab.ask_from_outside(&["10.240.0.12:30090", "--request", "/clientip", "--timeout-ms", "1000"]);
    assert!(
        via_node2.starts_with("ERROR"),
        "node-2 has no local endpoint: {via_node2}"
    );
    // with the Cluster policy both nodes answer, and node-2 masquerades the client
    let cluster = lab.ask_from_outside(&["10.240.0.12:30091", "--request", "/clientip"]);
    assert!(
        !cluster.starts_with("ERROR") && !cluster.starts_with("10.240.0.100:"),
        "{cluster}"
    );
}

/// The backend pod IP of the (masqueraded) NodePort connections conntrack knows on a node.
fn backends_in_conntrack(lab: &Lab, node: &str, node_port: u16) -> Vec<String> {
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &format!("svl-{}-{node}", lab.name),
            "conntrack",
            "-L",
            "-p",
            "tcp",
        ])
        .args(["--orig-port-dst", &node_port.to_string()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("ESTABLISHED"))
        .filter_map(|l| {
            // the reply direction's source is the pod
            let reply = l.split("src=").nth(2)?;
            reply.split_whitespace().next().map(str::to_owned)
        })
        .collect()
}

fn connections_survive_pod_deletion_and_agent_restart_and_down_leaves_nothing(control_plane: ControlPlane) {
    let lab = Lab::up_on(2, control_plane);
    lab.apply(&deployment("web", 3, ""));
    lab.apply(
        "apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: 30070}]
",
    );
    lab.wait_ready_pods("app=web", 3);
    wait_for("the NodePort to answer", Duration::from_secs(10), || {
        (!lab.ask_from_outside(&["10.240.0.11:30070"]).starts_with("ERROR")).then_some(())
    });
    let pid_file = lab.state_dir().join("proxies/node-1.pid");
    let proxy_before = std::fs::read_to_string(&pid_file).unwrap();

    std::thread::scope(|s| {
        let held =
            s.spawn(|| lab.ask_from_outside(&["10.240.0.11:30070", "--hold-ms", "8000", "--interval-ms", "100"]));
        let serving = wait_for("the held connection in conntrack", Duration::from_secs(3), || {
            backends_in_conntrack(&lab, "node1", 30070).into_iter().next()
        });
        // delete every other pod
        let pods = lab.get(
            &["pods", "-l", "app=web"],
            r#"{range .items[*]}{.metadata.name} {.status.podIP}{"\n"}{end}"#,
        );
        let others: Vec<&str> = pods
            .lines()
            .filter(|l| !l.ends_with(&format!(" {serving}")))
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        assert_eq!(others.len(), 2, "{pods} (serving {serving})");
        let mut args = vec!["delete", "pod", "--wait=false"];
        args.extend(&others);
        lab.k(&args);
        // kill the node agent; its supervisor starts a new one, which resyncs from scratch
        std::thread::sleep(Duration::from_secs(1));
        let pid: i32 = proxy_before.trim().parse().unwrap();
        assert!(
            std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status()
                .unwrap()
                .success()
        );
        let answer = held.join().unwrap();
        let last = answer.lines().last().unwrap_or("");
        assert!(last.starts_with("OK "), "the held connection broke: {answer}");
    });
    let proxy_after = wait_for("a new proxy", Duration::from_secs(10), || {
        std::fs::read_to_string(&pid_file).ok().filter(|p| *p != proxy_before)
    });
    assert_ne!(proxy_after, proxy_before);
    // the kubelets recorded stopping the deleted pods' containers
    let killing = wait_for("Killing events", Duration::from_secs(10), || {
        let names = lab.get(
            &["events", "--field-selector", "reason=Killing,source=kubelet"],
            "{.items[*].involvedObject.name}",
        );
        (names.split_whitespace().count() >= 2).then_some(names)
    });
    assert!(killing.split_whitespace().all(|n| n.starts_with("web-")), "{killing}");
    // and new connections through the restarted node work, to the replacement pods too
    lab.wait_ready_pods("app=web", 3);
    wait_for("new connections through node-1", Duration::from_secs(10), || {
        let a = lab.ask_from_outside(&["10.240.0.11:30070", "--count", "30"]);
        (!a.contains("ERROR") && distinct(&a).len() == 3).then_some(())
    });

    // deletion is graceful: SIGTERM, then SIGKILL once the grace period is over
    lab.apply(
        "apiVersion: v1
kind: Pod
metadata: {name: stubborn}
spec:
  terminationGracePeriodSeconds: 2
  containers: [{name: c, image: busybox, command: [sh, -c, 'trap \"\" TERM; sleep 4242']}]
",
    );
    wait_for("the stubborn pod to run", Duration::from_secs(20), || {
        (lab.get(&["pod", "stubborn"], "{.status.phase}") == "Running").then_some(())
    });
    let started = std::time::Instant::now();
    lab.k(&["delete", "pod", "stubborn"]);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "SIGTERM was not ignored for the grace period: {took:?}"
    );
    assert!(took < Duration::from_secs(15), "{took:?}");
    let (ok, text) = lab.kubectl(&["get", "pod", "stubborn"]);
    assert!(!ok && text.contains("not found"), "{text}");
    let left = std::process::Command::new("pgrep")
        .args(["-f", "sleep 4242"])
        .output()
        .unwrap();
    assert!(left.stdout.is_empty(), "the process outlived its pod");

    // down leaves no namespace, process or file behind
    let state = lab.state_dir();
    lab.down();
    let namespaces = String::from_utf8_lossy(
        &std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(!namespaces.contains(&format!("svl-{}-", lab.name)), "{namespaces}");
    assert!(!state.exists(), "{} is still there", state.display());
    let mut leftovers = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&format!("/run/svcnet-lab/{}/", lab.name))
            || cmdline.contains(&format!("--name {} ", lab.name))
        {
            leftovers.push(cmdline);
        }
    }
    assert!(leftovers.is_empty(), "processes left: {leftovers:?}");
}

/// On both control planes: `logs --previous` and `logs -f` go through kube-apiserver to the
/// lab's kubelet API there.
fn restart_policies_and_a_crashed_lab(control_plane: ControlPlane) {
    let lab = Lab::up_on(1, control_plane);
    let pod = |name: &str, policy: &str, script: &str| {
        format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: {policy}
  containers: [{{name: c, image: busybox, command: [sh, -c, '{script}'], volumeMounts: [{{name: state, mountPath: /state}}]}}]
  volumes: [{{name: state, emptyDir: {{}}}}]
"
        )
    };
    lab.apply(&pod("crashes", "Always", "echo started; exit 3"));
    // a restarted container's root is fresh: what it keeps across runs is in an emptyDir
    lab.apply(&pod(
        "fails-once",
        "OnFailure",
        "test -e /state/failed || { touch /state/failed /tmp/run-1; exit 1; }; test ! -e /tmp/run-1",
    ));
    lab.apply(&pod("fails", "Never", "exit 2"));
    lab.apply(&pod("succeeds", "Never", "true"));
    lab.apply(&pod(
        "ticker",
        "Always",
        "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done",
    ));
    // Always: restarted again and again (with back-off), the pod stays Running
    wait_for("two restarts", Duration::from_secs(30), || {
        let restarts: u32 = lab
            .get(&["pod", "crashes"], "{.status.containerStatuses[0].restartCount}")
            .parse()
            .ok()?;
        (restarts >= 2).then_some(())
    });
    assert_eq!(lab.get(&["pod", "crashes"], "{.status.phase}"), "Running");
    // between restarts it waits out its back-off as upstream shows it: CrashLoopBackOff, the
    // previous run in lastState, and Warning BackOff events
    let waiting = wait_for("CrashLoopBackOff", Duration::from_secs(30), || {
        let reason = lab.get(
            &["pod", "crashes"],
            "{.status.containerStatuses[0].state.waiting.reason}",
        );
        (reason == "CrashLoopBackOff").then_some(reason)
    });
    assert_eq!(waiting, "CrashLoopBackOff");
    // each run logs on its own; the one before is there for --previous
    let previous = lab.k(&["logs", "crashes", "--previous"]);
    assert!(!previous.trim().is_empty(), "no previous run's output");
    let (ok, text) = lab.kubectl(&["logs", "ticker", "--previous"]);
    assert!(!ok && text.contains("previous terminated container"), "{text}");
    let last_code = lab.get(
        &["pod", "crashes"],
        "{.status.containerStatuses[0].lastState.terminated.exitCode}",
    );
    assert!(!last_code.is_empty() && last_code != "0", "lastState: {last_code:?}");
    let listed = lab.k(&["get", "pod", "crashes"]);
    assert!(
        listed.contains("CrashLoopBackOff") || listed.contains("Running"),
        "{listed}"
    );
    let events = lab.k(&[
        "get",
        "events",
        "--field-selector=involvedObject.name=crashes",
        "-o",
        "custom-columns=TYPE:.type,REASON:.reason",
    ]);
    for (kind, reason) in [
        ("Warning", "BackOff"),
        ("Normal", "Pulled"),
        ("Normal", "Created"),
        ("Normal", "Started"),
    ] {
        assert!(
            events
                .lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == [kind, reason]),
            "no {kind} {reason} event:\n{events}"
        );
    }
    // kubectl logs -f streams output as it is written (from the last line, 5 a second)...
    let follower = lab.kubectl_background(3, &["logs", "-f", "--tail=1", "ticker"]);
    let followed = String::from_utf8_lossy(&follower.wait_with_output().unwrap().stdout).into_owned();
    let ticks: Vec<&str> = followed.lines().collect();
    assert!(ticks.len() >= 10, "{followed}");
    assert!(
        ticks.windows(2).all(|w| {
            let n = |l: &str| l.strip_prefix("tick ").and_then(|n| n.parse::<u32>().ok());
            n(w[1]) == n(w[0]).map(|x| x + 1)
        }),
        "{followed}"
    );
    // ...and ends when the pod goes
    let follower = lab.kubectl_background(60, &["logs", "-f", "ticker"]);
    std::thread::sleep(Duration::from_millis(500));
    lab.k(&["delete", "pod", "ticker", "--grace-period=1", "--wait=false"]);
    let started = std::time::Instant::now();
    let out = follower.wait_with_output().unwrap();
    assert!(
        out.status.success() && started.elapsed() < Duration::from_secs(20),
        "kubectl logs -f outlived the pod: {:?} after {:?}",
        out.status,
        started.elapsed()
    );
    // OnFailure: restarted after the failure, then done
    wait_for("fails-once to succeed on its restart", Duration::from_secs(30), || {
        (lab.get(&["pod", "fails-once"], "{.status.phase}") == "Succeeded").then_some(())
    });
    assert_eq!(
        lab.get(&["pod", "fails-once"], "{.status.containerStatuses[0].restartCount}"),
        "1"
    );
    // Never: the exit code decides the phase
    wait_for("fails to fail", Duration::from_secs(20), || {
        (lab.get(&["pod", "fails"], "{.status.phase}") == "Failed").then_some(())
    });
    assert_eq!(
        lab.get(
            &["pod", "fails"],
            "{.status.containerStatuses[0].state.terminated.exitCode}"
        ),
        "2"
    );
    wait_for("succeeds to succeed", Duration::from_secs(20), || {
        (lab.get(&["pod", "succeeds"], "{.status.phase}") == "Succeeded").then_some(())
    });

    // a lab whose daemon died is cleaned up by the next `up` of the same name (brought up on
    // svcnet's control plane below; once is enough)
    if control_plane != ControlPlane::Svcnet {
        return;
    }
    let crashed_pods: Vec<String> = lab
        .get(&["pods"], "{.items[*].metadata.uid}")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert!(!crashed_pods.is_empty());
    let pid: i32 = std::fs::read_to_string(lab.state_dir().join("pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let out = std::process::Command::new(support::SVCNET)
        .args(["lab", "up", "--name", &lab.name, "--nodes", "1"])
        .output()
        .unwrap();
    let text = support::text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("namespaces a previous lab"), "{text}");
    let pods = lab.get(&["pods"], "{.items[*].metadata.name}");
    assert!(pods.is_empty(), "the new lab starts empty: {pods}");
    // and no process of the crashed lab's pods is left (their inits included)
    let survivors: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| crashed_pods.iter().any(|uid| c.contains(uid.as_str())))
        .collect();
    assert!(survivors.is_empty(), "left from the crashed lab: {survivors:?}");
}
