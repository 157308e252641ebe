//! Dataplane system tests: real nftables rules in network namespaces, real TCP and UDP
//! traffic between real processes. Needs root, `ip`, `nft` and `conntrack` (the README's test
//! command installs them); without them every test fails saying so.

#[path = "../common/api.rs"]
mod api;
mod conformance;
mod evaluator;
mod world;

use std::collections::BTreeSet;
use std::time::Duration;

use svcnet_dataplane::backend::BackendKind;
use svcnet_dataplane::syncer::SyncKind;
use world::World;

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Upstream's "ClusterIP general" case, on two nodes.
fn cluster_ip_general(backend: BackendKind) {
    let mut w = World::new(2, backend);
    w.add_pod(
        0,
        "pod1",
        "{app: one, multi: yes}",
        &[80, 8443, 5353, 53],
        &[("web", 80, "TCP")],
        true,
    );
    w.add_pod(1, "pod2", "{multi: yes}", &[80, 8443, 5353, 53], &[], true);
    w.add_pod(0, "client", "{role: client}", &[], &[], true);
    w.apply_service(
        "metadata: {name: svc1}\nspec: {selector: {app: one}, ports: [{name: http, port: 80, targetPort: web}]}",
    );
    w.apply_service(
        "metadata: {name: svc2}\nspec: {selector: {multi: 'yes'}, ports: [
          {name: http, port: 80}, {name: https, port: 443, targetPort: 8443},
          {name: dns-udp, port: 53, protocol: UDP}, {name: dns-tcp, port: 53, targetPort: 5353}]}",
    );
    w.sync();
    let client = w.pod("client").ns.clone();
    let (ip1, ip2) = (w.cluster_ip("svc1"), w.cluster_ip("svc2"));

    assert_eq!(
        w.get(&client, &format!("{ip1}:80"), "/hostname"),
        "pod1",
        "named targetPort"
    );
    assert_eq!(w.answers(&client, &format!("{ip2}:80"), 30), set(&["pod1", "pod2"]));
    assert_eq!(
        w.answers(&client, &format!("{ip2}:443"), 30),
        set(&["pod1", "pod2"]),
        "port → targetPort"
    );
    assert_eq!(
        w.answers(&client, &format!("{ip2}:53"), 30),
        set(&["pod1", "pod2"]),
        "53/TCP → 5353"
    );
    let udp: BTreeSet<String> = (0..20)
        .map(|_| w.udp(&client, &format!("{ip2}:53"), "hostname", None))
        .collect();
    assert_eq!(udp, set(&["pod1", "pod2"]));

    // pod traffic to a ClusterIP keeps its source address
    let pod_ip = w.pod("client").ip.to_string();
    assert!(
        w.get(&client, &format!("{ip1}:80"), "/clientip")
            .starts_with(&format!("{pod_ip}:"))
    );
    // wrong port on a live ClusterIP: rejected at once; unallocated ClusterIP: dropped
    assert_eq!(w.get(&client, &format!("{ip1}:443"), "/"), "ERROR refused");
    assert_eq!(w.udp(&client, &format!("{ip2}:80"), "hostname", None), "ERROR refused");
    // the external host, where the node's default route goes, answers for an address in the
    // service range and one outside it: what escapes the rules is seen, not lost
    w.nets.local_route(&w.external, "172.30.99.0/24");
    w.nets.local_route(&w.external, "172.31.0.0/24");
    w.nets.route(&w.external, "10.180.0.0/16", Some("192.168.0.2"), None);
    let sink = [env!("CARGO_BIN_EXE_svcnet"), "agnhost", "netexec", "--name", "beyond"];
    w.nets.spawn(
        &w.external.clone(),
        &[&sink[..], &["--http-port", "80", "--exit-after", "60"]].concat(),
    );
    let escaped = (0..20)
        .map(|_| w.get(&client, "172.31.0.9:80", "/hostname"))
        .find(|a| a == "beyond");
    assert_eq!(
        escaped.as_deref(),
        Some("beyond"),
        "an address outside the service range escapes"
    );
    assert_eq!(w.get(&client, "172.30.99.99:80", "/hostname"), "ERROR timeout");
}

fn hairpin_is_masqueraded(backend: BackendKind) {
    let mut w = World::new(1, backend);
    w.add_pod(0, "pod1", "{app: one}", &[80], &[], true);
    w.apply_service("metadata: {name: svc1}\nspec: {selector: {app: one}, ports: [{port: 80}]}");
    w.sync();
    let pod = w.pod("pod1");
    let seen = w.get(&pod.ns, &format!("{}:80", w.cluster_ip("svc1")), "/clientip");
    assert!(!seen.starts_with("ERROR"), "{seen}");
    assert!(
        !seen.starts_with(&format!("{}:", pod.ip)),
        "a pod reaching itself must be masqueraded, saw {seen}"
    );
}

