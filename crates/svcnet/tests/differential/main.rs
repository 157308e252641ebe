//! Differential API tests: the same corpus of requests (`corpus.rs`, over 300) replayed in
//! order against svcnet's API server and against upstream's kube-apiserver (with etcd, built by
//! `cargo xtask upstream`), both fresh, and their answers compared after normalising what is
//! generated (uids, timestamps, resourceVersions, continue tokens; allocated ClusterIPs and
//! node ports are compared for being allocated, not for their value). Every difference left
//! must be listed, with its reason, in `docs/api-differences.md`; a listed difference that no
//! longer occurs fails too, so the list stays true.

#[path = "../common/api.rs"]
mod api;
mod corpus;
mod normalize;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use corpus::{NAMESPACE, Request};

/// Where a server is and how to reach it.
struct Endpoint {
    url: String,
    ca: PathBuf,
    token: String,
}

impl Endpoint {
    /// (HTTP code, body, `Warning` headers) of `request`.
    fn send(&self, request: &Request) -> (u16, String, Vec<String>) {
        let headers_file = tempfile::NamedTempFile::new().expect("a temporary file");
        let mut command = Command::new("curl");
        command
            .arg("--dump-header")
            .arg(headers_file.path())
            .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--cacert"])
            .arg(&self.ca)
            .args(["-H", &format!("Authorization: Bearer {}", self.token)])
            .args(["-H", "Accept: application/json"])
            .args(["-X", request.method])
            .arg(format!("{}{}", self.url, request.path))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        if request.body.is_some() {
            command.args([
                "-H",
                &format!("Content-Type: {}", request.content_type),
                "--data-binary",
                "@-",
            ]);
        }
        let mut child = command.spawn().expect("curl is needed");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("stdin");
            if let Some(body) = &request.body {
                stdin.write_all(body.as_bytes()).expect("body");
            }
        }
        let out = child.wait_with_output().expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        let headers = std::fs::read_to_string(headers_file.path()).unwrap_or_default();
        let warnings = headers
            .lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(name, _)| name.eq_ignore_ascii_case("warning"))
            .map(|(_, value)| value.trim().to_owned())
            .collect();
        (code.parse().unwrap_or(0), body.to_owned(), warnings)
    }
}

fn upstream_bin() -> PathBuf {
    let bin = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/upstream/bin"));
    assert!(
        bin.join("kube-apiserver").exists() && bin.join("etcd").exists(),
        "upstream's binaries are not in {}: `cargo xtask upstream` builds them (`cargo xtask test` does)",
        bin.display()
    );
    bin
}

/// The listed differences: `| case id (or prefix*) | difference | reason |` rows.
fn listed_differences() -> Vec<String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api-differences.md"))
        .expect("docs/api-differences.md");
    doc.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`'))
        .map(|(id, _)| id.to_owned())
        .collect()
}

fn matches(listed: &str, id: &str) -> bool {
    match listed.strip_suffix('*') {
        Some(prefix) => id.starts_with(prefix),
        None => listed == id,
    }
}

/// Makes the namespace the corpus works in, with its `default` ServiceAccount (upstream's
/// controller manager would make it; only the API server runs here).
fn prepare(server: &Endpoint) {
    let setup = [
        (
            "/api/v1/namespaces",
            format!(r#"{{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"{NAMESPACE}"}}}}"#),
        ),
        (
            &*format!("/api/v1/namespaces/{NAMESPACE}/serviceaccounts"),
            r#"{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"default"}}"#.to_owned(),
        ),
    ]
    .map(|(p, b)| (p.to_owned(), b));
    for (path, body) in setup {
        let (code, text, _) = server.send(&Request {
            id: "setup".into(),
            method: "POST",
            path,
            content_type: "application/json",
            body: Some(body),
        });
        assert!(code == 201 || code == 409, "setup failed: {code} {text}");
    }
}

/// Waits (at most a minute) until kube-apiserver's default ServiceCIDR is Ready: it may
/// report ready before that, and a Service created earlier gets no ClusterIP.
fn wait_for_default_service_cidr(server: &Endpoint) {
    let probe = Request {
        id: "setup".into(),
        method: "GET",
        path: "/apis/networking.k8s.io/v1/servicecidrs/kubernetes".into(),
        content_type: "application/json",
        body: None,
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (code, text, _) = server.send(&probe);
        let ready = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .is_some_and(|cidr| {
                cidr["status"]["conditions"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
            });
        if ready {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "kube-apiserver's default ServiceCIDR was not Ready within 60 s: {code} {text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn svcnet_answers_as_kube_apiserver_does() {
    let bin = upstream_bin();
    let ours = api::ApiServer::start();
    let ours_endpoint = Endpoint {
        url: ours.url.clone(),
        ca: ours.dir.path().join("ca.crt"),
        token: ours.token().trim().to_owned(),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let upstream = runtime
        .block_on(svcnet::lab::control_plane::upstream::start_api_server(
            &bin,
            &dir.path().join("upstream"),
            dir.path().join("pids"),
            "127.0.0.1:0".parse().unwrap(),
            "10.96.0.0/12",
            None,
        ))
        .unwrap_or_else(|e| panic!("kube-apiserver did not start: {e:#}"));
    let upstream_dir = dir.path().join("upstream");
    let theirs = Endpoint {
        url: upstream.url.clone(),
        ca: upstream.ca.clone(),
        token: std::fs::read_to_string(upstream_dir.join("token"))
            .unwrap()
            .trim()
            .to_owned(),
    };
    prepare(&ours_endpoint);
    prepare(&theirs);
    wait_for_default_service_cidr(&theirs);

    let mut differences: BTreeMap<String, String> = BTreeMap::new();
    let all = corpus::corpus();
    for request in &all {
        let (our_code, our_body, our_warnings) = ours_endpoint.send(request);
        let (their_code, their_body, their_warnings) = theirs.send(request);
        let sent = request.body.as_deref().unwrap_or("");
        let ours_n = normalize::answer(&our_body, sent);
        let theirs_n = normalize::answer(&their_body, sent);
        if our_code != their_code || ours_n != theirs_n || our_warnings != their_warnings {
            differences.insert(
                request.id.clone(),
                format!(
                    "[{}] {} {}\n  svcnet   {our_code}: {} warnings {our_warnings:?}\n  upstream {their_code}: {} warnings {their_warnings:?}",
                    request.id,
                    request.method,
                    request.path,
                    normalize::show(&ours_n),
                    normalize::show(&theirs_n)
                ),
            );
        }
    }
    drop(upstream);
    let listed = listed_differences();
    let unlisted: Vec<&String> = differences
        .iter()
        .filter(|(id, _)| !listed.iter().any(|l| matches(l, id)))
        .map(|(_, text)| text)
        .collect();
    let stale: Vec<&String> = listed
        .iter()
        .filter(|l| !differences.keys().any(|id| matches(l, id)))
        .collect();
    eprintln!(
        "{} requests, {} answered differently ({} listed in docs/api-differences.md)",
        all.len(),
        differences.len(),
        differences.len() - unlisted.len()
    );
    assert!(
        unlisted.is_empty(),
        "{} differences are neither fixed nor listed in docs/api-differences.md:\n{}",
        unlisted.len(),
        unlisted.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
    );
    assert!(
        stale.is_empty(),
        "docs/api-differences.md lists differences that no longer occur: {stale:?}"
    );
}
