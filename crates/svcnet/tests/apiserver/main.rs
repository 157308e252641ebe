//! The API server against real clients: the official Kubernetes Python client (installed into
//! `.venv` by `cargo xtask prereqs`) and raw HTTP for malformed and oversized bodies.

#[path = "../common/api.rs"]
mod api;

use std::path::PathBuf;
use std::process::Command;

use api::ApiServer as Server;

fn venv_python() -> PathBuf {
    let python = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv/bin/python"));
    assert!(
        python.exists(),
        "{} is missing: `cargo xtask prereqs` installs the Python client",
        python.display()
    );
    python
}

#[test]
fn official_python_client() {
    let server = Server::start();
    let out = Command::new(venv_python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/apiserver/python_client.py"))
        .arg(&server.kubeconfig)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python client failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("all checks passed"));
}

#[test]
fn malformed_and_oversized_bodies_get_status_errors() {
    let server = Server::start();
    let services = format!("{}/api/v1/namespaces/default/services", server.url);
    let json = "Content-Type: application/json";
    let (code, body) = server.curl(&["-X", "POST", &services, "-H", json, "-d", "{not json"]);
    assert_eq!(code, 400, "{body}");
    assert!(
        body.starts_with(
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"json parse error"#
        ),
        "{body}"
    );
    let (code, body) = server.curl(&[
        "-X",
        "POST",
        &services,
        "-H",
        json,
        "-d",
        r#"{"kind":"Pod","metadata":{"name":"p"}}"#,
    ]);
    assert_eq!(code, 400, "{body}");
    let big = format!(
        "{{\"metadata\":{{\"name\":\"big\",\"annotations\":{{\"a\":\"{}\"}}}}}}",
        "x".repeat(4 * 1024 * 1024)
    );
    let file = server.dir.path().join("big.json");
    std::fs::write(&file, big).unwrap();
    let (code, body) = server.curl(&[
        "-X",
        "POST",
        &services,
        "-H",
        json,
        "--data-binary",
        &format!("@{}", file.display()),
    ]);
    assert_eq!(code, 413, "{body}");
    assert!(body.contains(r#""reason":"RequestEntityTooLarge""#), "{body}");
    // protobuf bodies (kubectl's default for built-in types) are not understood yet: 415
    let (code, body) = server.curl(&[
        "-X",
        "POST",
        &services,
        "-H",
        "Content-Type: application/vnd.kubernetes.protobuf",
        "--data-binary",
        "k8s-protobuf-bytes",
    ]);
    assert_eq!(code, 415, "{body}");
    assert!(body.contains(r#""reason":"UnsupportedMediaType""#), "{body}");
    let (code, body) = server.curl(&[&format!("{}/api/v1/namespaces/default/widgets", server.url)]);
    assert_eq!(code, 404, "{body}");
    // the server is still healthy after all that
    let (code, _) = server.curl(&[&services]);
    assert_eq!(code, 200);
}