fn node_ports_on_every_node_with_masquerade(backend: BackendKind) {
    let mut w = World::new(2, backend);
    w.add_pod(0, "pod1", "{app: np}", &[9376], &[], true);
    w.add_pod(1, "pod2", "{app: np}", &[9376], &[], true);
    w.apply_service("metadata: {name: np}\nspec: {type: NodePort, selector: {app: np}, ports: [{name: http, port: 80, targetPort: 9376}]}");
    w.sync();
    let np = w.node_port("np", 0);
    let ext = w.external.clone();
    for node in ["192.168.0.2", "192.168.0.3"] {
        assert_eq!(
            w.answers(&ext, &format!("{node}:{np}"), 30),
            set(&["pod1", "pod2"]),
            "via {node}"
        );
        let seen = w.get(&ext, &format!("{node}:{np}"), "/clientip");
        assert!(
            !seen.starts_with(world::EXTERNAL_IP),
            "externalTrafficPolicy=Cluster masquerades, saw {seen}"
        );
    }
    // the ClusterIP is not reachable from outside the cluster
    assert_eq!(
        w.get(&ext, &format!("{}:80", w.cluster_ip("np")), "/"),
        "ERROR unreachable"
    );
}

fn external_traffic_policy_local_keeps_the_client_address(backend: BackendKind) {
    let mut w = World::new(2, backend);
    w.add_pod(1, "pod2", "{app: local}", &[80], &[], true);
    w.add_pod(0, "client", "{role: client}", &[], &[], true);
    w.apply_service(
        "metadata: {name: local}\nspec: {type: NodePort, externalTrafficPolicy: Local, selector: {app: local}, ports: [{port: 80}]}",
    );
    w.sync();
    let np = w.node_port("local", 0);
    let ext = w.external.clone();
    let seen = w.get(&ext, &format!("192.168.0.3:{np}"), "/clientip");
    assert!(
        seen.starts_with(&format!("{}:", world::EXTERNAL_IP)),
        "source preserved, saw {seen}"
    );
    assert_eq!(
        w.get(&ext, &format!("192.168.0.2:{np}"), "/"),
        "ERROR timeout",
        "no local endpoint: dropped"
    );
    // in-cluster clients still reach it through any node
    let client = w.pod("client").ns.clone();
    assert_eq!(
        w.get(&client, &format!("{}:80", w.cluster_ip("local")), "/hostname"),
        "pod2"
    );
    assert_eq!(w.get(&client, &format!("192.168.0.2:{np}"), "/hostname"), "pod2");
}

fn internal_traffic_policy_local(backend: BackendKind) {
    let mut w = World::new(2, backend);
    w.add_pod(1, "pod2", "{app: itp}", &[80], &[], true);
    w.add_pod(0, "client1", "{role: client}", &[], &[], true);
    w.add_pod(1, "client2", "{role: client}", &[], &[], true);
    w.apply_service(
        "metadata: {name: itp}\nspec: {internalTrafficPolicy: Local, selector: {app: itp}, ports: [{port: 80}]}",
    );
    w.sync();
    let target = format!("{}:80", w.cluster_ip("itp"));
    let (c1, c2) = (w.pod("client1").ns.clone(), w.pod("client2").ns.clone());
    assert_eq!(w.get(&c2, &target, "/hostname"), "pod2");
    assert_eq!(w.get(&c1, &target, "/"), "ERROR timeout", "no local endpoint: dropped");
}

fn no_endpoints_is_refused_at_once(backend: BackendKind) {
    let mut w = World::new(1, backend);
    w.add_pod(0, "client", "{role: client}", &[], &[], true);
    w.apply_service("metadata: {name: empty}\nspec: {type: NodePort, selector: {app: nothing}, ports: [{port: 80}]}");
    w.sync();
    let client = w.pod("client").ns.clone();
    let started = std::time::Instant::now();
    assert_eq!(
        w.get(&client, &format!("{}:80", w.cluster_ip("empty")), "/"),
        "ERROR refused"
    );
    let np = w.node_port("empty", 0);
    let ext = w.external.clone();
    assert_eq!(w.get(&ext, &format!("192.168.0.2:{np}"), "/"), "ERROR refused");
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "REJECT, not DROP: {:?}",
        started.elapsed()
    );
}

