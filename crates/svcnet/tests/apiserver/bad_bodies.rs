//! Bodies of the wrong shape, sent to every writable kind by every write verb (and to its
//! `/status` and `/scale`): each field of a
//! valid object (at every depth, `metadata` and the object itself included) replaced by a
//! value of another JSON type. The server must answer each with a Status or an object, never
//! fail (500) or drop the connection, and still serve afterwards.

use http::Method;
use serde_json::{Value, json};

use crate::api::ApiServer as Server;
use crate::raw::{Answer, client, send};

/// A minimal valid object of every writable kind, with its collection's path.
fn samples() -> Vec<(&'static str, Value)> {
    let pod_template =
        json!({ "metadata": { "labels": { "a": "b" } }, "spec": { "containers": [{ "name": "c", "image": "x" }] } });
    let workload = |api: &str, kind: &str| {
        json!({ "apiVersion": api, "kind": kind, "metadata": { "name": "bb" },
                "spec": { "selector": { "matchLabels": { "a": "b" } }, "template": pod_template } })
    };
    let core = |kind: &str, rest: Value| {
        let mut object =
            json!({ "apiVersion": "v1", "kind": kind, "metadata": { "name": "bb", "labels": { "l": "v" } } });
        with_fields(&mut object, rest);
        object
    };
    let rbac = |kind: &str, rest: Value| {
        let mut object =
            json!({ "apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": { "name": "bb" } });
        with_fields(&mut object, rest);
        object
    };
    let role_ref = |kind: &str| json!({ "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": "r" }, "subjects": [{ "kind": "ServiceAccount", "name": "default", "namespace": "default" }] });
    vec![
        ("/api/v1/namespaces", core("Namespace", json!({}))),
        (
            "/api/v1/namespaces/default/services",
            core(
                "Service",
                json!({ "spec": { "selector": { "a": "b" }, "ports": [{ "port": 80, "targetPort": 8080 }] } }),
            ),
        ),
        (
            "/api/v1/namespaces/default/pods",
            core(
                "Pod",
                json!({ "spec": { "containers": [{ "name": "c", "image": "x", "ports": [{ "containerPort": 80 }] }] } }),
            ),
        ),
        ("/api/v1/nodes", core("Node", json!({}))),
        (
            "/api/v1/namespaces/default/endpoints",
            core(
                "Endpoints",
                json!({ "subsets": [{ "addresses": [{ "ip": "10.1.0.1" }], "ports": [{ "port": 80 }] }] }),
            ),
        ),
        (
            "/api/v1/namespaces/default/events",
            core(
                "Event",
                json!({ "involvedObject": { "kind": "Pod", "name": "p", "namespace": "default" }, "reason": "R", "message": "m", "type": "Normal" }),
            ),
        ),
        (
            "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
            json!({ "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": { "name": "bb" }, "addressType": "IPv4",
                    "endpoints": [{ "addresses": ["10.1.0.1"], "conditions": { "ready": true } }], "ports": [{ "port": 80 }] }),
        ),
        (
            "/apis/apps/v1/namespaces/default/deployments",
            workload("apps/v1", "Deployment"),
        ),
        (
            "/apis/apps/v1/namespaces/default/replicasets",
            workload("apps/v1", "ReplicaSet"),
        ),
        (
            "/apis/apps/v1/namespaces/default/daemonsets",
            workload("apps/v1", "DaemonSet"),
        ),
        (
            "/apis/apps/v1/namespaces/default/statefulsets",
            workload("apps/v1", "StatefulSet"),
        ),
        (
            "/apis/batch/v1/namespaces/default/jobs",
            json!({ "apiVersion": "batch/v1", "kind": "Job", "metadata": { "name": "bb" },
                    "spec": { "template": { "spec": { "restartPolicy": "Never", "containers": [{ "name": "c", "image": "x" }] } } } }),
        ),
        (
            "/api/v1/namespaces/default/configmaps",
            core("ConfigMap", json!({ "data": { "a": "b" } })),
        ),
        (
            "/api/v1/namespaces/default/secrets",
            core("Secret", json!({ "data": { "a": "Yg==" } })),
        ),
        (
            "/api/v1/namespaces/default/serviceaccounts",
            core("ServiceAccount", json!({})),
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles",
            rbac(
                "Role",
                json!({ "rules": [{ "apiGroups": [""], "resources": ["pods"], "verbs": ["get"] }] }),
            ),
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            rbac(
                "ClusterRole",
                json!({ "rules": [{ "apiGroups": [""], "resources": ["pods"], "verbs": ["get"] }] }),
            ),
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
            rbac("RoleBinding", role_ref("Role")),
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            rbac("ClusterRoleBinding", role_ref("ClusterRole")),
        ),
        (
            "/apis/networking.k8s.io/v1/servicecidrs",
            json!({ "apiVersion": "networking.k8s.io/v1", "kind": "ServiceCIDR", "metadata": { "name": "bb" }, "spec": { "cidrs": ["10.250.0.0/24"] } }),
        ),
        (
            "/apis/networking.k8s.io/v1/ipaddresses",
            json!({ "apiVersion": "networking.k8s.io/v1", "kind": "IPAddress", "metadata": { "name": "10.96.200.200" },
                    "spec": { "parentRef": { "group": "", "resource": "services", "namespace": "default", "name": "x" } } }),
        ),
    ]
}

