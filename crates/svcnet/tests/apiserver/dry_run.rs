//! A dry run, for every served kind and every write verb (create, replace, status, scale,
//! patch, delete, delete collection), runs every check and changes nothing: no object, no
//! revision (so no watch event), no allocated ClusterIP or NodePort. kubectl's dry runs and
//! `kubectl diff` work.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::api::ApiServer as Server;
use crate::kubectl;

/// The store's revision, as every list reports it.
fn revision(server: &Server) -> String {
    let (code, body) = server.curl(&[&format!("{}/api/v1/namespaces", server.url)]);
    assert_eq!(code, 200, "{body}");
    let list: Value = serde_json::from_str(&body).unwrap();
    list["metadata"]["resourceVersion"].as_str().unwrap().to_owned()
}

/// Waits until the controllers are done (the revision stays put for a second).
fn quiet(server: &Server) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = revision(server);
    loop {
        std::thread::sleep(Duration::from_millis(1000));
        let now = revision(server);
        if now == last {
            return now;
        }
        assert!(Instant::now() < deadline, "the server never went quiet");
        last = now;
    }
}

fn request(server: &Server, method: &str, path: &str, content_type: &str, body: &Value) -> (u16, String) {
    let url = format!("{}{path}", server.url);
    server.curl(&[
        "-X",
        method,
        &url,
        "-H",
        &format!("Content-Type: {content_type}"),
        "-d",
        &body.to_string(),
    ])
}