fn session_affinity_sticks_and_expires(backend: BackendKind) {
    let mut w = World::new(1, backend);
    w.add_pod(0, "pod1", "{app: sticky}", &[80], &[], true);
    w.add_pod(0, "pod2", "{app: sticky}", &[80], &[], true);
    w.add_pod(0, "client", "{role: client}", &[], &[], true);
    w.apply_service(
        "metadata: {name: sticky}\nspec: {type: NodePort, selector: {app: sticky}, sessionAffinity: ClientIP, sessionAffinityConfig: {clientIP: {timeoutSeconds: 2}}, ports: [{port: 80}]}",
    );
    w.sync();
    let client = w.pod("client").ns.clone();
    let target = format!("{}:80", w.cluster_ip("sticky"));
    // one answer, and that answer a pod: 15 identical errors are not stickiness
    let one_pod = |answers: std::collections::BTreeSet<String>| {
        answers.len() == 1 && answers.iter().all(|a| a == "pod1" || a == "pod2")
    };
    let sticky = w.answers(&client, &target, 15);
    assert!(one_pod(sticky.clone()), "15 requests land on one pod: {sticky:?}");
    let ext = w.external.clone();
    let np = format!("192.168.0.2:{}", w.node_port("sticky", 0));
    let sticky = w.answers(&ext, &np, 15);
    assert!(one_pod(sticky.clone()), "also through the NodePort: {sticky:?}");
    // the client is remembered, then forgotten after the timeout
    let node = w.node_ns(0).to_owned();
    let listing = |w: &World| w.nets.exec_ok(&node, &["nft", "list", "table", "ip", "svcnet"]);
    let client_ip = w.pod("client").ip.to_string();
    assert!(listing(&w).contains(&client_ip));
    std::thread::sleep(Duration::from_millis(3000));
    assert!(
        !listing(&w).contains(&format!("{client_ip} expires")),
        "affinity expired"
    );
    // switching affinity off spreads requests again
    w.apply_service("metadata: {name: sticky}\nspec: {type: NodePort, selector: {app: sticky}, sessionAffinity: None, ports: [{port: 80}]}");
    w.sync();
    assert_eq!(w.answers(&client, &target, 30), set(&["pod1", "pod2"]));
}

fn endpoint_churn_keeps_established_connections(backend: BackendKind) {
    let mut w = World::new(1, backend);
    w.add_pod(0, "pod1", "{app: churn}", &[80], &[], true);
    w.add_pod(0, "pod2", "{app: churn}", &[80], &[], true);
    w.add_pod(0, "client", "{role: client}", &[], &[], true);
    w.apply_service("metadata: {name: churn}\nspec: {selector: {app: churn}, ports: [{port: 80}]}");
    w.sync();
    let (held, serving) = world::hold_reporting(&w.pod("client").ns, &format!("{}:80", w.cluster_ip("churn")), 3000);
    assert!(
        serving == "pod1" || serving == "pod2",
        "the held connection reached {serving}"
    );
    w.add_pod(0, "pod3", "{app: churn}", &[80], &[], true);
    w.sync();
    // the endpoint the connection uses goes: terminating, then gone
    w.set_terminating(&serving);
    w.sync();
    w.forget_pod(&serving);
    w.sync();
    let result = held.join().unwrap();
    assert!(
        result.starts_with("OK ") && result.ends_with(&format!("from {serving}")),
        "established connection to {serving} broke: {result}"
    );
}

fn proxy_restart_resets_no_connection(backend: BackendKind) {
    let mut w = World::new(1, backend);
    w.add_pod(0, "pod1", "{app: r}", &[80], &[], true);
    w.add_pod(0, "client", "{role: client}", &[], &[], true);
    w.apply_service("metadata: {name: r}\nspec: {type: NodePort, selector: {app: r}, ports: [{port: 80}]}");
    w.sync();
    let handles = [
        world::hold(&w.pod("client").ns, &format!("{}:80", w.cluster_ip("r")), 3000),
        world::hold(&w.external, &format!("192.168.0.2:{}", w.node_port("r", 0)), 3000),
    ];
    std::thread::sleep(Duration::from_millis(700));
    // a new proxy process knows nothing: its first sync is full and replaces the table
    for node in &mut w.nodes {
        node.syncer = svcnet_dataplane::syncer::Syncer::new(backend.open(Some(&node.ns)).unwrap());
    }
    let reports = w.sync();
    assert_eq!(reports[0].kind, SyncKind::Full);
    for h in handles {
        let result = h.join().unwrap();
        assert!(result.starts_with("OK "), "connection broken by the restart: {result}");
    }
}

