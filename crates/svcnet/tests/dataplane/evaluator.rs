//! The rule evaluator against the kernel. Random models are programmed into a node namespace
//! and random packets go through it as real TCP connections and UDP exchanges. What each connection shows
//! (refused, timed out, answered by an endpoint, by the node, or by the network beyond the
//! node, and from which source address) must be one of the outcomes `eval::evaluate` gives
//! the same packet for the same model's compiled rules.
//!
//! Topology: the node routes to `pods` (every endpoint address, as local routes, answered by
//! one listener), to `clients` (a pod of the pod CIDR that is no endpoint), to `ext` (outside
//! clients, one inside the load-balancer source ranges the models use and one outside them)
//! and, by default, to `sink`, which answers for the service, external and load-balancer
//! ranges, so a packet that escapes the rules is seen rather than lost. An endpoint is a
//! client too, of its own service only when it is the only endpoint the packet may reach
//! (the endpoints share a namespace, which would answer another of them directly).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use svcnet::netns::{self, Namespaces};
use svcnet_core::service::model::Protocol;
use svcnet_dataplane::backend::BackendKind;
use svcnet_dataplane::compile::compile;
use svcnet_dataplane::eval::{self, Fate, Host, Origin};
use svcnet_dataplane::ir::Family;
use svcnet_dataplane::model::ProxyModel;
use svcnet_dataplane::netlink::{Netlink, dump};
use svcnet_dataplane::syncer::Syncer;

/// Models per backend, and packets per model: 8 × 30 = 240 cases (about a third UDP).
const MODELS: usize = 8;
const PACKETS: usize = 30;
/// Ports the node and the sink answer on when no rule rewrote the packet.
const PLAIN_PORTS: [u16; 2] = [80, 81];
const NODE_PORTS: std::ops::Range<u16> = 30000..30040;
const NODE_ADDRESSES: [&str; 6] = [
    "192.168.0.2",
    "10.255.0.1",
    "10.254.0.1",
    "fd00:192::2",
    "fd00:255::1",
    "fd00:254::1",
];

