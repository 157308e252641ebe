//! A dual-stack lab (`svcnet lab up --ip-family dual`): nodes, pods and Services have IPv6
//! addresses beside their IPv4 ones. A `RequireDualStack` Service gets a ClusterIP of each
//! family, its EndpointSlices one per family, and its ClusterIP and NodePort answer over
//! IPv6, TCP and UDP, from pods and from the external host, spread over both backends, with
//! svcnet's proxy and with upstream's kube-proxy.

use std::time::Duration;

use crate::support::{ControlPlane, Lab, distinct, wait_for};

fn dual_stack_services_answer_over_ipv6(control_plane: ControlPlane) {
    let (lab, printed) = Lab::up_with_path_on(2, &["--ip-family", "dual"], None, control_plane);
    assert!(printed.contains("node-1: 10.240.0.11 fd00:240::11"), "{printed}");
    lab.apply(&crate::deployment("web", 2, ""));
    lab.apply(&crate::support::client_pod("client", Some(1)));
    lab.apply(
        "apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  ipFamilyPolicy: RequireDualStack
  selector: {app: web}
  ports:
    - {name: tcp, port: 80, targetPort: 8080, protocol: TCP}
    - {name: udp, port: 80, targetPort: 8080, protocol: UDP}
",
    );
    lab.wait_ready_pods("app=web", 2);
    lab.wait_ready_pods("app=client", 1);

    let families = lab.get(&["service", "web"], "{.spec.ipFamilies}");
    assert_eq!(families, r#"["IPv4","IPv6"]"#);
    let ips: Vec<String> = serde_json::from_str(&lab.get(&["service", "web"], "{.spec.clusterIPs}")).unwrap();
    let v6 = ips.get(1).cloned().unwrap_or_default();
    assert!(v6.starts_with("fd00:96::"), "{ips:?}");
    let pod_ips = lab.get(&["pods", "-l", "app=client"], "{.items[0].status.podIPs[*].ip}");
    assert!(
        pod_ips.starts_with("10.244.1.") && pod_ips.contains(" fd00:244:0:1::"),
        "{pod_ips}"
    );
    // the pod's hosts file names it under both addresses, as the kubelet writes it
    let (ok, hosts) = lab.kubectl(&["exec", "client", "--", "cat", "/etc/hosts"]);
    assert!(ok, "{hosts}");
    for ip in pod_ips.split_whitespace() {
        assert!(
            hosts.contains(&format!("{ip}\tclient\n")),
            "{ip} is missing from:\n{hosts}"
        );
    }
    let node_addresses = lab.get(&["node", "node-2"], "{.status.addresses[*].address}");
    assert!(node_addresses.contains("fd00:240::12"), "{node_addresses}");
    let types = wait_for("an IPv6 EndpointSlice", Duration::from_secs(20), || {
        let types = lab.get(
            &["endpointslices", "-l", "kubernetes.io/service-name=web"],
            "{.items[*].addressType}",
        );
        types.contains("IPv6").then_some(types)
    });
    assert!(types.contains("IPv4"), "{types}");

    // the ClusterIP over IPv6 from a pod, TCP and UDP, reaching both backends
    let target = format!("[{v6}]:80");
    // (a proxy may program the second IPv6 endpoint a sync after the first: wait for both)
    let answers = wait_for(
        "the IPv6 ClusterIP to answer from both backends",
        Duration::from_secs(20),
        || {
            let a = crate::hostnames_from_client(&lab, &target, 30);
            (!a.contains("ERROR") && distinct(&a).len() == 2).then_some(a)
        },
    );
    assert!(answers.lines().all(|l| l.starts_with("web-")), "{answers}");
    let udp = lab.ask_from_pod("client", &[&target, "--udp", "--request", "hostname", "--count", "5"]);
    assert!(
        udp.lines().count() == 5 && udp.lines().all(|l| l.starts_with("web-")),
        "{udp}"
    );

    // the NodePort on every node's IPv6 address, from the external host
    let node_port = lab.get(&["service", "web"], "{.spec.ports[0].nodePort}");
    for node in ["fd00:240::11", "fd00:240::12"] {
        let target = format!("[{node}]:{node_port}");
        let answers = wait_for("the IPv6 NodePort to answer", Duration::from_secs(20), || {
            let a = lab.ask_from_outside(&[&target, "--count", "10", "--timeout-ms", "1000"]);
            (!a.contains("ERROR")).then_some(a)
        });
        assert!(
            answers.lines().count() == 10 && answers.lines().all(|l| l.starts_with("web-")),
            "{target}: {answers}"
        );
    }
    // and IPv4 still works beside it
    let v4 = format!("{}:80", ips[0]);
    let answers = crate::hostnames_from_client(&lab, &v4, 5);
    assert!(answers.lines().all(|l| l.starts_with("web-")), "{answers}");
}

on_both_control_planes!(dual_stack_services_answer_over_ipv6);