fn udp_flow_moves_when_its_endpoint_goes(backend: BackendKind) {
    let mut w = World::new(1, backend);
    w.add_pod(0, "old", "{app: dns}", &[53], &[], true);
    w.add_pod(0, "client", "{role: client}", &[], &[], true);
    w.apply_service("metadata: {name: dns}\nspec: {selector: {app: dns}, ports: [{port: 53, protocol: UDP}]}");
    w.sync();
    let client = w.pod("client").ns.clone();
    let target = format!("{}:53", w.cluster_ip("dns"));
    assert_eq!(w.udp(&client, &target, "hostname", Some(40000)), "old");
    // replace the endpoint; the old pod keeps running, so only conntrack cleanup moves the flow
    w.set_ready("old", false);
    w.add_pod(0, "new", "{app: dns}", &[53], &[], true);
    w.sync();
    assert_eq!(w.udp(&client, &target, "hostname", Some(40000)), "new");
}

fn udp_service_scaled_from_zero_starts_answering(backend: BackendKind) {
    let mut w = World::new(1, backend);
    w.add_pod(0, "client", "{role: client}", &[], &[], true);
    w.apply_service("metadata: {name: dns}\nspec: {selector: {app: dns}, ports: [{port: 53, protocol: UDP}]}");
    w.sync();
    let client = w.pod("client").ns.clone();
    let target = format!("{}:53", w.cluster_ip("dns"));
    assert_eq!(w.udp(&client, &target, "hostname", Some(40001)), "ERROR refused");
    w.add_pod(0, "dns1", "{app: dns}", &[53], &[], true);
    w.sync();
    assert_eq!(w.udp(&client, &target, "hostname", Some(40001)), "dns1");
}

fn publish_not_ready_addresses_and_ignored_services(backend: BackendKind) {
    let mut w = World::new(1, backend);
    w.add_pod(0, "unready", "{app: pnr}", &[80], &[], false);
    w.add_pod(0, "client", "{role: client}", &[], &[], true);
    w.apply_service("metadata: {name: pnr}\nspec: {selector: {app: pnr}, ports: [{port: 80}]}");
    w.sync();
    let client = w.pod("client").ns.clone();
    let target = format!("{}:80", w.cluster_ip("pnr"));
    assert_eq!(
        w.get(&client, &target, "/"),
        "ERROR refused",
        "unready pods receive nothing"
    );
    w.apply_service(
        "metadata: {name: pnr}\nspec: {publishNotReadyAddresses: true, selector: {app: pnr}, ports: [{port: 80}]}",
    );
    w.sync();
    assert_eq!(w.get(&client, &target, "/hostname"), "unready");
    // a service for another proxy is left alone (its ClusterIP is just an unused service IP)
    w.apply_service(
        "metadata: {name: pnr, labels: {service.kubernetes.io/service-proxy-name: other}}\nspec: {publishNotReadyAddresses: true, selector: {app: pnr}, ports: [{port: 80}]}",
    );
    w.sync();
    assert_eq!(w.get(&client, &target, "/"), "ERROR timeout");
    w.apply_service(
        "metadata: {name: pnr}\nspec: {publishNotReadyAddresses: true, selector: {app: pnr}, ports: [{port: 80}]}",
    );
    w.sync();
    assert_eq!(
        w.get(&client, &target, "/hostname"),
        "unready",
        "removing the label restores traffic"
    );
}

fn syncs_touch_only_what_changed(backend: BackendKind) {
    let mut w = World::new(1, backend);
    w.add_pod(0, "pod1", "{app: a}", &[80], &[], true);
    w.apply_service("metadata: {name: a}\nspec: {selector: {app: a}, ports: [{port: 80}]}");
    assert_eq!(w.sync()[0].kind, SyncKind::Full);
    assert_eq!(w.sync()[0].kind, SyncKind::NoChange, "a repeated sync does nothing");
    w.apply_service("metadata: {name: b}\nspec: {selector: {app: a}, ports: [{port: 81, targetPort: 80}]}");
    let r = w.sync()[0];
    assert_eq!(r.kind, SyncKind::Incremental);
    assert!(r.operations <= 4, "adding one service: {r:?}");
    w.delete_service("b");
    let r = w.sync()[0];
    assert_eq!(r.kind, SyncKind::Incremental);
    assert!(r.operations <= 4, "deleting one service: {r:?}");
    let client_ns = w.pod("pod1").ns.clone();
    assert_eq!(
        w.get(&client_ns, &format!("{}:80", w.cluster_ip("a")), "/hostname"),
        "pod1"
    );
}