struct Bench {
    /// Removed (with everything in them) when the bench is dropped.
    _namespaces: Namespaces,
    node: String,
    pods: String,
    sink: String,
    clients: String,
    ext: String,
    stop: Arc<AtomicBool>,
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn build() -> Bench {
    let mut nets = Namespaces::new("svt-");
    let node = nets.add("evnode");
    let pods = nets.add("evpods");
    let clients = nets.add("evclients");
    let ext = nets.add("evext");
    let sink = nets.add("evsink");
    nets.sysctl(&node, "net.ipv4.ip_forward", "1");
    nets.sysctl(&node, "net.ipv6.conf.all.forwarding", "1");
    let link = |nets: &Namespaces, peer: &str, dev: &str, v4: &str, v6: &str| {
        nets.veth(&node, dev, peer, "eth0");
        nets.address(&node, dev, &format!("{v4}.1/24"));
        nets.address(&node, dev, &format!("{v6}::1/64"));
        nets.address(peer, "eth0", &format!("{v4}.2/24"));
        nets.address(peer, "eth0", &format!("{v6}::2/64"));
        nets.route(peer, "default", Some(&format!("{v4}.1")), None);
        nets.route(peer, "default", Some(&format!("{v6}::1")), None);
    };
    link(&nets, &pods, "pods", "10.255.0", "fd00:255");
    link(&nets, &sink, "sink", "10.254.0", "fd00:254");
    link(&nets, &clients, "clients", "10.253.0", "fd00:253");
    // the node's address towards the outside is the model's node IP
    nets.veth(&node, "ext", &ext, "eth0");
    nets.address(&node, "ext", "192.168.0.2/24");
    nets.address(&node, "ext", "fd00:192::2/64");
    nets.address(&ext, "eth0", "192.168.0.100/24");
    nets.address(&ext, "eth0", "fd00:192::100/64");
    nets.route(&ext, "default", Some("192.168.0.2"), None);
    nets.route(&ext, "default", Some("fd00:192::2"), None);
    for client in [
        "203.0.113.2/32",
        "198.51.100.2/32",
        "2001:db8:ff::2/128",
        "2001:db9::2/128",
    ] {
        nets.address(&ext, "lo", client);
    }
    for (prefix, via) in [
        ("203.0.113.0/24", "192.168.0.100"),
        ("198.51.100.0/24", "192.168.0.100"),
        ("2001:db8:ff::/64", "fd00:192::100"),
        ("2001:db9::/64", "fd00:192::100"),
        ("10.180.0.0/16", "10.255.0.2"),
        ("10.180.200.0/24", "10.253.0.2"),
        ("fd00:180:1::/64", "fd00:253::2"),
        ("10.200.0.0/16", "10.255.0.2"),
        ("fd00:180::/48", "fd00:255::2"),
        ("fd00:200::/48", "fd00:255::2"),
        ("default", "10.254.0.2"),
        ("default", "fd00:254::2"),
    ] {
        nets.route(&node, prefix, Some(via), None);
    }
    // the endpoints the models use are 10.180.N.I and fd00:180::N:I, N < 40
    for prefix in ["10.180.0.0/18", "fd00:180::/64"] {
        nets.local_route(&pods, prefix);
    }
    nets.address(&clients, "lo", "10.180.200.1/32");
    nets.address(&clients, "lo", "fd00:180:1::1/128");
    // endpoints are clients too (IPv6 binds only to interface addresses else)
    nets.sysctl(&pods, "net.ipv6.ip_nonlocal_bind", "1");
    for prefix in [
        "172.30.0.0/16",
        "192.168.99.0/24",
        "1.2.3.0/24",
        "fd00:30::/112",
        "fd00:99::/64",
        "fd00:1::/64",
    ] {
        nets.local_route(&sink, prefix);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let plain: Vec<u16> = PLAIN_PORTS.iter().copied().chain(NODE_PORTS).collect();
    serve(&pods, "pod", &[8080], &stop);
    serve(&node, "node", &plain, &stop);
    serve(&sink, "sink", &plain, &stop);
    let node_udp = NODE_ADDRESSES
        .iter()
        .flat_map(|a| plain.iter().map(move |p| SocketAddr::new(a.parse().unwrap(), *p)))
        .collect();
    serve_udp(&node, "node", node_udp, &stop);
    // the sink answers UDP from the address it was sent to, whichever that is
    nets.sysctl(&sink, "net.ipv6.ip_nonlocal_bind", "1");
    Bench {
        _namespaces: nets,
        node,
        sink,
        pods,
        clients,
        ext,
        stop,
    }
}

/// Answers each connection on `ports` in `ns` with `WHO LOCAL PEER`, until `stop` or ten
/// minutes have passed.
fn serve(ns: &str, who: &'static str, ports: &[u16], stop: &Arc<AtomicBool>) {
    let ports = ports.to_vec();
    let listeners = netns::in_netns(ns, move || {
        ports
            .iter()
            .map(|p| std::net::TcpListener::bind(SocketAddr::new("::".parse().unwrap(), *p)))
            .collect::<std::io::Result<Vec<_>>>()
    })
    .unwrap_or_else(|e| panic!("listeners in {ns}: {e}"));
    let stop = stop.clone();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(600);
        for l in &listeners {
            l.set_nonblocking(true).unwrap();
        }
        while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
            let mut idle = true;
            for l in &listeners {
                if let Ok((mut stream, peer)) = l.accept() {
                    idle = false;
                    let local = stream.local_addr().unwrap();
                    let local = SocketAddr::new(local.ip().to_canonical(), local.port());
                    let _ = writeln!(stream, "{who} {local} {}", peer.ip().to_canonical());
                }
            }
            if idle {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    });
}

/// Answers each datagram to one of `addresses` in `ns` with `WHO LOCAL PEER`, from that
/// address (a reply from another would not reach a connected client), until `stop` or ten
/// minutes have passed.
fn serve_udp(
    ns: &str,
    who: &'static str,
    addresses: Vec<SocketAddr>,
    stop: &Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let sockets = netns::in_netns(ns, move || {
        addresses
            .iter()
            .map(|a| {
                let s = std::net::UdpSocket::bind(a)?;
                s.set_nonblocking(true)?;
                Ok((s, *a))
            })
            .collect::<std::io::Result<Vec<_>>>()
    })
    .unwrap_or_else(|e| panic!("UDP sockets in {ns}: {e}"));
    let stop = stop.clone();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(600);
        let mut buf = [0u8; 64];
        while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
            let mut idle = true;
            for (socket, local) in &sockets {
                if let Ok((_, peer)) = socket.recv_from(&mut buf) {
                    idle = false;
                    let answer = format!("{who} {local} {}", peer.ip().to_canonical());
                    let _ = socket.send_to(answer.as_bytes(), peer);
                }
            }
            if idle {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    })
}

