//! The cluster DNS side by side with upstream's: `svcnet dns` and CoreDNS (its `kubernetes`
//! plugin, built by `cargo xtask upstream`) read the same API server, and the same questions
//! (A, AAAA, SRV, PTR, CNAME; ClusterIP, headless, ExternalName and selector-less Services,
//! per-endpoint hostnames, pod names, names that do not exist) must get the same answers:
//! response code, answer and additional records with their TTLs, in any order. Every
//! difference left must be listed in `docs/dns-differences.md`.

#[path = "../common/api.rs"]
mod api;

use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

const SVCNET: &str = env!("CARGO_BIN_EXE_svcnet");

fn coredns_binary() -> PathBuf {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../target/upstream/bin/coredns"
    ));
    assert!(
        path.exists(),
        "{} is missing: `cargo xtask upstream` builds it (`cargo xtask test` does)",
        path.display()
    );
    path
}

/// A free UDP and TCP port on loopback.
fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A server process, stopped when dropped with SIGTERM (which `timeout` passes on to
/// CoreDNS; SIGKILL would orphan it); each also ends by itself within minutes.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

fn start_svcnet(kubeconfig: &Path, port: u16) -> Running {
    let child = Command::new(SVCNET)
        .args(["dns", "--kubeconfig"])
        .arg(kubeconfig)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--cluster-domain",
            "cluster.local",
        ])
        .args(["--exit-after-secs", "600"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    Running(child)
}

fn start_coredns(kubeconfig: &Path, port: u16, dir: &Path) -> Running {
    let corefile = dir.join("Corefile");
    std::fs::write(
        &corefile,
        format!(
            ".:{port} {{
    bind 127.0.0.1
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
}}
",
            kubeconfig.display()
        ),
    )
    .unwrap();
    let child = Command::new("timeout")
        .arg("600")
        .arg(coredns_binary())
        .arg("-conf")
        .arg(&corefile)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    Running(child)
}

/// `svcnet agnhost dig`'s lines for `name`/`record_type` at `server`, the records' fields
/// split on whitespace, in order: what is compared.
fn ask(server: SocketAddr, name: &str, record_type: &str) -> BTreeSet<String> {
    let out = Command::new(SVCNET)
        .args([
            "agnhost",
            "dig",
            name,
            "--type",
            record_type,
            "--server",
            &server.to_string(),
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase())
        .collect()
}

/// The questions, as (name, type).
const QUESTIONS: &[(&str, &str)] = &[
    ("web.default.svc.cluster.local", "A"),
    ("web.default.svc.cluster.local", "AAAA"),
    ("web.default.svc.cluster.local", "SRV"),
    ("_http._tcp.web.default.svc.cluster.local", "SRV"),
    ("_dns._udp.web.default.svc.cluster.local", "SRV"),
    ("_nope._tcp.web.default.svc.cluster.local", "SRV"),
    ("db.default.svc.cluster.local", "A"),
    ("db.default.svc.cluster.local", "SRV"),
    ("db.default.svc.cluster.local", "AAAA"),
    ("db-0.db.default.svc.cluster.local", "A"),
    ("nobody.db.default.svc.cluster.local", "A"),
    ("_pg._tcp.db.default.svc.cluster.local", "SRV"),
    ("ext.default.svc.cluster.local", "A"),
    ("ext.default.svc.cluster.local", "CNAME"),
    ("api.shop.svc.cluster.local", "A"),
    ("missing.default.svc.cluster.local", "A"),
    ("web.nowhere.svc.cluster.local", "A"),
    ("default.svc.cluster.local", "A"),
    ("svc.cluster.local", "A"),
    ("10-244-1-5.default.pod.cluster.local", "A"),
];

#[test]
fn svcnet_dns_answers_as_coredns_does() {
    let server = api::ApiServer::start();
    let create = |path: &str, body: serde_json::Value| {
        server.send("POST", path, &body, 201);
    };
    create("/api/v1/namespaces", json!({"metadata": {"name": "shop"}}));
    let services = "/api/v1/namespaces/default/services";
    create(
        services,
        json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [
            {"name": "http", "port": 80, "protocol": "TCP"}, {"name": "dns", "port": 53, "protocol": "UDP"}]}}),
    );
    create(
        services,
        json!({"metadata": {"name": "db"}, "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}}),
    );
    create(
        "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
        json!({"metadata": {"name": "db-1", "labels": {"kubernetes.io/service-name": "db"}},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.244.1.5"], "hostname": "db-0", "conditions": {"ready": true}},
                {"addresses": ["10.244.1.6"], "conditions": {"ready": true}},
                {"addresses": ["10.244.1.7"], "conditions": {"ready": false}},
            ],
            "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]}),
    );
    create(
        services,
        json!({"metadata": {"name": "ext"}, "spec": {"type": "ExternalName", "externalName": "example.org"}}),
    );
    create(
        "/api/v1/namespaces/shop/services",
        json!({"metadata": {"name": "api"}, "spec": {"ports": [{"port": 8080}]}}),
    );
    let web_ip = server.send("GET", &format!("{services}/web"), &json!(null), 200)["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_owned();

    let dir = tempfile::tempdir().unwrap();
    let (ours_port, theirs_port) = (free_port(), free_port());
    let _ours = start_svcnet(&server.kubeconfig, ours_port);
    let _theirs = start_coredns(&server.kubeconfig, theirs_port, dir.path());
    let ours: SocketAddr = ([127, 0, 0, 1], ours_port).into();
    let theirs: SocketAddr = ([127, 0, 0, 1], theirs_port).into();
    // both have read everything once `api.shop` resolves (it was created last)
    let deadline = Instant::now() + Duration::from_secs(60);
    for (who, at) in [("svcnet dns", ours), ("CoreDNS", theirs)] {
        while !ask(at, "api.shop.svc.cluster.local", "A")
            .iter()
            .any(|l| l.starts_with("answer:"))
        {
            assert!(Instant::now() < deadline, "{who} never answered");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    let octets: Vec<&str> = web_ip.split('.').rev().collect();
    let reverse = format!("{}.in-addr.arpa", octets.join("."));
    let mut questions: Vec<(String, &str)> = QUESTIONS.iter().map(|(n, t)| (n.to_string(), *t)).collect();
    questions.push((reverse, "PTR"));
    let mut differences = BTreeSet::new();
    for (name, record_type) in &questions {
        let (a, b) = (ask(ours, name, record_type), ask(theirs, name, record_type));
        assert!(
            b.iter().any(|l| l.starts_with("status:")),
            "CoreDNS gave no answer to {name} {record_type}: {b:?}"
        );
        if a != b {
            eprintln!("{name} {record_type}:\n  svcnet:  {a:?}\n  CoreDNS: {b:?}");
            differences.insert(format!("{name} {record_type}"));
        }
    }
    let listed = listed_differences();
    let unlisted: Vec<_> = differences.difference(&listed).collect();
    let gone: Vec<_> = listed.difference(&differences).collect();
    assert!(
        unlisted.is_empty(),
        "differences from CoreDNS not in docs/dns-differences.md: {unlisted:?}"
    );
    assert!(
        gone.is_empty(),
        "listed in docs/dns-differences.md but no longer different: {gone:?}"
    );
}

/// The questions `docs/dns-differences.md` lists (table rows starting with a backquoted
/// `NAME TYPE`).
fn listed_differences() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/dns-differences.md"))
        .expect("docs/dns-differences.md");
    doc.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_owned)
        .collect()
}
