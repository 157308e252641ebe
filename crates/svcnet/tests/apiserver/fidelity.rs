//! Behaviours where the server used to differ from upstream's: deleting a collection of pods
//! is as graceful as deleting one, a service proxy to a port the Service lacks is 503, and a
//! JSON patch cannot take an object's metadata away.

use serde_json::{Value, json};

use crate::api::ApiServer as Server;

fn message(body: &str) -> String {
    let status: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    status["message"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn deleting_a_collection_of_bound_pods_is_graceful_like_deleting_one() {
    let server = Server::start();
    for name in ["a", "b"] {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "x"}},
                         "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "agnhost"}]}});
        server.send("POST", "/api/v1/namespaces/default/pods", &pod, 201);
    }
    let url = format!("{}/api/v1/namespaces/default/pods?labelSelector=app%3Dx", server.url);
    let (code, body) = server.curl(&["-X", "DELETE", &url]);
    assert_eq!(code, 200, "{body}");
    // bound and running: only marked, for their kubelet to stop them (grace 30 s)
    for name in ["a", "b"] {
        let (code, body) = server.curl(&[&format!("{}/api/v1/namespaces/default/pods/{name}", server.url)]);
        assert_eq!(code, 200, "{name} was removed at once: {body}");
        let pod: Value = serde_json::from_str(&body).unwrap();
        assert!(pod["metadata"]["deletionTimestamp"].is_string(), "{body}");
        assert_eq!(pod["metadata"]["deletionGracePeriodSeconds"], 30);
    }
}

#[test]
fn a_service_proxy_to_a_missing_port_is_unavailable() {
    let server = Server::start();
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hello"},
                     "spec": {"ports": [{"port": 80}]}});
    server.send("POST", "/api/v1/namespaces/default/services", &svc, 201);
    let (code, body) = server.curl(&[&format!(
        "{}/api/v1/namespaces/default/services/hello:8080/proxy/",
        server.url
    )]);
    assert_eq!(code, 503, "{body}");
    assert_eq!(message(&body), "no service port 8080 found for service \"hello\"");
}

#[test]
fn a_json_patch_removing_metadata_is_refused_and_changes_nothing() {
    let server = Server::start();
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a", "labels": {"keep": "me"}},
                     "spec": {"ports": [{"port": 80}]}});
    server.send("POST", "/api/v1/namespaces/default/services", &svc, 201);
    let url = format!("{}/api/v1/namespaces/default/services/a", server.url);
    let (code, body) = server.curl(&[
        "-X",
        "PATCH",
        "-H",
        "Content-Type: application/json-patch+json",
        "-d",
        r#"[{"op":"remove","path":"/metadata"}]"#,
        &url,
    ]);
    assert_eq!(code, 400, "{body}");
    assert_eq!(
        message(&body),
        "the name of the object (a based on URL) was undeterminable: name must be provided"
    );
    let (_, body) = server.curl(&[&url]);
    let stored: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(stored["metadata"]["labels"]["keep"], "me");
}

#[test]
fn pods_are_defaulted_and_pending_from_their_creation() {
    let server = Server::start();
    let (ok, text) = crate::kubectl(&server, &["run", "web", "--image=nginx", "--port=80"]);
    assert!(ok, "{text}");
    let (ok, pending) = crate::kubectl(
        &server,
        &["get", "pods", "--field-selector=status.phase=Pending", "-o", "name"],
    );
    assert!(ok && pending.trim() == "pod/web", "{pending}");
    let (ok, described) = crate::kubectl(&server, &["describe", "pod", "web"]);
    assert!(ok, "{described}");
    assert!(described.contains("80/TCP"), "{described}");
    assert!(described.contains("BestEffort"), "{described}");
    let (_, body) = server.curl(&[&format!("{}/api/v1/namespaces/default/pods/web", server.url)]);
    let pod: Value = serde_json::from_str(&body).unwrap();
    for (field, want) in [
        ("restartPolicy", json!("Always")),
        ("dnsPolicy", json!("ClusterFirst")),
        ("terminationGracePeriodSeconds", json!(30)),
        ("schedulerName", json!("default-scheduler")),
    ] {
        assert_eq!(pod["spec"][field], want, "{field}: {body}");
    }
    assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "Always");
    // the official Python client reads the status straight from the create response
    let script = "import sys; from kubernetes import client, config; config.load_kube_config(sys.argv[1]); \
                  p = client.CoreV1Api().create_namespaced_pod('default', {'metadata': {'name': 'py'}, \
                  'spec': {'containers': [{'name': 'c', 'image': 'agnhost:2.53', 'resources': \
                  {'limits': {'cpu': '1', 'memory': '64Mi'}}}]}}); print(p.status.phase, p.status.qos_class)";
    let out = std::process::Command::new(crate::venv_python())
        .args(["-c", script])
        .arg(&server.kubeconfig)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "Pending Guaranteed");
}