/// (collection path, a new object for it, an existing object's name).
fn kinds() -> Vec<(&'static str, Value, &'static str)> {
    let container = json!([{"name": "c", "image": "agnhost:2.53"}]);
    let template = json!({"metadata": {"labels": {"app": "d"}}, "spec": {"containers": container}});
    vec![
        ("/api/v1/namespaces", json!({"metadata": {"name": "fresh"}}), "kept"),
        ("/api/v1/nodes", json!({"metadata": {"name": "node-new"}}), "node-1"),
        (
            "/api/v1/namespaces/default/services",
            json!({"metadata": {"name": "new-svc"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30111}]}}),
            "svc",
        ),
        (
            "/api/v1/namespaces/default/pods",
            json!({"metadata": {"name": "new-pod"}, "spec": {"containers": container}}),
            "pod",
        ),
        (
            "/apis/apps/v1/namespaces/default/deployments",
            json!({"metadata": {"name": "new-dep"}, "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "d"}}, "template": template}}),
            "dep",
        ),
        (
            "/apis/apps/v1/namespaces/default/replicasets",
            json!({"metadata": {"name": "new-rs"}, "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "d"}}, "template": template}}),
            "rs",
        ),
        (
            "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
            json!({"metadata": {"name": "new-es"}, "addressType": "IPv4", "endpoints": []}),
            "es",
        ),
        (
            "/api/v1/namespaces/default/endpoints",
            json!({"metadata": {"name": "new-ep"}}),
            "ep",
        ),
        (
            "/api/v1/namespaces/default/events",
            json!({"metadata": {"name": "new-ev"}, "involvedObject": {"kind": "Pod", "name": "pod"}, "reason": "X"}),
            "ev",
        ),
    ]
}

#[test]
fn dry_runs_of_every_kind_and_verb_change_nothing() {
    let server = Server::start();
    // one existing object of every kind
    for (path, new, existing) in kinds() {
        let mut object = new.clone();
        object["metadata"]["name"] = json!(existing);
        if path.ends_with("/services") {
            object["spec"]["ports"][0]["nodePort"] = json!(30222);
        }
        let (code, body) = request(&server, "POST", path, "application/json", &object);
        assert_eq!(code, 201, "{path}: {body}");
    }
    let before = quiet(&server);
    for (path, new, existing) in kinds() {
        let item = format!("{path}/{existing}");
        let (code, body) = request(&server, "POST", &format!("{path}?dryRun=All"), "application/json", &new);
        assert_eq!(code, 201, "dry-run create {path}: {body}");
        let created: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(created["metadata"]["name"], new["metadata"]["name"], "{body}");
        let (code, current) = server.curl(&[&format!("{}{item}", server.url)]);
        assert_eq!(code, 200, "{current}");
        let mut changed: Value = serde_json::from_str(&current).unwrap();
        changed["metadata"]["labels"] = json!({"dry": "run"});
        let (code, body) = request(
            &server,
            "PUT",
            &format!("{item}?dryRun=All"),
            "application/json",
            &changed,
        );
        assert_eq!(code, 200, "dry-run replace {item}: {body}");
        let replaced: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            replaced["metadata"]["labels"]["dry"], "run",
            "the answer shows the result: {body}"
        );
        let patch = json!({"metadata": {"labels": {"dry": "patch"}}});
        let (code, body) = request(
            &server,
            "PATCH",
            &format!("{item}?dryRun=All"),
            "application/merge-patch+json",
            &patch,
        );
        assert_eq!(code, 200, "dry-run patch {item}: {body}");
        if ["services", "pods", "deployments", "replicasets", "nodes"]
            .iter()
            .any(|k| path.ends_with(k))
        {
            let (code, body) = request(
                &server,
                "PUT",
                &format!("{item}/status?dryRun=All"),
                "application/json",
                &changed,
            );
            assert_eq!(code, 200, "dry-run status {item}: {body}");
        }
        if path.ends_with("/deployments") || path.ends_with("/replicasets") {
            let scale = json!({"spec": {"replicas": 7}});
            let (code, body) = request(
                &server,
                "PATCH",
                &format!("{item}/scale?dryRun=All"),
                "application/merge-patch+json",
                &scale,
            );
            assert_eq!(code, 200, "dry-run scale {item}: {body}");
        }
        if !path.ends_with("/namespaces") {
            let (code, body) = server.curl(&["-X", "DELETE", &format!("{}{item}?dryRun=All", server.url)]);
            assert_eq!(code, 200, "dry-run delete {item}: {body}");
            let (code, body) = server.curl(&["-X", "DELETE", &format!("{}{path}?dryRun=All", server.url)]);
            assert_eq!(code, 200, "dry-run delete collection {path}: {body}");
        }
        assert_eq!(revision(&server), before, "a dry run on {path} wrote something");
    }
    assert_eq!(quiet(&server), before, "a dry run set something off");
    // no allocation was kept: the dry-run-created Service's node port is free
    let service =
        json!({"metadata": {"name": "real"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30111}]}});
    let (code, body) = request(
        &server,
        "POST",
        "/api/v1/namespaces/default/services",
        "application/json",
        &service,
    );
    assert_eq!(code, 201, "{body}");
    // and an invalid object is refused by a dry run as by a real write
    let invalid = json!({"metadata": {"name": "bad"}, "spec": {"ports": [{"port": 0}]}});
    let (code, body) = request(
        &server,
        "POST",
        "/api/v1/namespaces/default/services?dryRun=All",
        "application/json",
        &invalid,
    );
    assert_eq!(code, 422, "{body}");
    let (code, body) = request(
        &server,
        "POST",
        "/api/v1/namespaces/default/services?dryRun=Maybe",
        "application/json",
        &service,
    );
    assert_eq!(code, 422, "{body}");
}

#[test]
fn kubectl_dry_runs_and_diff_work() {
    let server = Server::start();
    let manifest = server.dir.path().join("svc.yaml");
    let write = |port: u16| {
        std::fs::write(
            &manifest,
            format!("apiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec: {{ports: [{{port: {port}}}]}}\n"),
        )
        .unwrap()
    };
    let path = manifest.to_str().unwrap();
    write(80);
    let (ok, text) = kubectl(&server, &["create", "--dry-run=server", "-f", path]);
    assert!(ok && text.contains("created (server dry run)"), "{text}");
    let (ok, _) = kubectl(&server, &["get", "service", "web"]);
    assert!(!ok, "a dry-run create stored the service");
    let (ok, text) = kubectl(&server, &["apply", "-f", path]);
    assert!(ok, "{text}");
    write(81);
    // diff exits 1 when it finds differences, and shows them
    let (_, text) = kubectl(&server, &["diff", "-f", path]);
    assert!(
        text.contains("-  - port: 80") || text.contains("-    port: 80"),
        "{text}"
    );
    assert!(text.contains("port: 81"), "{text}");
    let (ok, text) = kubectl(
        &server,
        &["get", "service", "web", "-o", "jsonpath={.spec.ports[0].port}"],
    );
    assert!(ok && text == "80", "diff changed the service: {text}");
}
