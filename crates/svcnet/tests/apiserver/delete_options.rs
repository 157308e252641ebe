//! DELETE honours every DeleteOptions field a client sends: a server-side dry run removes
//! nothing (kubectl puts `dryRun` in the body), and failed preconditions are 409 Conflicts.

use serde_json::{Value, json};

use crate::api::ApiServer as Server;
use crate::kubectl;

fn run(server: &Server, args: &[&str]) -> String {
    let (ok, text) = kubectl(server, args);
    assert!(ok, "kubectl {args:?} failed:\n{text}");
    text
}

/// uid and resourceVersion of every object kubectl lists for `what`.
fn identities(server: &Server, what: &str) -> String {
    run(
        server,
        &[
            "get",
            what,
            "-A",
            "-o",
            "jsonpath={range .items[*]}{.kind}/{.metadata.name} {.metadata.uid} {.metadata.resourceVersion}{\"\\n\"}{end}",
        ],
    )
}

/// DELETE `url` with `body` as its DeleteOptions; returns (code, body).
fn delete_with(server: &Server, url: &str, body: &str) -> (u16, String) {
    server.curl(&["-X", "DELETE", url, "-H", "Content-Type: application/json", "-d", body])
}

fn message(status: &str) -> String {
    let status: Value = serde_json::from_str(status).unwrap_or_else(|e| panic!("{e}: {status}"));
    status["message"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn server_side_dry_run_deletes_nothing() {
    let server = Server::start();
    run(&server, &["create", "namespace", "scratch"]);
    run(&server, &["create", "service", "clusterip", "a", "--tcp=80:8080"]);
    run(&server, &["create", "service", "nodeport", "np", "--tcp=80:8080"]);
    run(
        &server,
        &["create", "deployment", "web", "--image=agnhost", "--replicas=0"],
    );
    run(&server, &["run", "solo", "--image=agnhost", "--restart=Never"]);
    let kinds = "services,deployments,pods,namespaces";
    let before = identities(&server, kinds);
    let addresses = run(
        &server,
        &[
            "get",
            "svc",
            "-o",
            "jsonpath={.items[*].spec.clusterIP} {.items[*].spec.ports[*].nodePort}",
        ],
    );
    for args in [
        &["delete", "service", "a", "--dry-run=server"][..],
        &["delete", "service", "np", "--dry-run=server"],
        &["delete", "deployment", "web", "--dry-run=server"],
        &["delete", "pod", "solo", "--dry-run=server"],
        &["delete", "namespace", "scratch", "--dry-run=server"],
        &["delete", "services", "--all", "--dry-run=server"],
        &["delete", "pods", "--all", "--dry-run=server"],
    ] {
        let text = run(&server, args);
        assert!(text.contains("(server dry run)"), "{args:?}: {text}");
    }
    // DELETE on the collection itself, with the dry run in the body as client libraries send it
    let url = format!("{}/api/v1/namespaces/default/services", server.url);
    let (code, text) = delete_with(&server, &url, r#"{"dryRun":["All"]}"#);
    assert_eq!(code, 200, "{text}");
    assert_eq!(identities(&server, kinds), before, "a dry run changed objects");
    let after = run(
        &server,
        &[
            "get",
            "svc",
            "-o",
            "jsonpath={.items[*].spec.clusterIP} {.items[*].spec.ports[*].nodePort}",
        ],
    );
    assert_eq!(after, addresses);
    // the addresses are still allocated: a Service asking for a's ClusterIP is refused
    let a_ip = run(&server, &["get", "svc", "a", "-o", "jsonpath={.spec.clusterIP}"]);
    let taken = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "b"},
                       "spec": {"clusterIP": a_ip, "ports": [{"port": 80}]}});
    let refused = server.send("POST", "/api/v1/namespaces/default/services", &taken, 422);
    assert!(
        refused["message"].as_str().unwrap().contains("already allocated"),
        "{refused}"
    );
    // without the dry run, the delete happens
    run(&server, &["delete", "service", "a"]);
    let (ok, _) = kubectl(&server, &["get", "service", "a"]);
    assert!(!ok, "service a should be gone");
}

#[test]
fn unknown_dry_run_values_and_contradictory_options_are_refused() {
    let server = Server::start();
    run(&server, &["create", "service", "clusterip", "a", "--tcp=80:8080"]);
    let url = format!("{}/api/v1/namespaces/default/services/a", server.url);
    for (body, want) in [
        (
            r#"{"dryRun":["Some"]}"#,
            "dryRun: Unsupported value: [\"Some\"]: supported values: \"All\"",
        ),
        (
            r#"{"orphanDependents":true,"propagationPolicy":"Background"}"#,
            "orphanDependents and deletionPropagation cannot be both set",
        ),
    ] {
        let (code, text) = delete_with(&server, &url, body);
        assert_eq!(code, 422, "{text}");
        assert!(message(&text).contains(want), "{text}");
    }
    run(&server, &["get", "service", "a"]);
}