fn node_port_addresses_restrict_where_node_ports_listen(backend: BackendKind) {
    let mut w = World::new(1, backend);
    w.add_pod(0, "pod1", "{app: np}", &[80], &[], true);
    let node = w.node_ns(0).to_owned();
    w.nets.address(&node, "eth0", "192.168.0.12/24");
    w.config.node_port_addresses = vec!["192.168.0.2/32".parse().unwrap()];
    w.apply_service("metadata: {name: np}\nspec: {type: NodePort, selector: {app: np}, ports: [{port: 80}]}");
    w.sync();
    let np = w.node_port("np", 0);
    let ext = w.external.clone();
    assert_eq!(w.get(&ext, &format!("192.168.0.2:{np}"), "/hostname"), "pod1");
    // the other address is not a NodePort address: nothing is DNATed, the node itself refuses
    assert_eq!(w.get(&ext, &format!("192.168.0.12:{np}"), "/"), "ERROR refused");
}

fn external_and_load_balancer_ips_with_source_ranges(backend: BackendKind) {
    let mut w = World::new(1, backend);
    w.add_pod(0, "pod1", "{app: lb}", &[80], &[], true);
    let ext = w.external.clone();
    for ip in ["192.168.99.11", "1.2.3.4"] {
        w.nets.route(&ext, ip, Some("192.168.0.2"), None);
    }
    w.apply_service(
        "metadata: {name: lb}\nspec: {type: LoadBalancer, externalIPs: [192.168.99.11], loadBalancerSourceRanges: [10.0.0.0/8], selector: {app: lb}, ports: [{port: 80}]}",
    );
    w.set_load_balancer_ip("lb", "1.2.3.4");
    w.sync();
    assert_eq!(w.get(&ext, "192.168.99.11:80", "/hostname"), "pod1", "external IP");
    assert_eq!(
        w.get(&ext, "1.2.3.4:80", "/"),
        "ERROR timeout",
        "source outside loadBalancerSourceRanges: dropped"
    );
    w.apply_service(
        "metadata: {name: lb}\nspec: {type: LoadBalancer, externalIPs: [192.168.99.11], loadBalancerSourceRanges: [192.168.0.0/24], selector: {app: lb}, ports: [{port: 80}]}",
    );
    w.set_load_balancer_ip("lb", "1.2.3.4");
    w.sync();
    assert_eq!(
        w.get(&ext, "1.2.3.4:80", "/hostname"),
        "pod1",
        "source inside the ranges"
    );
}

fn ipv6_node_ports_and_dual_stack_cluster_ips(backend: BackendKind) {
    let mut w = World::new(2, backend);
    w.add_pod(1, "pod2", "{app: v6}", &[80], &[], true);
    w.add_pod(0, "client", "{role: client}", &[], &[], true);
    w.apply_service(
        "metadata: {name: v6}\nspec: {type: NodePort, ipFamilyPolicy: RequireDualStack, selector: {app: v6}, ports: [{port: 80}]}",
    );
    w.sync();
    let ips = w.cluster_ips("v6");
    assert_eq!(ips.len(), 2, "{ips:?}");
    let client = w.pod("client").ns.clone();
    assert_eq!(w.get(&client, &format!("{}:80", ips[0]), "/hostname"), "pod2");
    assert_eq!(w.get(&client, &format!("[{}]:80", ips[1]), "/hostname"), "pod2");
    let np = w.node_port("v6", 0);
    let ext = w.external.clone();
    for node in ["fd00:192::2", "fd00:192::3"] {
        assert_eq!(
            w.get(&ext, &format!("[{node}]:{np}"), "/hostname"),
            "pod2",
            "IPv6 NodePort via {node}"
        );
        let seen = w.get(&ext, &format!("[{node}]:{np}"), "/clientip");
        assert!(
            !seen.starts_with(&format!("[{}]", world::EXTERNAL_IP6)),
            "masqueraded, saw {seen}"
        );
    }
}

/// Stops a child process on drop (also when the test fails).
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Registers a world pod (with its status) with the API server.
fn register_pod(api: &api::ApiServer, w: &World, name: &str) {
    let pod = serde_json::to_value(&w.pod(name).object).unwrap();
    let created = api.send("POST", "/api/v1/namespaces/default/pods", &pod, 201);
    let mut with_status = created.clone();
    with_status["status"] = pod["status"].clone();
    api.send(
        "PUT",
        &format!("/api/v1/namespaces/default/pods/{name}/status"),
        &with_status,
        200,
    );
}

fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..100 {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting until {what}");
}

