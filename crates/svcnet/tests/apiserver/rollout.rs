//! Deployments roll out as upstream's controller rolls them: within maxSurge and
//! maxUnavailable, numbered by revisions that `kubectl rollout history` lists and `kubectl
//! rollout undo` goes back to. Pods become ready by a stand-in kubelet that marks every pod
//! Running and Ready through `/status`, as the lab's kubelets do.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::api::ApiServer as Server;
use crate::kubectl;

fn run(server: &Server, args: &[&str]) -> String {
    let (ok, text) = kubectl(server, args);
    assert!(ok, "kubectl {args:?} failed:\n{text}");
    text
}

/// The Deployment's revision annotation.
fn revision(server: &Server) -> String {
    let jsonpath = "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}";
    run(server, &["get", "deployment", "web", "-o", jsonpath])
}

/// Marks every pod Running and Ready; returns how many active pods there are.
fn kubelet_round(server: &Server) -> usize {
    let (_, body) = server.curl(&[&format!("{}/api/v1/namespaces/default/pods", server.url)]);
    let list: Value = serde_json::from_str(&body).unwrap();
    let pods = list["items"].as_array().cloned().unwrap_or_default();
    let mut active = 0;
    for (i, mut pod) in pods.into_iter().enumerate() {
        if !pod["metadata"]["deletionTimestamp"].is_null() {
            continue;
        }
        active += 1;
        if pod["status"]["phase"] == "Running" {
            continue;
        }
        let name = pod["metadata"]["name"].as_str().unwrap().to_owned();
        pod["status"] = json!({"phase": "Running", "podIP": format!("10.244.9.{}", i + 1),
            "conditions": [{"type": "Ready", "status": "True"}]});
        let url = format!("{}/api/v1/namespaces/default/pods/{name}/status", server.url);
        server.curl(&[
            "-X",
            "PUT",
            &url,
            "-H",
            "Content-Type: application/json",
            "-d",
            &pod.to_string(),
        ]);
    }
    active
}

/// Runs the stand-in kubelet until the Deployment's rollout is complete; returns the most
/// active pods seen at once.
fn roll(server: &Server) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut most = 0;
    loop {
        most = most.max(kubelet_round(server));
        let (ok, _) = kubectl(server, &["rollout", "status", "deployment/web", "--timeout=1s"]);
        if ok {
            return most.max(kubelet_round(server));
        }
        assert!(Instant::now() < deadline, "the rollout did not complete");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn rollouts_respect_surge_and_revisions_undo() {
    let server = Server::start();
    run(
        &server,
        &["create", "deployment", "web", "--image=agnhost:2.53", "--replicas=4"],
    );
    assert!(roll(&server) <= 4);
    run(&server, &["set", "image", "deployment/web", "agnhost=agnhost:2.54"]);
    run(&server, &["set", "image", "deployment/web", "agnhost=agnhost:2.55"]);
    let most = roll(&server);
    assert!(
        most <= 5,
        "replicas 4 with maxSurge 25% allows 5 pods at once, saw {most}"
    );
    let history = run(&server, &["rollout", "history", "deployment/web"]);
    let revisions: Vec<&str> = history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .collect();
    assert!(revisions.len() >= 2 && revisions.last() == Some(&"3"), "{history}");
    assert_eq!(revision(&server), "3");
    run(&server, &["rollout", "undo", "deployment/web"]);
    roll(&server);
    let image = run(
        &server,
        &[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ],
    );
    assert_eq!(image, "agnhost:2.54");
    assert_eq!(revision(&server), "4");
}

#[test]
fn recreate_and_pause() {
    let server = Server::start();
    run(
        &server,
        &["create", "deployment", "web", "--image=agnhost:2.53", "--replicas=2"],
    );
    roll(&server);
    // paused: a new template starts no rollout
    run(&server, &["rollout", "pause", "deployment/web"]);
    run(&server, &["set", "image", "deployment/web", "agnhost=agnhost:2.54"]);
    std::thread::sleep(Duration::from_secs(1));
    let sets = run(&server, &["get", "replicasets", "-o", "name"]);
    assert_eq!(
        sets.lines().count(),
        1,
        "a paused deployment made a new ReplicaSet:\n{sets}"
    );
    let reason = run(
        &server,
        &[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Progressing\")].reason}",
        ],
    );
    assert_eq!(reason, "DeploymentPaused");
    // Recreate: the old pods go before any new one is made
    run(
        &server,
        &[
            "patch",
            "deployment",
            "web",
            "--type=merge",
            "-p",
            r#"{"spec":{"strategy":{"type":"Recreate","rollingUpdate":null}}}"#,
        ],
    );
    run(&server, &["rollout", "resume", "deployment/web"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, body) = server.curl(&[&format!("{}/api/v1/namespaces/default/pods", server.url)]);
        let pods: Value = serde_json::from_str(&body).unwrap();
        let images: Vec<String> = pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .map(|p| p["spec"]["containers"][0]["image"].as_str().unwrap_or("").to_owned())
            .collect();
        assert!(
            !(images.iter().any(|i| i == "agnhost:2.53") && images.iter().any(|i| i == "agnhost:2.54")),
            "Recreate ran old and new pods together: {images:?}"
        );
        if images.len() == 2 && images.iter().all(|i| i == "agnhost:2.54") {
            break;
        }
        kubelet_round(&server);
        assert!(Instant::now() < deadline, "the recreate did not finish: {images:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