#[test]
fn failed_preconditions_are_conflicts_and_delete_nothing() {
    let server = Server::start();
    run(&server, &["create", "service", "clusterip", "a", "--tcp=80:8080"]);
    run(
        &server,
        &["create", "deployment", "web", "--image=agnhost", "--replicas=0"],
    );
    run(&server, &["run", "solo", "--image=agnhost", "--restart=Never"]);
    for (path, plural) in [
        ("/api/v1/namespaces/default/services/a", "Service \"a\""),
        ("/api/v1/namespaces/default/pods/solo", "Pod \"solo\""),
        (
            "/apis/apps/v1/namespaces/default/deployments/web",
            "Deployment.apps \"web\"",
        ),
    ] {
        let url = format!("{}{path}", server.url);
        let current: Value = serde_json::from_str(&server.curl(&[&url]).1).unwrap();
        let uid = current["metadata"]["uid"].as_str().unwrap();
        let rv = current["metadata"]["resourceVersion"].as_str().unwrap();
        for (precondition, want) in [
            (
                json!({"resourceVersion": "1"}),
                format!(
                    "the ResourceVersion in the precondition (1) does not match the ResourceVersion in record ({rv}). The object might have been modified"
                ),
            ),
            (
                json!({"uid": "not-it"}),
                format!(
                    "the UID in the precondition (not-it) does not match the UID in record ({uid}). The object might have been deleted and then recreated"
                ),
            ),
        ] {
            let body = json!({"preconditions": precondition}).to_string();
            let (code, text) = delete_with(&server, &url, &body);
            assert_eq!(code, 409, "{text}");
            assert_eq!(
                message(&text),
                format!("Operation cannot be fulfilled on {plural}: {want}")
            );
            assert_eq!(server.curl(&[&url]).0, 200, "{path} was deleted");
        }
        let body = json!({"preconditions": {"uid": uid, "resourceVersion": rv}}).to_string();
        let (code, text) = delete_with(&server, &url, &body);
        assert_eq!(code, 200, "{text}");
    }
}

/// A delete without preconditions that races another writer (here a client relabelling every
/// object as fast as it can, as a controller writing status would) deletes, and stays done:
/// it is not the caller's 409, and the writer's patch that lost the race does not bring the
/// object back.
#[test]
fn a_delete_without_preconditions_wins_against_concurrent_writes() {
    use crate::raw::{client, send};
    use http::Method;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    const OBJECTS: usize = 200;
    let server = Server::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (failed, during, left) = runtime.block_on(async {
        let client = client(&server).await;
        let collection = "/api/v1/namespaces/default/configmaps";
        let path = move |i: usize| format!("{collection}/race-{i}");
        for i in 0..OBJECTS {
            let body = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": format!("race-{i}") } });
            let created = send(&client, Method::POST, collection, "application/json", &body)
                .await
                .unwrap();
            assert_eq!(created.code, 201, "{}", created.body);
        }
        let (stop, writes) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU32::new(0)));
        let writer = {
            let (client, stop, writes) = (client.clone(), stop.clone(), writes.clone());
            tokio::spawn(async move {
                for round in 0u32.. {
                    for i in 0..OBJECTS {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        let label = json!({ "metadata": { "labels": { "round": round.to_string() } } });
                        let answer =
                            send(&client, Method::PATCH, &path(i), "application/merge-patch+json", &label).await;
                        if answer.is_ok_and(|a| a.code == 200) {
                            writes.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        };
        // let the writer get going, then delete every object while it writes
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let mut failed = Vec::new();
        let before = writes.load(Ordering::Relaxed);
        for i in (0..OBJECTS).rev() {
            let deleted = send(&client, Method::DELETE, &path(i), "application/json", &json!({}))
                .await
                .unwrap();
            if deleted.code != 200 {
                failed.push(format!("{}: {} {}", path(i), deleted.code, deleted.body));
            }
        }
        let during = writes.load(Ordering::Relaxed) - before;
        stop.store(true, Ordering::Relaxed);
        writer.await.unwrap();
        let list = send(&client, Method::GET, collection, "application/json", &json!(null))
            .await
            .unwrap();
        let left: Vec<String> = list.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|cm| cm["metadata"]["name"].as_str())
            .filter(|n| n.starts_with("race-"))
            .map(str::to_owned)
            .collect();
        (failed, during, left)
    });
    assert!(failed.is_empty(), "deletes failed:\n{}", failed.join("\n"));
    assert!(left.is_empty(), "deleted objects came back: {left:?}");
    assert!(
        during >= 20,
        "the writer made only {during} writes while the deletes ran: no race was run"
    );
}