/// What a connection showed.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    Refused,
    TimedOut,
    Answer {
        who: String,
        local: SocketAddr,
        peer: IpAddr,
    },
    Error(String),
}

fn exchange(ns: &str, protocol: Protocol, src: IpAddr, dst: SocketAddr, patience: Duration) -> Seen {
    match protocol {
        Protocol::Udp => ask_udp(ns, src, dst, patience),
        _ => connect(ns, src, dst, patience),
    }
}

/// One datagram and its answer: refused (ICMP port unreachable), timed out, or answered.
fn ask_udp(ns: &str, src: IpAddr, dst: SocketAddr, patience: Duration) -> Seen {
    let attempt = netns::in_netns(ns, move || {
        let socket = std::net::UdpSocket::bind(SocketAddr::new(src, 0))?;
        socket.connect(dst)?;
        socket.set_read_timeout(Some(patience))?;
        match socket.send(b"who") {
            // dropped by the rules on its way out of this host: the sender is told at once
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return Ok(Seen::TimedOut),
            other => other?,
        };
        let mut buf = [0u8; 256];
        Ok(match socket.recv(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Seen::Refused,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock) => {
                Seen::TimedOut
            }
            Err(e) => Seen::Error(e.to_string()),
            Ok(n) => parse_answer(&String::from_utf8_lossy(&buf[..n])),
        })
    });
    attempt.unwrap_or_else(|e| Seen::Error(e.to_string()))
}

fn parse_answer(line: &str) -> Seen {
    let parts: Vec<&str> = line.split_whitespace().collect();
    match parts.as_slice() {
        [who, local, peer] => Seen::Answer {
            who: (*who).to_owned(),
            local: local.parse().unwrap(),
            peer: peer.parse().unwrap(),
        },
        _ => Seen::Error(format!("answer {line:?}")),
    }
}

fn connect(ns: &str, src: IpAddr, dst: SocketAddr, patience: Duration) -> Seen {
    let attempt = netns::in_netns(ns, move || {
        let socket = socket2::Socket::new(socket2::Domain::for_address(dst), socket2::Type::STREAM, None)?;
        socket.bind(&SocketAddr::new(src, 0).into())?;
        match socket.connect_timeout(&dst.into(), patience) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Ok(Seen::Refused),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock) => {
                return Ok(Seen::TimedOut);
            }
            Err(e) => return Ok(Seen::Error(e.to_string())),
            Ok(()) => {}
        }
        let mut stream = std::net::TcpStream::from(socket);
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut line = String::new();
        stream.read_to_string(&mut line)?;
        Ok(parse_answer(&line))
    });
    attempt.unwrap_or_else(|e| Seen::Error(e.to_string()))
}