/// `svcnet dataplane dump` prints what the agent would program: a script nft accepts, with
/// the API server's Services in it.
#[test]
fn dataplane_dump_prints_the_rules_for_a_node() {
    let api = api::ApiServer::start();
    let svc = api.send(
        "POST",
        "/api/v1/namespaces/default/services",
        &serde_json::json!({"metadata": {"name": "lonely"},
            "spec": {"selector": {"app": "none"}, "ports": [{"port": 8080}]}}),
        201,
    );
    let ip = svc["spec"]["clusterIP"].as_str().unwrap().to_owned();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_svcnet"))
        .args(["dataplane", "dump", "--kubeconfig"])
        .arg(&api.kubeconfig)
        .args(["--node-name", "node-1", "--cluster-cidr", "10.244.0.0/16"])
        .output()
        .unwrap();
    let script = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(script.starts_with("add table ip svcnet\n"), "{script}");
    // no endpoints: the service's address and port are rejected
    let rejected = format!("{ip} . tcp . 8080");
    assert!(
        script
            .lines()
            .any(|l| l.starts_with("add element ip svcnet no-endpoint-services {") && l.contains(&rejected)),
        "{script}"
    );
    // and nft takes the script as it is (checked, not applied, in a namespace of our own)
    let mut nets = svcnet::netns::Namespaces::new("svt-");
    let ns = nets.add("dump");
    let mut nft = std::process::Command::new("nft");
    nft.args(["-c", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut check = svcnet::netns::spawn_in(&ns, &mut nft).unwrap();
    use std::io::Write;
    check.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    let checked = check.wait_with_output().unwrap();
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));
}

