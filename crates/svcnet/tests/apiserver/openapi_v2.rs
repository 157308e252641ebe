//! `/openapi/v2` in both forms kube-apiserver serves: JSON, and gnostic's protobuf encoding,
//! which kubectl's client-side validation asks for. The protobuf must be exactly what
//! gnostic makes of the same JSON (`openapi-v2-proto`, built with upstream's binaries), and
//! kubectl must validate a `List` with it.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::api::ApiServer as Server;
use crate::kubectl;

const PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

fn gnostic_encoder() -> PathBuf {
    let bin = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../target/upstream/bin/openapi-v2-proto"
    ));
    assert!(
        bin.exists(),
        "{} is missing: `cargo xtask upstream` builds it (`cargo xtask test` does)",
        bin.display()
    );
    bin
}

/// GET `/openapi/v2` with this Accept header: (HTTP code, Content-Type, body bytes).
fn fetch(server: &Server, accept: &str) -> (u16, String, Vec<u8>) {
    let body = server.dir.path().join("openapi-v2.body");
    let out = Command::new("curl")
        .args(["-s", "-o"])
        .arg(&body)
        .args(["-w", "%{http_code} %{content_type}", "--cacert"])
        .arg(server.dir.path().join("ca.crt"))
        .args(["-H", &format!("Authorization: Bearer {}", server.token())])
        .args(["-H", &format!("Accept: {accept}")])
        .arg(format!("{}/openapi/v2", server.url))
        .output()
        .expect("curl is needed");
    let meta = String::from_utf8_lossy(&out.stdout).into_owned();
    let (code, content_type) = meta.split_once(' ').unwrap_or((&meta, ""));
    (
        code.parse().unwrap_or(0),
        content_type.to_owned(),
        std::fs::read(&body).unwrap_or_default(),
    )
}

#[test]
fn the_protobuf_form_is_gnostics_encoding_of_the_json_form() {
    let server = Server::start();
    let (code, content_type, json) = fetch(&server, "application/json");
    assert_eq!((code, content_type.as_str()), (200, "application/json"));
    let (code, content_type, ours) = fetch(&server, PROTOBUF);
    assert_eq!(
        (code, content_type.as_str()),
        (200, "application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
    );

    let mut gnostic = Command::new(gnostic_encoder())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut gnostic.stdin.take().unwrap(), &json).unwrap();
    let out = gnostic.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "gnostic refused our JSON document: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs = out.stdout;
    let first_difference = ours.iter().zip(&theirs).position(|(a, b)| a != b);
    assert!(
        ours == theirs,
        "our protobuf ({} bytes) differs from gnostic's ({} bytes), first at byte {first_difference:?}",
        ours.len(),
        theirs.len()
    );

    // neither form: 406, as kube-openapi answers
    let (code, _, _) = fetch(&server, "text/html");
    assert_eq!(code, 406);
}

#[test]
fn kubectl_validates_a_list_with_the_protobuf_schema() {
    let server = Server::start();
    let list = |extra: &str| {
        format!(
            "apiVersion: v1\nkind: List\nitems:\n\
             - apiVersion: v1\n  kind: Service\n  metadata: {{name: listed-a}}\n  spec: {{ports: [{{port: 80}}]{extra}}}\n\
             - apiVersion: v1\n  kind: ConfigMap\n  metadata: {{name: listed-b}}\n  data: {{k: v}}\n"
        )
    };
    let file = server.dir.path().join("list.yaml");

    std::fs::write(&file, list("")).unwrap();
    let (ok, text) = kubectl(&server, &["apply", "-f", file.to_str().unwrap()]);
    assert!(ok, "kubectl apply of a List failed:\n{text}");
    assert!(
        text.contains("service/listed-a") && text.contains("configmap/listed-b"),
        "{text}"
    );

    // the schema is really used: an unknown field is caught
    std::fs::write(&file, list(", bogusField: 1")).unwrap();
    let (ok, text) = kubectl(&server, &["apply", "-f", file.to_str().unwrap()]);
    assert!(!ok, "an unknown field passed validation:\n{text}");
    assert!(text.contains("bogusField"), "{text}");
}