/// What the connection must show for one outcome of the evaluator.
fn expected(o: &eval::Outcome, p: &eval::Packet) -> Seen {
    let pods: [ipnet::IpNet; 2] = ["10.180.0.0/16".parse().unwrap(), "fd00:180::/48".parse().unwrap()];
    match o.fate {
        Fate::Rejected => Seen::Refused,
        Fate::Dropped => Seen::TimedOut,
        Fate::Delivered | Fate::Forwarded => {
            let local = o.dnat.unwrap_or(SocketAddr::new(p.dst, p.dst_port));
            let who = if o.fate == Fate::Delivered {
                "node"
            } else if pods.iter().any(|n| n.contains(&local.ip())) {
                "pod"
            } else {
                "sink"
            };
            Seen::Answer {
                who: who.into(),
                local,
                // a masqueraded packet leaves with an address of the node; which one is the
                // kernel's choice, so only "not the client's" is compared
                peer: if o.masquerade {
                    IpAddr::from([0, 0, 0, 0])
                } else {
                    p.src
                },
            }
        }
    }
}

/// `seen` as `expected` shows it (a masqueraded source as 0.0.0.0).
fn normalised(seen: Seen, p: &eval::Packet) -> Seen {
    match seen {
        Seen::Answer { who, local, peer } if peer != p.src => Seen::Answer {
            who,
            local,
            peer: IpAddr::from([0, 0, 0, 0]),
        },
        other => other,
    }
}

/// One random packet for this model: a source (a pod, a pod reaching itself, the node, an
/// outside client allowed or not by the source ranges) and a destination (every kind of
/// service address, node ports on each node address, a wrong port, an unallocated service
/// address, an address beyond the node).
fn packet(model: &ProxyModel, rng: &mut StdRng, bench: &Bench) -> (String, String, eval::Packet) {
    let v6 = rng.random_bool(0.4);
    let protocol = if rng.random_bool(0.35) {
        Protocol::Udp
    } else {
        Protocol::Tcp
    };
    let family_of = |ip: &IpAddr| ip.is_ipv6() == v6;
    let a = |v4: &str, v6_addr: &str| -> IpAddr { if v6 { v6_addr } else { v4 }.parse().unwrap() };
    let mut destinations: Vec<SocketAddr> = vec![
        SocketAddr::new(a("172.30.0.250", "fd00:30::fa"), 80),
        SocketAddr::new(a("192.168.99.250", "fd00:99::fa"), 80),
    ];
    for sp in model.ports.values() {
        // a port of the probe's protocol is picked four times as often
        let weight = if sp.protocol == protocol { 4 } else { 1 };
        let mut add = |d: SocketAddr| destinations.extend(std::iter::repeat_n(d, weight));
        for ip in sp.cluster_ips.iter().filter(|ip| family_of(ip)) {
            add(SocketAddr::new(*ip, sp.port));
        }
        for ip in sp
            .external_ips
            .iter()
            .chain(&sp.load_balancer_ips)
            .filter(|ip| family_of(ip))
        {
            add(SocketAddr::new(*ip, sp.port));
        }
        // a port's node port is served in its cluster IP's family
        if let Some(np) = sp.node_port.filter(|_| sp.cluster_ips.iter().any(family_of)) {
            for node in [a("192.168.0.2", "fd00:192::2"), a("10.255.0.1", "fd00:255::1")] {
                add(SocketAddr::new(node, np));
            }
        }
        if let Some(ip) = sp.cluster_ips.iter().find(|ip| family_of(ip)) {
            destinations.push(SocketAddr::new(*ip, 81));
        }
    }
    let local_endpoints: Vec<IpAddr> = model
        .ports
        .values()
        .flat_map(|sp| &sp.endpoints)
        .filter(|e| e.is_local && family_of(&e.ip))
        .map(|e| e.ip)
        .collect();
    let dst = *destinations.choose(rng).unwrap();
    let mut sources: Vec<(&str, &str, IpAddr, Origin)> = vec![
        (
            "a pod",
            &bench.clients,
            a("10.180.200.1", "fd00:180:1::1"),
            Origin::Arrives,
        ),
        ("the node", &bench.node, a("192.168.0.2", "fd00:192::2"), Origin::Local),
        (
            "a client in range",
            &bench.ext,
            a("203.0.113.2", "2001:db8:ff::2"),
            Origin::Arrives,
        ),
        (
            "a client out of range",
            &bench.ext,
            a("198.51.100.2", "2001:db9::2"),
            Origin::Arrives,
        ),
    ];
    if let Some(ep) = local_endpoints.choose(rng) {
        sources.push(("an endpoint", &bench.pods, *ep, Origin::Arrives));
    }
    let (what, ns, src, origin) = *sources.choose(rng).unwrap();
    // UDP from the node itself is left to TCP: the ICMP error a REJECT in the output hook
    // sends did not reach the node's own UDP socket here (its TCP connections are refused)
    let protocol = if origin == Origin::Local {
        Protocol::Tcp
    } else {
        protocol
    };
    let p = eval::Packet::new(origin, protocol, SocketAddr::new(src, 0), dst);
    if ns == bench.pods {
        // a packet the rules send to another endpoint would be answered inside `pods`
        let rules = compile(model);
        let family = if dst.is_ipv4() { Family::Ip } else { Family::Ip6 };
        let e = eval::evaluate(&rules, &host(bench, &rules, family), &p);
        let pods: ipnet::IpNet = if v6 { "fd00:180::/64" } else { "10.180.0.0/18" }.parse().unwrap();
        if e.outcomes()
            .keys()
            .any(|o| o.dnat.is_some_and(|d| d.ip() != src && pods.contains(&d.ip())))
        {
            return packet(model, rng, bench);
        }
    }
    (what.to_owned(), ns.to_owned(), p)
}