/// `object` with the top-level fields of `rest` added.
fn with_fields(object: &mut Value, rest: Value) {
    if let (Some(object), Value::Object(rest)) = (object.as_object_mut(), rest) {
        object.extend(rest);
    }
}

/// Values of every JSON type but `like`'s.
fn others(like: &Value) -> Vec<Value> {
    [json!([]), json!({}), json!(7), json!("x"), json!(true), json!(null)]
        .into_iter()
        .filter(|v| std::mem::discriminant(v) != std::mem::discriminant(like))
        .collect()
}

/// The JSON pointers of every value in `v`, itself first.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(map) => map
            .iter()
            .for_each(|(k, child)| pointers(child, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, child)| pointers(child, format!("{at}/{i}"), out)),
        _ => {}
    }
}

/// `object` with the value at `pointer` replaced (the root: the replacement itself).
fn replaced(object: &Value, pointer: &str, with: &Value) -> Value {
    let mut out = object.clone();
    match out.pointer_mut(pointer) {
        Some(slot) => *slot = with.clone(),
        None => unreachable!("{pointer} was taken from the object"),
    }
    out
}

/// Whether an answer is one a client can act on: a Status of a client error, or an object;
/// a 500 only where upstream answers one (an apply its type cannot hold).
fn acceptable(answer: &Answer, apply: bool) -> bool {
    let is_status = answer.body["kind"] == "Status";
    match answer.code {
        200 | 201 => !is_status,
        400..=499 => is_status,
        500 => {
            apply
                && answer.body["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("failed to create typed"))
        }
        _ => false,
    }
}

#[test]
fn fields_of_the_wrong_type_get_a_status_from_every_write_verb_of_every_kind() {
    let server = Server::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let failures = runtime.block_on(async {
        let client = client(&server).await;
        let mut failures = Vec::new();
        let mut sent = 0;
        for (collection, mut valid) in samples() {
            // a name of its own per kind (a Service's controller makes Endpoints of its name)
            if !collection.ends_with("ipaddresses") {
                let plural = collection.rsplit('/').next().unwrap();
                valid["metadata"]["name"] = json!(format!("bb-{plural}"));
            }
            let name = valid["metadata"]["name"].as_str().unwrap().to_owned();
            let item = format!("{collection}/{name}");
            let created = send(&client, Method::POST, collection, "application/json", &valid).await;
            match created {
                Ok(a) if a.code == 201 => {}
                other => panic!(
                    "the valid sample for {collection} was not created: {:?}",
                    other.map(|a| a.body)
                ),
            }
            let mut paths = Vec::new();
            pointers(&valid, String::new(), &mut paths);
            for pointer in paths {
                for with in others(valid.pointer(&pointer).unwrap()) {
                    let bad = replaced(&valid, &pointer, &with);
                    let json_patch = json!([{ "op": "replace", "path": pointer, "value": with }]);
                    // (kinds without /status or /scale answer those with 404)
                    let (status, scale) = (format!("{item}/status"), format!("{item}/scale"));
                    let applied = format!("{item}?fieldManager=t");
                    let attempts: [(Method, &str, &str, &Value); 9] = [
                        (Method::POST, collection, "application/json", &bad),
                        (Method::PUT, &item, "application/json", &bad),
                        (Method::PATCH, &item, "application/merge-patch+json", &bad),
                        (Method::PATCH, &item, "application/json-patch+json", &json_patch),
                        (Method::PATCH, &applied, "application/apply-patch+yaml", &bad),
                        (Method::PUT, &status, "application/json", &bad),
                        (Method::PATCH, &status, "application/strategic-merge-patch+json", &bad),
                        (Method::PUT, &scale, "application/json", &bad),
                        (Method::PATCH, &scale, "application/json-patch+json", &json_patch),
                    ];
                    for (method, path, content_type, body) in attempts {
                        sent += 1;
                        let apply = content_type.starts_with("application/apply");
                        let what = format!("{method} {path} ({content_type}) with {pointer:?} = {with}");
                        match send(&client, method.clone(), path, content_type, body).await {
                            Ok(answer) if acceptable(&answer, apply) => {}
                            Ok(answer) => failures.push(format!("{what}: {} {}", answer.code, answer.body)),
                            Err(e) => failures.push(format!("{what}: {e}")),
                        }
                    }
                }
            }
            // whatever the requests did, the object can still be read and deleted
            let deleted = send(&client, Method::DELETE, &item, "application/json", &json!({})).await;
            if !matches!(&deleted, Ok(a) if a.code == 200 || a.code == 202) {
                failures.push(format!("DELETE {item}: {:?}", deleted.map(|a| a.body)));
            }
        }
        eprintln!("{sent} requests with a field of the wrong type");
        assert!(sent > 2000, "only {sent} requests were made");
        failures
    });
    assert!(
        failures.is_empty(),
        "{} answers were not a client-error Status or an object:\n{}",
        failures.len(),
        failures.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
    );
    let (ok, text) = crate::kubectl(&server, &["get", "namespaces", "-o", "name"]);
    assert!(
        ok && text.contains("namespace/default"),
        "the server no longer serves: {text}"
    );
}