fn agent_programs_a_node_from_the_api_server(backend: BackendKind) {
    let api = api::ApiServer::start();
    let mut w = World::new(1, backend);
    let node_ns = w.node_ns(0).to_owned();
    // a free loopback port for the agent's health and metrics
    let status_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    api.send(
        "POST",
        "/api/v1/nodes",
        &serde_json::json!({"metadata": {"name": "node-1"}}),
        201,
    );
    api.send(
        "PUT",
        "/api/v1/nodes/node-1/status",
        &serde_json::json!({"metadata": {"name": "node-1"},
            "status": {"addresses": [{"type": "InternalIP", "address": "192.168.0.2"}]}}),
        200,
    );
    // an upstream KubeProxyConfiguration gives the agent its settings
    let config = api.dir.path().join("kube-proxy.yaml");
    std::fs::write(
        &config,
        format!(
            "apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clusterCIDR: {}
healthzBindAddress: {status_addr}
nftables: {{minSyncPeriod: 50ms, syncPeriod: 30s}}
conntrack: {{udpTimeout: 45s, maxPerCore: 32768}}
",
            world::POD_CIDR
        ),
    )
    .unwrap();
    let mut agent = std::process::Command::new(env!("CARGO_BIN_EXE_svcnet"));
    agent
        .args(["proxy", "--kubeconfig"])
        .arg(&api.kubeconfig)
        .args(["--node-name", "node-1", "--netns", &node_ns])
        .args(["--backend", backend.name()])
        .args(["--service-cidr", "10.96.0.0/12", "--config"])
        .arg(&config);
    if backend == BackendKind::Netlink {
        // the netlink agent needs no program: with none on its PATH, everything below must work
        agent.env("PATH", api.dir.path().join("no-programs"));
    }
    let _agent = Running(agent.spawn().unwrap());
    let svc = api.send(
        "POST",
        "/api/v1/namespaces/default/services",
        &serde_json::json!({"metadata": {"name": "web"},
            "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80}]}}),
        201,
    );
    let cluster_ip = svc["spec"]["clusterIP"].as_str().unwrap().to_owned();
    let node_port = svc["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
    w.add_pod(0, "pod1", "{app: web}", &[80], &[], true);
    w.add_pod(0, "client", "{role: client}", &[], &[], true);
    register_pod(&api, &w, "pod1");
    let client = w.pod("client").ns.clone();
    let target = format!("{cluster_ip}:80");
    eventually("the ClusterIP reaches pod1", || {
        w.get(&client, &target, "/hostname") == "pod1"
    });
    let ext = w.external.clone();
    assert_eq!(
        w.get(&ext, &format!("192.168.0.2:{node_port}"), "/hostname"),
        "pod1",
        "NodePort from outside"
    );

    // scaling up and down through the API changes where traffic goes
    w.add_pod(0, "pod2", "{app: web}", &[80], &[], true);
    register_pod(&api, &w, "pod2");
    eventually("both pods answer", || {
        w.answers(&client, &target, 20) == set(&["pod1", "pod2"])
    });
    let (code, body) = api.curl(&[
        "-X",
        "DELETE",
        &format!("{}/api/v1/namespaces/default/pods/pod1", api.url),
    ]);
    assert_eq!(code, 200, "{body}");
    eventually("only pod2 answers", || {
        w.answers(&client, &target, 20) == set(&["pod2"])
    });

    // a UDP flow moves when its endpoint goes unready: the agent cleans conntrack up
    let dns = api.send(
        "POST",
        "/api/v1/namespaces/default/services",
        &serde_json::json!({"metadata": {"name": "dns"},
            "spec": {"selector": {"app": "dns"}, "ports": [{"port": 53, "protocol": "UDP"}]}}),
        201,
    );
    let dns_target = format!("{}:53", dns["spec"]["clusterIP"].as_str().unwrap());
    w.add_pod(0, "dns-old", "{app: dns}", &[53], &[], true);
    register_pod(&api, &w, "dns-old");
    eventually("UDP reaches dns-old", || {
        w.udp(&client, &dns_target, "hostname", Some(40053)) == "dns-old"
    });
    w.add_pod(0, "dns-new", "{app: dns}", &[53], &[], true);
    register_pod(&api, &w, "dns-new");
    let (code, body) = api.curl(&[&format!("{}/api/v1/namespaces/default/pods/dns-old", api.url)]);
    assert_eq!(code, 200, "{body}");
    let mut unready: serde_json::Value = serde_json::from_str(&body).unwrap();
    unready["status"]["conditions"] = serde_json::json!([{"type": "Ready", "status": "False"}]);
    api.send("PUT", "/api/v1/namespaces/default/pods/dns-old/status", &unready, 200);
    eventually("the same UDP flow reaches dns-new", || {
        w.udp(&client, &dns_target, "hostname", Some(40053)) == "dns-new"
    });

    // the agent reports health and metrics
    let get = |path: &str| {
        let out = std::process::Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}", &format!("http://{status_addr}{path}")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // the config's conntrack timeout was set in the node's namespace
    let udp_timeout = w
        .nets
        .exec_ok(&node_ns, &["cat", "/proc/sys/net/netfilter/nf_conntrack_udp_timeout"]);
    assert_eq!(udp_timeout.trim(), "45");
    let health = get("/healthz");
    assert!(health.ends_with("\n200"), "{health}");
    let metrics = get("/metrics");
    assert!(
        metrics.contains("# TYPE kubeproxy_sync_proxy_rules_last_timestamp_seconds gauge"),
        "{metrics}"
    );
    assert!(
        metrics.contains("svcnet_proxy_syncs_total{kind=\"full\"} 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("svcnet_proxy_conntrack_cleanups_total "), "{metrics}");
    // every endpoint change above was timed from the controller's trigger time to its sync
    let programmed: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("kubeproxy_network_programming_duration_seconds_count "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(programmed >= 3, "{metrics}");
    // per-service traffic: the web service's ClusterIP and node port counted what was sent
    let counted = |destination: &str| -> u64 {
        let prefix = format!(
            "svcnet_service_packets_total{{namespace=\"default\",service=\"web\",port=\"\",protocol=\"TCP\",destination=\"{destination}\"}} "
        );
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    assert!(counted(&target) > 0, "{metrics}");
    assert!(counted(&format!("nodeport:{node_port}")) > 0, "{metrics}");
    assert!(
        metrics.contains(&format!(
            "kubeproxy_network_programming_duration_seconds_bucket{{le=\"+Inf\"}} {programmed}\n"
        )),
        "{metrics}"
    );
    assert!(!metrics.contains("svcnet_proxy_service_ports 0\n"), "{metrics}");
}

/// While the API server is away the agent backs off (little CPU, one log line per watch),
/// leaves the programmed rules alone (established and new connections keep working), and
/// picks changes up again once the server is back.
#[test]
fn agent_backs_off_while_the_api_server_is_away() {
    let mut api = api::ApiServer::start();
    let mut w = World::new(1, BackendKind::Netlink);
    let node_ns = w.node_ns(0).to_owned();
    api.send(
        "POST",
        "/api/v1/nodes",
        &serde_json::json!({"metadata": {"name": "node-1"}}),
        201,
    );
    let log_path = api.dir.path().join("agent.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let agent = std::process::Command::new(env!("CARGO_BIN_EXE_svcnet"))
        .args(["proxy", "--kubeconfig"])
        .arg(&api.kubeconfig)
        .args(["--node-name", "node-1", "--netns", &node_ns])
        .args(["--cluster-cidr", world::POD_CIDR, "--service-cidr", "10.96.0.0/12"])
        .stderr(log)
        .spawn()
        .unwrap();
    let pid = agent.id();
    let _agent = Running(agent);
    let svc = api.send(
        "POST",
        "/api/v1/namespaces/default/services",
        &serde_json::json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}),
        201,
    );
    let target = format!("{}:80", svc["spec"]["clusterIP"].as_str().unwrap());
    w.add_pod(0, "pod1", "{app: web}", &[80], &[], true);
    w.add_pod(0, "client", "{role: client}", &[], &[], true);
    register_pod(&api, &w, "pod1");
    let client = w.pod("client").ns.clone();
    eventually("the ClusterIP reaches pod1", || {
        w.get(&client, &target, "/hostname") == "pod1"
    });

    let held = world::hold(&client, &target, 9000);
    api.kill();
    let cpu_before = svcnet::bench::process::cpu_seconds(pid);
    std::thread::sleep(Duration::from_secs(8));
    let cpu_away = svcnet::bench::process::cpu_seconds(pid) - cpu_before;
    assert_eq!(
        w.get(&client, &target, "/hostname"),
        "pod1",
        "a new connection while the server is away"
    );
    let logged = std::fs::read_to_string(&log_path).unwrap();
    let lost = logged.matches("lost the watch").count();
    assert!(
        cpu_away < 1.0,
        "the agent used {cpu_away} CPU seconds in 8 s without its API server"
    );
    assert!(
        (1..=3).contains(&lost),
        "one 'lost' line per watch, found {lost}:\n{logged}"
    );
    assert!(
        logged.len() < 20_000,
        "the agent logged {} bytes while the server was away",
        logged.len()
    );

    api.start_again();
    let result = held.join().unwrap();
    assert!(
        result.starts_with("OK "),
        "established connection broke while the server was away: {result}"
    );
    // changes flow again once the watches are back (after their back-off)
    w.add_pod(0, "pod2", "{app: web}", &[80], &[], true);
    register_pod(&api, &w, "pod2");
    let deadline = std::time::Instant::now() + Duration::from_secs(45);
    while w.answers(&client, &target, 20) != set(&["pod1", "pod2"]) {
        assert!(
            std::time::Instant::now() < deadline,
            "pod2 never answered after the server came back"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let logged = std::fs::read_to_string(&log_path).unwrap();
    assert!(logged.contains("watch recovered"), "{logged}");
}

/// masqueradeAll: every packet to a cluster IP leaves with the node's address. Without it a
/// pod keeps its own, and the node (outside the pod CIDRs) is masqueraded all the same.
fn masquerade_all_hides_every_client(backend: BackendKind) {
    let mut w = World::new(1, backend);
    w.add_pod(0, "pod1", "{app: m}", &[80], &[], true);
    w.add_pod(0, "client", "{role: client}", &[], &[], true);
    w.apply_service("metadata: {name: m}\nspec: {selector: {app: m}, ports: [{port: 80}]}");
    let target = format!("{}:80", w.cluster_ip("m"));
    let (client, node) = (w.pod("client").ns.clone(), w.node_ns(0).to_owned());
    let pod_ip = w.pod("client").ip.to_string();
    // the address the pod sees, without the port
    let seen = |w: &World, ns: &str| -> String {
        let answer = w.get(ns, &target, "/clientip");
        answer.rsplit_once(':').map_or(answer.clone(), |(ip, _)| ip.to_owned())
    };
    w.sync();
    assert_eq!(seen(&w, &client), pod_ip, "a pod keeps its address");
    // the address of the node's interface towards the pod, not the one it sent from
    assert_eq!(seen(&w, &node), "169.254.1.1", "the node is masqueraded");
    w.config.masquerade_all = true;
    w.sync();
    // masqueraded: the address of the node's interface towards the pod
    assert_eq!(seen(&w, &client), "169.254.1.1", "a pod is masqueraded");
    assert_eq!(seen(&w, &node), "169.254.1.1", "the node is masqueraded");
}

/// Every test runs against both backends.
macro_rules! for_each_backend {
    ($($name:ident),* $(,)?) => {
        mod netlink {
            $(#[test]
            fn $name() {
                super::$name(svcnet_dataplane::backend::BackendKind::Netlink)
            })*
        }
        mod nft_text {
            $(#[test]
            fn $name() {
                super::$name(svcnet_dataplane::backend::BackendKind::NftText)
            })*
        }
    };
}

for_each_backend!(
    cluster_ip_general,
    hairpin_is_masqueraded,
    node_ports_on_every_node_with_masquerade,
    external_traffic_policy_local_keeps_the_client_address,
    internal_traffic_policy_local,
    no_endpoints_is_refused_at_once,
    session_affinity_sticks_and_expires,
    endpoint_churn_keeps_established_connections,
    proxy_restart_resets_no_connection,
    udp_flow_moves_when_its_endpoint_goes,
    udp_service_scaled_from_zero_starts_answering,
    publish_not_ready_addresses_and_ignored_services,
    syncs_touch_only_what_changed,
    node_port_addresses_restrict_where_node_ports_listen,
    external_and_load_balancer_ips_with_source_ranges,
    ipv6_node_ports_and_dual_stack_cluster_ips,
    agent_programs_a_node_from_the_api_server,
    evaluator_agrees_with_the_kernel,
    masquerade_all_hides_every_client,
);

use evaluator::evaluator_agrees_with_the_kernel;