/// The node's own addresses and what the kernel holds in the affinity sets, as the evaluator
/// needs them.
fn host(bench: &Bench, rules: &svcnet_dataplane::ir::Ruleset, family: Family) -> Host {
    let mut host = Host::default();
    host.local_addresses
        .extend(NODE_ADDRESSES.iter().map(|a| a.parse::<IpAddr>().unwrap()));
    host.local_addresses
        .extend(["127.0.0.1".parse::<IpAddr>().unwrap(), "::1".parse().unwrap()]);
    let mut nl = Netlink::in_netns(&bench.node).unwrap();
    for (name, set) in &rules.tables[&family].sets {
        if set.decl.dynamic {
            let members = dump::addresses(nl.socket(), family, name).unwrap();
            host.dynamic_sets.insert(name.clone(), members.into_iter().collect());
        }
    }
    host
}

pub fn evaluator_agrees_with_the_kernel(backend: BackendKind) {
    let seed: u64 = std::env::var("SVCNET_EVAL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261202);
    let bench = build();
    let proxy = backend.open(Some(&bench.node)).unwrap();
    let mut syncer = Syncer::new(proxy);
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &{
            let mut bytes = [0u8; 32];
            bytes[..8].copy_from_slice(&seed.to_le_bytes());
            bytes
        }),
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let mut cases = 0;
    let mut outcomes_seen = std::collections::BTreeMap::<String, usize>::new();
    let started = Instant::now();
    for round in 0..MODELS {
        // models with a few ports, TCP among them (the probes are TCP)
        let mut model = loop {
            let m = crate::conformance::proxy_model()
                .new_tree(&mut runner)
                .unwrap()
                .current();
            if m.ports.len() >= 4 && m.ports.values().any(|sp| sp.protocol == Protocol::Tcp) {
                break m;
            }
        };
        for sp in model.ports.values_mut() {
            // long enough that no remembered client expires between reading and probing
            sp.affinity_timeout_seconds = sp.affinity_timeout_seconds.map(|t| t.max(600));
        }
        if rng.random_bool(0.3) {
            model.config.node_port_addresses =
                vec!["192.168.0.0/24".parse().unwrap(), "fd00:192::/64".parse().unwrap()];
        }
        syncer
            .sync(model.clone(), 10_000 * (round as u64 + 1))
            .unwrap_or_else(|e| panic!("seed {seed}, model {round}: sync: {e}"));
        // this model's UDP answerers: every endpoint, and the sink for every service address
        let round_stop = Arc::new(AtomicBool::new(false));
        let endpoints: BTreeSet<SocketAddr> = model
            .ports
            .values()
            .flat_map(|sp| &sp.endpoints)
            .map(|e| SocketAddr::new(e.ip, e.port))
            .collect();
        let mut escapes: BTreeSet<SocketAddr> = ["172.30.0.250", "192.168.99.250", "fd00:30::fa", "fd00:99::fa"]
            .iter()
            .map(|a| SocketAddr::new(a.parse().unwrap(), 80))
            .collect();
        for sp in model.ports.values() {
            for ip in sp
                .cluster_ips
                .iter()
                .chain(&sp.external_ips)
                .chain(&sp.load_balancer_ips)
            {
                escapes.extend([SocketAddr::new(*ip, sp.port), SocketAddr::new(*ip, 81)]);
            }
        }
        let answerers = [
            serve_udp(&bench.pods, "pod", endpoints.into_iter().collect(), &round_stop),
            serve_udp(&bench.sink, "sink", escapes.into_iter().collect(), &round_stop),
        ];
        let rules = compile(&model);
        for i in 0..PACKETS {
            let (from, ns, p) = packet(&model, &mut rng, &bench);
            let ns = ns.as_str();
            let family = if p.dst.is_ipv4() { Family::Ip } else { Family::Ip6 };
            let evaluation = eval::evaluate(&rules, &host(&bench, &rules, family), &p);
            let allowed: Vec<Seen> = evaluation.outcomes().keys().map(|o| expected(o, &p)).collect();
            let send = |patience| {
                normalised(
                    exchange(ns, p.protocol, p.src, SocketAddr::new(p.dst, p.dst_port), patience),
                    &p,
                )
            };
            let mut seen = send(Duration::from_millis(250));
            if seen == Seen::TimedOut && !allowed.contains(&Seen::TimedOut) {
                // slow, rather than dropped? give it longer once
                seen = send(Duration::from_secs(3));
            }
            if !allowed.contains(&seen) {
                let walk: Vec<String> = evaluation
                    .branches
                    .iter()
                    .flat_map(|b| &b.steps)
                    .map(|s| {
                        format!(
                            "  {} {}[{}] {} -> {} {}",
                            s.hook.keyword(),
                            s.chain,
                            s.rule,
                            s.text,
                            s.matched,
                            s.note
                        )
                    })
                    .collect();
                panic!(
                    "seed {seed}, model {round}, packet {i}: from {from} {} -> {}:{}\nkernel: {seen:?}\nevaluator allows: {allowed:?}\nwalk:\n{}\nmodel: {model:#?}",
                    p.src,
                    p.dst,
                    p.dst_port,
                    walk.join("\n")
                );
            }
            let ending = match &seen {
                Seen::Answer { who, peer, .. } => format!("{who}{}", if *peer == p.src { "" } else { " masqueraded" }),
                other => format!("{other:?}"),
            };
            let ending = format!("{} {ending}", p.protocol.as_str());
            *outcomes_seen.entry(ending).or_default() += 1;
            cases += 1;
        }
        round_stop.store(true, Ordering::SeqCst);
        for a in answerers {
            let _ = a.join();
        }
    }
    eprintln!(
        "{backend}: {cases} cases in {:.1} s, seed {seed}: {outcomes_seen:?}",
        started.elapsed().as_secs_f64()
    );
    assert!(cases >= 200, "{cases} cases");
    // the cases covered every kind of ending
    let kinds = ["Refused", "TimedOut", "pod", "pod masqueraded", "sink", "node"];
    for kind in kinds.iter().flat_map(|k| [format!("TCP {k}"), format!("UDP {k}")]) {
        assert!(
            outcomes_seen.contains_key(&kind),
            "seed {seed}: no case ended {kind:?}: {outcomes_seen:?}"
        );
    }
}
