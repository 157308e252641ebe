//! HTTP-level behaviour clients rely on: public health and version paths, trailing slashes,
//! the bearer scheme's case, Status bodies for 405 and for answers sent before a large body
//! was read, and the newline upstream's encoder ends JSON bodies with.

use std::process::Command;

use crate::api::ApiServer as Server;
use crate::venv_python;

/// curl without credentials (but trusting the server's CA); returns (code, body).
fn anonymous(server: &Server, args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--cacert"])
        .arg(server.dir.path().join("ca.crt"))
        .args(args)
        .output()
        .expect("curl is needed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.parse().unwrap_or(0), body.to_owned())
}

#[test]
fn health_and_version_need_no_token_and_everything_else_does() {
    let server = Server::start();
    for path in ["/healthz", "/livez", "/readyz", "/livez/ping"] {
        let (code, body) = anonymous(&server, &[&format!("{}{path}", server.url)]);
        assert_eq!((code, body.as_str()), (200, "ok"), "{path}");
    }
    let (code, body) = anonymous(&server, &[&format!("{}/readyz?verbose", server.url)]);
    assert_eq!(code, 200);
    assert!(
        body.contains("[+]ping ok") && body.ends_with("readyz check passed\n"),
        "{body}"
    );
    let (code, body) = anonymous(&server, &[&format!("{}/version", server.url)]);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"gitVersion\""), "{body}");
    let (code, body) = anonymous(&server, &[&format!("{}/api/v1/namespaces", server.url)]);
    assert_eq!(code, 401, "{body}");
}

#[test]
fn discovery_answers_with_a_trailing_slash_and_the_python_version_api_works() {
    let server = Server::start();
    for path in ["/version/", "/api/", "/apis/", "/api/v1/", "/apis/apps/v1/"] {
        let (code, body) = server.curl(&[&format!("{}{path}", server.url)]);
        assert_eq!(code, 200, "{path}: {body}");
    }
    let script = "import sys; from kubernetes import client, config; \
                  config.load_kube_config(sys.argv[1]); print(client.VersionApi().get_code().git_version)";
    let out = Command::new(venv_python())
        .args(["-c", script])
        .arg(&server.kubeconfig)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("v1.37"));
}

#[test]
fn the_bearer_scheme_is_case_insensitive() {
    let server = Server::start();
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let (code, body) = anonymous(
            &server,
            &[
                "-H",
                &format!("Authorization: {scheme} {}", server.token()),
                &format!("{}/api/v1/namespaces", server.url),
            ],
        );
        assert_eq!(code, 200, "{scheme}: {body}");
    }
    let (code, _) = anonymous(
        &server,
        &[
            "-H",
            "Authorization: Basic Zm9vOmJhcg==",
            &format!("{}/api/v1/namespaces", server.url),
        ],
    );
    assert_eq!(code, 401);
}

#[test]
fn early_answers_are_statuses_even_with_a_large_body() {
    let server = Server::start();
    let big = server.dir.path().join("big.json");
    std::fs::write(&big, format!("{{\"pad\":\"{}\"}}", "x".repeat(200 * 1024))).unwrap();
    let data = format!("@{}", big.display());
    // unauthenticated: read and discarded, then a 401 Status
    let (code, body) = anonymous(
        &server,
        &[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &data,
            &format!("{}/api/v1/namespaces/default/services", server.url),
        ],
    );
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("\"kind\":\"Status\""), "{body}");
    // a method the resource does not have: a 405 Status
    let (code, body) = server.curl(&[
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        &data,
        &format!("{}/api/v1/namespaces/default/services", server.url),
    ]);
    assert_eq!(code, 405, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["reason"], "MethodNotAllowed");
    assert_eq!(status["code"], 405);
}

#[test]
fn json_bodies_end_with_a_newline_as_upstreams_do() {
    let server = Server::start();
    let (_, ok) = server.curl(&[&format!("{}/api/v1/namespaces/default", server.url)]);
    assert!(ok.ends_with("}\n"), "{ok:?}");
    let (_, error) = server.curl(&[&format!("{}/api/v1/namespaces/default/services/none", server.url)]);
    assert!(error.ends_with("}\n"), "{error:?}");
}

#[test]
fn plain_http_on_the_tls_port_gets_a_400() {
    let server = Server::start();
    let plain = server.url.replace("https://", "http://");
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", &format!("{plain}/version")])
        .output()
        .expect("curl is needed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
    assert_eq!(code, "400", "{text}");
    assert_eq!(body.trim(), "Client sent an HTTP request to an HTTPS server.");
    // and TLS clients are served as before on the same port
    let (code, _) = server.curl(&[&format!("{}/version", server.url)]);
    assert_eq!(code, 200);
}

/// Every OpenAPI v3 document the server lists, and the v2 document, pass an independent validator
/// (`openapi-spec-validator`), so tools can generate requests from them: path parameters
/// declared, request bodies typed, operation ids unique.
#[test]
fn openapi_documents_are_valid_openapi() {
    let server = Server::start();
    let (code, body) = server.curl(&[&format!("{}/openapi/v3", server.url)]);
    assert_eq!(code, 200, "{body}");
    let root: serde_json::Value = serde_json::from_str(&body).unwrap();
    let paths = root["paths"].as_object().unwrap();
    assert!(paths.len() >= 7, "{body}");
    let script =
        "import json, sys\nfrom openapi_spec_validator import validate\nvalidate(json.load(open(sys.argv[1])))";
    let documents = paths
        .iter()
        .map(|(gv, entry)| (gv.clone(), entry["serverRelativeURL"].as_str().unwrap().to_owned()))
        .chain([("v2".to_owned(), "/openapi/v2".to_owned())]);
    for (gv, path) in documents {
        let url = format!("{}{path}", server.url);
        let (code, doc) = server.curl(&[&url]);
        assert_eq!(code, 200, "{gv}: {doc}");
        let file = server.dir.path().join("doc.json");
        std::fs::write(&file, &doc).unwrap();
        let out = Command::new(venv_python())
            .args(["-c", script])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{gv} is not valid OpenAPI (`cargo xtask prereqs` installs the validator):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
