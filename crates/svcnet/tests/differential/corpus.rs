//! The requests replayed against both API servers, generated from tables so each field
//! combination is one line: Services of every type with valid and invalid fields, type
//! transitions, single-field updates, Pods, Deployments, EndpointSlices, the three patch types, dry run, delete
//! options and list parameters. Pure: the same corpus every run.

use serde_json::{Value, json};

/// One request.
#[derive(Debug, Clone)]
pub struct Request {
    /// Unique and stable: how a difference is named.
    pub id: String,
    pub method: &'static str,
    pub path: String,
    pub content_type: &'static str,
    pub body: Option<String>,
}

/// The namespace every case works in (created on both servers first).
pub const NAMESPACE: &str = "diff";

fn services_path() -> String {
    format!("/api/v1/namespaces/{NAMESPACE}/services")
}

fn request(id: String, method: &'static str, path: String, body: Option<Value>) -> Request {
    Request {
        id,
        method,
        path,
        content_type: "application/json",
        body: body.map(|b| b.to_string()),
    }
}

fn service(name: &str, spec: Value) -> Value {
    json!({ "apiVersion": "v1", "kind": "Service", "metadata": { "name": name }, "spec": spec })
}

/// The Service types and the base spec each starts from.
fn types() -> Vec<(&'static str, Value)> {
    let port = json!([{ "port": 80, "targetPort": 8080 }]);
    vec![
        (
            "clusterip",
            json!({ "type": "ClusterIP", "selector": { "app": "a" }, "ports": port }),
        ),
        (
            "nodeport",
            json!({ "type": "NodePort", "selector": { "app": "a" }, "ports": port }),
        ),
        (
            "loadbalancer",
            json!({ "type": "LoadBalancer", "selector": { "app": "a" }, "ports": port }),
        ),
        (
            "headless",
            json!({ "clusterIP": "None", "selector": { "app": "a" }, "ports": port }),
        ),
        (
            "externalname",
            json!({ "type": "ExternalName", "externalName": "example.com" }),
        ),
    ]
}

/// Field variants laid over each type's base spec: (name, fields to set; null removes).
fn variants() -> Vec<(&'static str, Value)> {
    vec![
        ("plain", json!({})),
        ("port-zero", json!({ "ports": [{ "port": 0 }] })),
        ("port-too-big", json!({ "ports": [{ "port": 70000 }] })),
        (
            "duplicate-ports",
            json!({ "ports": [{ "name": "a", "port": 80 }, { "name": "b", "port": 80 }] }),
        ),
        ("unnamed-ports", json!({ "ports": [{ "port": 80 }, { "port": 81 }] })),
        (
            "two-protocols",
            json!({ "ports": [{ "name": "t", "port": 53, "protocol": "TCP" }, { "name": "u", "port": 53, "protocol": "UDP" }] }),
        ),
        ("bad-protocol", json!({ "ports": [{ "port": 80, "protocol": "FOO" }] })),
        ("sctp", json!({ "ports": [{ "port": 80, "protocol": "SCTP" }] })),
        (
            "named-target",
            json!({ "ports": [{ "port": 80, "targetPort": "http" }] }),
        ),
        (
            "bad-target-name",
            json!({ "ports": [{ "port": 80, "targetPort": "HTTP_X" }] }),
        ),
        ("bad-port-name", json!({ "ports": [{ "name": "Web", "port": 80 }] })),
        (
            "app-protocol",
            json!({ "ports": [{ "port": 80, "appProtocol": "kubernetes.io/h2c" }] }),
        ),
        (
            "bad-app-protocol",
            json!({ "ports": [{ "port": 80, "appProtocol": "not/a/valid/one" }] }),
        ),
        ("affinity", json!({ "sessionAffinity": "ClientIP" })),
        (
            "affinity-timeout",
            json!({ "sessionAffinity": "ClientIP", "sessionAffinityConfig": { "clientIP": { "timeoutSeconds": 100 } } }),
        ),
        (
            "affinity-timeout-zero",
            json!({ "sessionAffinity": "ClientIP", "sessionAffinityConfig": { "clientIP": { "timeoutSeconds": 0 } } }),
        ),
        ("bad-affinity", json!({ "sessionAffinity": "Sticky" })),
        ("etp-local", json!({ "externalTrafficPolicy": "Local" })),
        ("bad-etp", json!({ "externalTrafficPolicy": "Nearby" })),
        ("itp-local", json!({ "internalTrafficPolicy": "Local" })),
        ("bad-itp", json!({ "internalTrafficPolicy": "Nearby" })),
        ("require-dual", json!({ "ipFamilyPolicy": "RequireDualStack" })),
        ("prefer-dual", json!({ "ipFamilyPolicy": "PreferDualStack" })),
        ("bad-family-policy", json!({ "ipFamilyPolicy": "Sometimes" })),
        ("ipv6-family", json!({ "ipFamilies": ["IPv6"] })),
        ("cluster-ip", json!({ "clusterIP": "10.96.100.100" })),
        ("cluster-ip-outside", json!({ "clusterIP": "192.168.1.1" })),
        ("cluster-ip-garbage", json!({ "clusterIP": "ten.one" })),
        ("node-port", json!({ "ports": [{ "port": 80, "nodePort": 30055 }] })),
        (
            "node-port-outside",
            json!({ "ports": [{ "port": 80, "nodePort": 80 }] }),
        ),
        ("external-name-set", json!({ "externalName": "other.example.com" })),
        ("bad-external-name", json!({ "externalName": "-bad-" })),
        (
            "lb-source-ranges",
            json!({ "loadBalancerSourceRanges": ["10.0.0.0/8"] }),
        ),
        (
            "bad-lb-source-ranges",
            json!({ "loadBalancerSourceRanges": ["10.0.0.0/33"] }),
        ),
        ("lb-class", json!({ "loadBalancerClass": "example.com/lb" })),
        ("no-lb-node-ports", json!({ "allocateLoadBalancerNodePorts": false })),
        ("traffic-prefer-close", json!({ "trafficDistribution": "PreferClose" })),
        ("traffic-same-node", json!({ "trafficDistribution": "PreferSameNode" })),
        ("bad-traffic", json!({ "trafficDistribution": "Anywhere" })),
        ("bad-selector", json!({ "selector": { "app": "not valid!" } })),
        ("external-ips", json!({ "externalIPs": ["203.0.113.7"] })),
        ("bad-external-ips", json!({ "externalIPs": ["nope"] })),
        ("publish-unready", json!({ "publishNotReadyAddresses": true })),
        ("health-check-port", json!({ "healthCheckNodePort": 31000 })),
        ("no-ports", json!({ "ports": null })),
    ]
}

fn overlay(base: &Value, fields: &Value) -> Value {
    let mut spec = base.clone();
    for (k, v) in fields.as_object().into_iter().flatten() {
        if v.is_null() {
            spec.as_object_mut().expect("a spec").remove(k);
        } else {
            spec[k] = v.clone();
        }
    }
    spec
}

/// Creates of every type × variant, each read back when it exists.
fn service_matrix() -> Vec<Request> {
    let mut out = Vec::new();
    for (type_name, base) in types() {
        for (variant, fields) in variants() {
            let name = format!("{type_name}-{variant}");
            let body = service(&name, overlay(&base, &fields));
            out.push(request(format!("create/{name}"), "POST", services_path(), Some(body)));
        }
    }
    out.push(request(
        "create/bad-name".into(),
        "POST",
        services_path(),
        Some(service("Bad_Name", types()[0].1.clone())),
    ));
    out.push(request(
        "create/duplicate".into(),
        "POST",
        services_path(),
        Some(service("clusterip-plain", types()[0].1.clone())),
    ));
    // what upstream warns about (Warning headers) and the topology annotations' agreement
    let port = json!([{ "port": 80 }]);
    for (id, meta, spec) in [
        (
            "hints-annotation",
            json!({ "annotations": { "service.kubernetes.io/topology-aware-hints": "Auto" } }),
            json!({ "ports": port }),
        ),
        (
            "topology-annotations-disagree",
            json!({ "annotations": { "service.kubernetes.io/topology-aware-hints": "Auto", "service.kubernetes.io/topology-mode": "Disabled" } }),
            json!({ "ports": port }),
        ),
        (
            "topology-annotations-agree",
            json!({ "annotations": { "service.kubernetes.io/topology-aware-hints": "Auto", "service.kubernetes.io/topology-mode": "Auto" } }),
            json!({ "ports": port }),
        ),
        (
            "external-ip-noncanonical",
            json!({}),
            json!({ "ports": port, "externalIPs": ["fd00:0:99::1"] }),
        ),
        (
            "external-ip-leading-zero",
            json!({}),
            json!({ "ports": port, "externalIPs": ["192.168.099.1"] }),
        ),
        (
            "lb-source-range-ambiguous",
            json!({}),
            json!({ "type": "LoadBalancer", "ports": port, "loadBalancerSourceRanges": ["10.1.2.3/16"] }),
        ),
        (
            "headless-ignored-fields",
            json!({}),
            json!({ "clusterIP": "None", "ports": port, "sessionAffinity": "ClientIP", "externalIPs": ["192.168.99.9"] }),
        ),
        (
            "externalname-external-ips",
            json!({}),
            json!({ "type": "ExternalName", "externalName": "db.example.com", "externalIPs": ["192.168.99.8"] }),
        ),
        (
            "traffic-same-zone",
            json!({}),
            json!({ "ports": port, "trafficDistribution": "PreferSameZone" }),
        ),
    ] {
        let mut body = service(&format!("w-{id}"), spec);
        if let Some(extra) = meta.as_object() {
            for (k, v) in extra {
                body["metadata"][k] = v.clone();
            }
        }
        out.push(request(format!("warn/{id}"), "POST", services_path(), Some(body)));
    }
    out.push(request(
        "create/name-mismatch-kind".into(),
        "POST",
        services_path(),
        Some(json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "x" } })),
    ));
    out
}

/// Type transitions: each Service is created as `from`, read, then replaced as `to`.
fn transitions() -> Vec<Request> {
    let all = types();
    let spec_of = |t: &str| {
        all.iter()
            .find(|(n, _)| *n == t)
            .map(|(_, s)| s.clone())
            .expect("a type")
    };
    let pairs = [
        ("clusterip", "nodeport"),
        ("nodeport", "clusterip"),
        ("clusterip", "loadbalancer"),
        ("loadbalancer", "nodeport"),
        ("nodeport", "loadbalancer"),
        ("clusterip", "externalname"),
        ("externalname", "clusterip"),
        ("externalname", "nodeport"),
        ("headless", "clusterip"),
        ("clusterip", "headless"),
        ("loadbalancer", "externalname"),
    ];
    let mut out = Vec::new();
    for (from, to) in pairs {
        let name = format!("move-{from}-to-{to}");
        out.push(request(
            format!("transition/{name}/create"),
            "POST",
            services_path(),
            Some(service(&name, spec_of(from))),
        ));
        // a replace without resourceVersion (unconditional), the new type's whole spec
        out.push(request(
            format!("transition/{name}/replace"),
            "PUT",
            format!("{}/{name}", services_path()),
            Some(service(&name, spec_of(to))),
        ));
        out.push(request(
            format!("transition/{name}/get"),
            "GET",
            format!("{}/{name}", services_path()),
            None,
        ));
    }
    out
}

/// Updates of one field by merge patch, each on a Service of its own created just before.
fn updates() -> Vec<Request> {
    let all = types();
    let spec_of = |t: &str| {
        all.iter()
            .find(|(n, _)| *n == t)
            .map(|(_, s)| s.clone())
            .expect("a type")
    };
    let cases: Vec<(&str, &str, Value)> = vec![
        (
            "change-cluster-ip",
            "clusterip",
            json!({ "spec": { "clusterIP": "10.96.200.200", "clusterIPs": ["10.96.200.200"] } }),
        ),
        (
            "clear-cluster-ip",
            "clusterip",
            json!({ "spec": { "clusterIP": "", "clusterIPs": null } }),
        ),
        ("to-ipv6", "clusterip", json!({ "spec": { "ipFamilies": ["IPv6"] } })),
        (
            "require-dual",
            "clusterip",
            json!({ "spec": { "ipFamilyPolicy": "RequireDualStack" } }),
        ),
        (
            "nodeport-to-clusterip",
            "nodeport",
            json!({ "spec": { "type": "ClusterIP" } }),
        ),
        // in the static band (30000–30085), which random allocation leaves alone while the
        // dynamic band has room: a port above it collided now and then with one allocated
        // at random earlier in the run
        (
            "set-node-port",
            "nodeport",
            json!({ "spec": { "ports": [{ "port": 80, "targetPort": 8080, "nodePort": 30044 }] } }),
        ),
        (
            "affinity-config-without-affinity",
            "clusterip",
            json!({ "spec": { "sessionAffinityConfig": { "clientIP": { "timeoutSeconds": 60 } } } }),
        ),
        (
            "etp-local-on-clusterip",
            "clusterip",
            json!({ "spec": { "externalTrafficPolicy": "Local" } }),
        ),
        (
            "add-lb-class",
            "loadbalancer",
            json!({ "spec": { "loadBalancerClass": "example.com/lb" } }),
        ),
        (
            "change-selector",
            "clusterip",
            json!({ "spec": { "selector": { "app": "b" } } }),
        ),
        ("remove-ports", "clusterip", json!({ "spec": { "ports": null } })),
        (
            "headless-gets-ip",
            "headless",
            json!({ "spec": { "clusterIP": "10.96.201.201", "clusterIPs": ["10.96.201.201"] } }),
        ),
        (
            "change-external-name",
            "externalname",
            json!({ "spec": { "externalName": "other.example.com" } }),
        ),
        (
            "lb-no-node-ports",
            "loadbalancer",
            json!({ "spec": { "allocateLoadBalancerNodePorts": false } }),
        ),
        (
            "lb-etp-local",
            "loadbalancer",
            json!({ "spec": { "externalTrafficPolicy": "Local" } }),
        ),
        (
            "nodeport-to-externalname",
            "nodeport",
            json!({ "spec": { "type": "ExternalName", "externalName": "example.com" } }),
        ),
    ];
    let mut out = Vec::new();
    for (case, from, patch) in cases {
        let name = format!("upd-{case}");
        out.push(request(
            format!("update/{case}/create"),
            "POST",
            services_path(),
            Some(service(&name, spec_of(from))),
        ));
        out.push(Request {
            id: format!("update/{case}/patch"),
            method: "PATCH",
            path: format!("{}/{name}", services_path()),
            content_type: "application/merge-patch+json",
            body: Some(patch.to_string()),
        });
    }
    out
}

/// Server-side apply on a ConfigMap and a Service: create, conflicts between managers (an
/// applier's and an updater's), force, and the refusals of a bad request.
fn applies() -> Vec<Request> {
    let path = |name: &str, query: &str| format!("/api/v1/namespaces/{NAMESPACE}/{name}?{query}");
    let apply = |id: &str, target: String, body: String| Request {
        id: format!("apply/{id}"),
        method: "PATCH",
        path: target,
        content_type: "application/apply-patch+yaml",
        body: Some(body),
    };
    let config_map =
        |data: &str| format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\ndata: {{{data}}}\n");
    let cm = |query: &str| path("configmaps/applied", query);
    vec![
        apply("create", cm("fieldManager=one"), config_map("a: '1', b: '1'")),
        apply("conflict-with-applier", cm("fieldManager=two"), config_map("a: '2'")),
        apply("same-value-is-shared", cm("fieldManager=two"), config_map("b: '1'")),
        apply("forced", cm("fieldManager=two&force=true"), config_map("a: '2', b: '1'")),
        Request {
            id: "apply/update-by-another".into(),
            method: "PATCH",
            path: cm("fieldManager=three"),
            content_type: "application/merge-patch+json",
            body: Some(json!({ "data": { "b": "3", "c": "3" } }).to_string()),
        },
        apply("conflicts-with-updater", cm("fieldManager=two"), config_map("a: '2', b: '1', c: '2'")),
        apply("drop-owned-field", cm("fieldManager=two"), config_map("b: '3'")),
        request("apply/get".into(), "GET", cm(""), None),
        apply("no-manager", cm(""), config_map("a: '1'")),
        apply("wrong-version", cm("fieldManager=one"), config_map("a: '1'").replace("v1", "v2")),
        apply("with-managed-fields", cm("fieldManager=one"), config_map("a: '1'").replace("  name: applied\n", "  name: applied\n  managedFields: []\n")),
        apply("bad-yaml", cm("fieldManager=one"), "apiVersion: [\n".into()),
        apply("other-name", cm("fieldManager=one"), config_map("a: '1'").replace("name: applied", "name: other")),
        Request {
            id: "apply/force-on-merge-patch".into(),
            method: "PATCH",
            path: cm("fieldManager=one&force=true"),
            content_type: "application/merge-patch+json",
            body: Some(json!({ "data": { "a": "9" } }).to_string()),
        },
        apply(
            "service-create",
            path("services/applied", "fieldManager=one"),
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: applied\nspec:\n  selector: {app: a}\n  ports: [{port: 80}]\n".into(),
        ),
        apply(
            "service-second-port",
            path("services/applied", "fieldManager=two"),
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: applied\nspec:\n  ports: [{port: 443, name: https}]\n".into(),
        ),
        apply(
            "service-duplicate-port",
            path("services/applied", "fieldManager=two"),
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: applied\nspec:\n  ports: [{port: 443}, {port: 443}]\n".into(),
        ),
        // client-side apply's annotation handed over to kubectl's server-side applier
        Request {
            id: "apply/handover-create".into(),
            method: "POST",
            path: path("configmaps", "fieldManager=kubectl-client-side-apply"),
            content_type: "application/json",
            body: Some(
                json!({ "apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": { "name": "handed", "annotations": { "kubectl.kubernetes.io/last-applied-configuration":
                            "{\"apiVersion\":\"v1\",\"data\":{\"a\":\"1\",\"b\":\"1\",\"c\":\"1\"},\"kind\":\"ConfigMap\",\"metadata\":{\"annotations\":{},\"name\":\"handed\",\"namespace\":\"diff\"}}\n" } },
                        "data": { "a": "1", "b": "1", "c": "1" } })
                .to_string(),
            ),
        },
        Request {
            id: "apply/handover-changed-by-another".into(),
            method: "PATCH",
            path: path("configmaps/handed", "fieldManager=other"),
            content_type: "application/merge-patch+json",
            body: Some(json!({ "data": { "b": "2" } }).to_string()),
        },
        apply(
            "handover-not-kubectl",
            path("configmaps/handed", "fieldManager=tool"),
            config_map("a: '2'").replace("name: applied", "name: handed"),
        ),
        apply(
            "handover-kubectl",
            path("configmaps/handed", "fieldManager=kubectl"),
            config_map("a: '2', c: '1'").replace("name: applied", "name: handed"),
        ),
        apply(
            "handover-changed-field-conflicts",
            path("configmaps/handed", "fieldManager=kubectl"),
            config_map("a: '2', b: '3'").replace("name: applied", "name: handed"),
        ),
        request("apply/handover-get".into(), "GET", path("configmaps/handed", ""), None),
        apply("a-list", cm("fieldManager=one"), "- a\n- b\n".into()),
        apply("empty", cm("fieldManager=one"), "".into()),
        apply("null", cm("fieldManager=one"), "null\n".into()),
        apply("metadata-a-list", cm("fieldManager=one"), "apiVersion: v1\nkind: ConfigMap\nmetadata: [a]\n".into()),
        // bodies that are not objects, on a kind other than Service
        Request {
            id: "apply/replace-with-array".into(),
            method: "PUT",
            path: cm(""),
            content_type: "application/json",
            body: Some("[]".into()),
        },
        Request {
            id: "apply/create-array".into(),
            method: "POST",
            path: path("configmaps", ""),
            content_type: "application/json",
            body: Some("[{}]".into()),
        },
        // a replace of a missing object: 404, or a create where the kind allows it
        Request {
            id: "replace/missing-configmap".into(),
            method: "PUT",
            path: path("configmaps/never-made", ""),
            content_type: "application/json",
            body: Some(json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "never-made" } }).to_string()),
        },
        Request {
            id: "replace/missing-endpoints".into(),
            method: "PUT",
            path: path("endpoints/made-by-put", ""),
            content_type: "application/json",
            body: Some(json!({ "apiVersion": "v1", "kind": "Endpoints", "metadata": { "name": "made-by-put" } }).to_string()),
        },
        Request {
            id: "replace/missing-role".into(),
            method: "PUT",
            path: format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{NAMESPACE}/roles/made-by-put"),
            content_type: "application/json",
            body: Some(json!({ "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": { "name": "made-by-put" }, "rules": [{ "apiGroups": [""], "resources": ["pods"], "verbs": ["get"] }] }).to_string()),
        },
        Request {
            id: "replace/missing-secret-status".into(),
            method: "PUT",
            path: path("secrets/never-made", ""),
            content_type: "application/json",
            body: Some(json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "never-made", "resourceVersion": "5" } }).to_string()),
        },
        request(
            "replace/get-endpoints".into(),
            "GET",
            path("endpoints/made-by-put", ""),
            None,
        ),
        Request {
            id: "apply/merge-to-array".into(),
            method: "PATCH",
            path: cm(""),
            content_type: "application/merge-patch+json",
            body: Some("[]".into()),
        },
    ]
}

/// The three patch types on one Service, valid and not.
fn patches() -> Vec<Request> {
    let path = format!("{}/patched", services_path());
    let patch = |id: &str, content_type: &'static str, body: Value| Request {
        id: format!("patch/{id}"),
        method: "PATCH",
        path: path.clone(),
        content_type,
        body: Some(body.to_string()),
    };
    vec![
        request(
            "patch/create".into(),
            "POST",
            services_path(),
            Some(service("patched", types()[1].1.clone())),
        ),
        patch(
            "merge-label",
            "application/merge-patch+json",
            json!({ "metadata": { "labels": { "a": "b" } } }),
        ),
        patch(
            "merge-bad-port",
            "application/merge-patch+json",
            json!({ "spec": { "ports": [{ "port": -1 }] } }),
        ),
        patch(
            "strategic-add-port",
            "application/strategic-merge-patch+json",
            json!({ "spec": { "ports": [{ "name": "extra", "port": 81, "protocol": "TCP" }] } }),
        ),
        patch(
            "strategic-name-first",
            "application/strategic-merge-patch+json",
            json!({ "spec": { "ports": [{ "name": "http", "port": 80, "protocol": "TCP" }] } }),
        ),
        patch(
            "json-replace-type",
            "application/json-patch+json",
            json!([{ "op": "replace", "path": "/spec/type", "value": "ClusterIP" }]),
        ),
        patch(
            "json-test-fails",
            "application/json-patch+json",
            json!([{ "op": "test", "path": "/spec/type", "value": "LoadBalancer" }]),
        ),
        patch(
            "json-bad-path",
            "application/json-patch+json",
            json!([{ "op": "remove", "path": "/spec/nothing" }]),
        ),
        patch("json-not-a-list", "application/json-patch+json", json!({ "op": "add" })),
        // patches that would leave something other than an object
        patch("merge-to-array", "application/merge-patch+json", json!([])),
        patch("merge-to-number", "application/merge-patch+json", json!(7)),
        patch("merge-null", "application/merge-patch+json", json!(null)),
        patch("strategic-null", "application/strategic-merge-patch+json", json!(null)),
        patch(
            "undecodable-metadata-string",
            "application/merge-patch+json",
            json!({ "metadata": "x" }),
        ),
        patch(
            "undecodable-ports-map",
            "application/merge-patch+json",
            json!({ "spec": { "ports": { "a": 1 } } }),
        ),
        patch(
            "strategic-to-array",
            "application/strategic-merge-patch+json",
            json!([1]),
        ),
        patch(
            "json-replace-root",
            "application/json-patch+json",
            json!([{ "op": "replace", "path": "", "value": [] }]),
        ),
        patch(
            "undecodable-metadata-array",
            "application/json-patch+json",
            json!([{ "op": "replace", "path": "/metadata", "value": [] }]),
        ),
        patch("unknown-type", "application/x-unknown", json!({})),
        patch(
            "rename",
            "application/merge-patch+json",
            json!({ "metadata": { "name": "other" } }),
        ),
        request("patch/get".into(), "GET", path.clone(), None),
        Request {
            id: "patch/missing".into(),
            method: "PATCH",
            path: format!("{}/absent", services_path()),
            content_type: "application/merge-patch+json",
            body: Some("{}".into()),
        },
    ]
}

/// Server-side dry run on each write, and delete options.
fn dry_run_and_delete() -> Vec<Request> {
    let item = |name: &str| format!("{}/{name}", services_path());
    vec![
        request(
            "dryrun/create".into(),
            "POST",
            format!("{}?dryRun=All", services_path()),
            Some(service("dry", types()[1].1.clone())),
        ),
        request("dryrun/not-created".into(), "GET", item("dry"), None),
        request(
            "dryrun/bad-value".into(),
            "POST",
            format!("{}?dryRun=Some", services_path()),
            Some(service("dry", types()[0].1.clone())),
        ),
        request(
            "dryrun/delete".into(),
            "DELETE",
            format!("{}?dryRun=All", item("clusterip-plain")),
            None,
        ),
        request("dryrun/still-there".into(), "GET", item("clusterip-plain"), None),
        request(
            "delete/options-dry-run-body".into(),
            "DELETE",
            item("clusterip-plain"),
            Some(json!({ "kind": "DeleteOptions", "apiVersion": "v1", "dryRun": ["All"] })),
        ),
        request(
            "delete/precondition-uid".into(),
            "DELETE",
            item("clusterip-plain"),
            Some(json!({ "kind": "DeleteOptions", "apiVersion": "v1", "preconditions": { "uid": "not-the-uid" } })),
        ),
        request(
            "delete/precondition-rv".into(),
            "DELETE",
            item("clusterip-plain"),
            Some(json!({ "kind": "DeleteOptions", "apiVersion": "v1", "preconditions": { "resourceVersion": "1" } })),
        ),
        request(
            "delete/bad-propagation".into(),
            "DELETE",
            format!("{}?propagationPolicy=Sideways", item("clusterip-plain")),
            None,
        ),
        request(
            "delete/both-orphan-and-policy".into(),
            "DELETE",
            item("clusterip-plain"),
            Some(
                json!({ "kind": "DeleteOptions", "apiVersion": "v1", "orphanDependents": true, "propagationPolicy": "Foreground" }),
            ),
        ),
        request(
            "delete/negative-grace".into(),
            "DELETE",
            format!("{}?gracePeriodSeconds=-5", item("nodeport-plain")),
            None,
        ),
        request("delete/missing".into(), "DELETE", item("absent"), None),
        request(
            "delete/foreground".into(),
            "DELETE",
            format!("{}?propagationPolicy=Background", item("nodeport-affinity")),
            None,
        ),
        request("delete/gone".into(), "GET", item("nodeport-affinity"), None),
    ]
}

/// Pods, Deployments and EndpointSlices, valid and not.
fn workloads() -> Vec<Request> {
    let pods = format!("/api/v1/namespaces/{NAMESPACE}/pods");
    let deployments = format!("/apis/apps/v1/namespaces/{NAMESPACE}/deployments");
    let slices = format!("/apis/discovery.k8s.io/v1/namespaces/{NAMESPACE}/endpointslices");
    let pod = |name: &str, spec: Value| json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": name, "labels": { "app": "a" } }, "spec": spec });
    let container = json!([{ "name": "c", "image": "registry.k8s.io/e2e-test-images/agnhost:2.53" }]);
    let deployment = |name: &str, replicas: Value, labels: Value| {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": name },
            "spec": { "replicas": replicas, "selector": { "matchLabels": { "app": "d" } },
                      "template": { "metadata": { "labels": labels }, "spec": { "containers": container } } },
        })
    };
    let slice = |name: &str, fields: Value| {
        let mut s = json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": { "name": name, "labels": { "kubernetes.io/service-name": "clusterip-plain" } },
            "addressType": "IPv4",
            "ports": [{ "name": "", "port": 8080, "protocol": "TCP" }],
            "endpoints": [{ "addresses": ["10.244.1.5"], "conditions": { "ready": true } }],
        });
        for (k, v) in fields.as_object().into_iter().flatten() {
            s[k] = v.clone();
        }
        s
    };
    let mut out = vec![
        request(
            "pod/valid".into(),
            "POST",
            pods.clone(),
            Some(pod("p-valid", json!({ "containers": container }))),
        ),
        request("pod/get".into(), "GET", format!("{pods}/p-valid"), None),
        request(
            "pod/dns-bad-policy".into(),
            "POST",
            pods.clone(),
            Some(pod(
                "p-dns1",
                json!({ "containers": container, "dnsPolicy": "Sometimes" }),
            )),
        ),
        request(
            "pod/dns-none-without-config".into(),
            "POST",
            pods.clone(),
            Some(pod("p-dns2", json!({ "containers": container, "dnsPolicy": "None" }))),
        ),
        request(
            "pod/dns-none-without-nameservers".into(),
            "POST",
            pods.clone(),
            Some(pod(
                "p-dns3",
                json!({ "containers": container, "dnsPolicy": "None", "dnsConfig": { "searches": ["a.b"] } }),
            )),
        ),
        request(
            "pod/dns-config-bad".into(),
            "POST",
            pods.clone(),
            Some(pod(
                "p-dns4",
                json!({ "containers": container, "dnsConfig": {
                    "nameservers": ["1.1.1.1", "not-an-ip", "010.1.1.1", "8.8.8.8"],
                    "searches": ["Bad_Domain", "ok.example.", "."],
                    "options": [{ "value": "2" }],
                } }),
            )),
        ),
        request(
            "pod/dns-none-valid".into(),
            "POST",
            pods.clone(),
            Some(pod(
                "p-dns5",
                json!({ "containers": container, "dnsPolicy": "None", "dnsConfig": {
                    "nameservers": ["10.96.0.10"], "searches": ["_srv.example.com"], "options": [{ "name": "ndots", "value": "2" }],
                } }),
            )),
        ),
        request(
            "pod/no-containers".into(),
            "POST",
            pods.clone(),
            Some(pod("p-empty", json!({ "containers": [] }))),
        ),
        request(
            "pod/no-image".into(),
            "POST",
            pods.clone(),
            Some(pod("p-noimage", json!({ "containers": [{ "name": "c" }] }))),
        ),
        request(
            "pod/bad-restart".into(),
            "POST",
            pods.clone(),
            Some(pod(
                "p-restart",
                json!({ "containers": container, "restartPolicy": "Sometimes" }),
            )),
        ),
        request(
            "pod/bad-name".into(),
            "POST",
            pods.clone(),
            Some(pod("P_Bad", json!({ "containers": container }))),
        ),
        request(
            "pod/bad-pull".into(),
            "POST",
            pods.clone(),
            Some(pod(
                "p-pull",
                json!({ "containers": [{ "name": "c", "image": "x", "imagePullPolicy": "Sometimes" }] }),
            )),
        ),
        request(
            "pod/duplicate-containers".into(),
            "POST",
            pods.clone(),
            Some(pod(
                "p-dup",
                json!({ "containers": [{ "name": "c", "image": "x" }, { "name": "c", "image": "y" }] }),
            )),
        ),
        request(
            "pod/bad-port".into(),
            "POST",
            pods.clone(),
            Some(pod(
                "p-port",
                json!({ "containers": [{ "name": "c", "image": "x", "ports": [{ "containerPort": 0 }] }] }),
            )),
        ),
        request(
            "pod/volume-no-source".into(),
            "POST",
            pods.clone(),
            Some(pod(
                "p-vol1",
                json!({ "containers": container, "volumes": [{ "name": "v" }] }),
            )),
        ),
        request(
            "pod/volume-two-sources".into(),
            "POST",
            pods.clone(),
            Some(pod(
                "p-vol2",
                json!({ "containers": container, "volumes": [
                    { "name": "v", "emptyDir": {}, "downwardAPI": {}, "configMap": { "name": "x" } },
                    { "name": "v", "emptyDir": {} },
                ] }),
            )),
        ),
        request(
            "pod/volume-fields".into(),
            "POST",
            pods.clone(),
            Some(pod(
                "p-vol3",
                json!({ "containers": container, "volumes": [
                    { "name": "c", "configMap": { "defaultMode": 1000, "items": [
                        { "key": "", "path": "../x" }, { "key": "k", "path": "/abs", "mode": -1 }, { "key": "k", "path": "..data" }] } },
                    { "name": "s", "secret": {} },
                    { "name": "h", "hostPath": { "path": "/a/../b" } },
                ] }),
            )),
        ),
        request(
            "pod/volume-mounts".into(),
            "POST",
            pods.clone(),
            Some(pod(
                "p-vol4",
                json!({ "containers": [{ "name": "c", "image": "x", "imagePullPolicy": "Sometimes", "volumeMounts": [
                    { "name": "data", "mountPath": "/d", "subPath": "../up" },
                    { "name": "gone", "mountPath": "/d" },
                    { "name": "data", "mountPath": "/e", "subPath": "a", "subPathExpr": "$(X)" },
                ] }], "volumes": [{ "name": "data", "emptyDir": {} }] }),
            )),
        ),
        request(
            "pod/volumes-valid".into(),
            "POST",
            pods.clone(),
            Some(pod(
                "p-vol5",
                json!({ "containers": [{ "name": "c", "image": "x", "volumeMounts": [
                    { "name": "data", "mountPath": "/d" }, { "name": "cfg", "mountPath": "/etc/app.conf", "subPath": "app.conf" },
                ] }], "volumes": [{ "name": "data", "emptyDir": {} }, { "name": "cfg", "configMap": { "name": "app", "items": [{ "key": "a", "path": "app.conf" }] } }] }),
            )),
        ),
        request(
            "pod/with-node".into(),
            "POST",
            pods.clone(),
            Some(pod("p-node", json!({ "containers": container, "nodeName": "n1" }))),
        ),
        request(
            "pod/binding-bound".into(),
            "POST",
            format!("{pods}/p-node/binding"),
            Some(
                json!({ "apiVersion": "v1", "kind": "Binding", "metadata": { "name": "p-node" }, "target": { "kind": "Node", "name": "n2" } }),
            ),
        ),
        request(
            "pod/binding".into(),
            "POST",
            format!("{pods}/p-valid/binding"),
            Some(
                json!({ "apiVersion": "v1", "kind": "Binding", "metadata": { "name": "p-valid" }, "target": { "kind": "Node", "name": "n1" } }),
            ),
        ),
        request(
            "pod/binding-wrong-name".into(),
            "POST",
            format!("{pods}/p-valid/binding"),
            Some(
                json!({ "apiVersion": "v1", "kind": "Binding", "metadata": { "name": "other" }, "target": { "name": "n1" } }),
            ),
        ),
        request(
            "pod/binding-bad-target".into(),
            "POST",
            format!("{pods}/p-valid/binding"),
            Some(
                json!({ "apiVersion": "v1", "kind": "Binding", "metadata": { "name": "p-valid" }, "target": { "kind": "Pod" } }),
            ),
        ),
        // strategic: containers merge by name (a merge patch would replace the list)
        Request {
            content_type: "application/strategic-merge-patch+json",
            ..pod_patch(
                &pods,
                "pod/update-image",
                json!({ "spec": { "containers": [{ "name": "c", "image": "agnhost:2" }] } }),
            )
        },
        pod_patch(&pods, "pod/update-node", json!({ "spec": { "nodeName": "n2" } })),
        pod_patch(
            &pods,
            "pod/update-deadline",
            json!({ "spec": { "activeDeadlineSeconds": 30 } }),
        ),
        pod_patch(
            &pods,
            "pod/update-deadline-later",
            json!({ "spec": { "activeDeadlineSeconds": 60 } }),
        ),
        pod_patch(
            &pods,
            "pod/update-restart-policy",
            json!({ "spec": { "restartPolicy": "Never" } }),
        ),
        request(
            "deployment/valid".into(),
            "POST",
            deployments.clone(),
            Some(deployment("d-valid", json!(0), json!({ "app": "d" }))),
        ),
        request("deployment/get".into(), "GET", format!("{deployments}/d-valid"), None),
        request(
            "deployment/selector-mismatch".into(),
            "POST",
            deployments.clone(),
            Some(deployment("d-mismatch", json!(0), json!({ "app": "other" }))),
        ),
        request(
            "deployment/negative-replicas".into(),
            "POST",
            deployments.clone(),
            Some(deployment("d-negative", json!(-1), json!({ "app": "d" }))),
        ),
        request(
            "deployment/scale-get".into(),
            "GET",
            format!("{deployments}/d-valid/scale"),
            None,
        ),
        request(
            "deployment/scale-put".into(),
            "PUT",
            format!("{deployments}/d-valid/scale"),
            Some(
                json!({ "apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": { "name": "d-valid" }, "spec": { "replicas": 0 } }),
            ),
        ),
        request(
            "slice/valid".into(),
            "POST",
            slices.clone(),
            Some(slice("s-valid", json!({}))),
        ),
        request("slice/get".into(), "GET", format!("{slices}/s-valid"), None),
        request(
            "slice/bad-address-type".into(),
            "POST",
            slices.clone(),
            Some(slice("s-type", json!({ "addressType": "IPv5" }))),
        ),
        request(
            "slice/bad-address".into(),
            "POST",
            slices.clone(),
            Some(slice(
                "s-addr",
                json!({ "endpoints": [{ "addresses": ["not-an-ip"] }] }),
            )),
        ),
        request(
            "slice/no-addresses".into(),
            "POST",
            slices.clone(),
            Some(slice("s-none", json!({ "endpoints": [{ "addresses": [] }] }))),
        ),
        request(
            "slice/bad-port".into(),
            "POST",
            slices.clone(),
            Some(slice(
                "s-port",
                json!({ "ports": [{ "name": "", "port": 0, "protocol": "TCP" }] }),
            )),
        ),
        request(
            "slice/bad-protocol".into(),
            "POST",
            slices.clone(),
            Some(slice(
                "s-proto",
                json!({ "ports": [{ "name": "", "port": 80, "protocol": "FOO" }] }),
            )),
        ),
        request(
            "slice/noncanonical-address".into(),
            "POST",
            slices.clone(),
            Some(slice(
                "s-noncanonical",
                json!({ "addressType": "IPv6", "endpoints": [{ "addresses": ["fd00:0::5"] }] }),
            )),
        ),
        request(
            "slice/fqdn".into(),
            "POST",
            slices.clone(),
            Some(slice(
                "s-fqdn",
                json!({ "addressType": "FQDN", "endpoints": [{ "addresses": ["example.com"] }] }),
            )),
        ),
        request(
            "slice/ipv6".into(),
            "POST",
            slices.clone(),
            Some(slice(
                "s-v6",
                json!({ "addressType": "IPv6", "endpoints": [{ "addresses": ["fd00::5"] }] }),
            )),
        ),
        request(
            "slice/ipv6-in-v4".into(),
            "POST",
            slices.clone(),
            Some(slice("s-mixed", json!({ "endpoints": [{ "addresses": ["fd00::5"] }] }))),
        ),
    ];
    out.push(request(
        "namespace/bad-name".into(),
        "POST",
        "/api/v1/namespaces".into(),
        Some(json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "Not_Valid" } })),
    ));
    out.push(request(
        "namespace/custom-finalizer".into(),
        "POST",
        "/api/v1/namespaces".into(),
        Some(json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "held" }, "spec": { "finalizers": ["example.com/hold"] } })),
    ));
    // the finalize subresource: an ordinary update leaves spec.finalizers alone, /finalize
    // checks the names and writes exactly what it is sent
    let held = "/api/v1/namespaces/held".to_owned();
    let finalize = "/api/v1/namespaces/held/finalize".to_owned();
    let held_with = |finalizers: Value| json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "held" }, "spec": { "finalizers": finalizers } });
    out.push(Request {
        id: "namespace/update-keeps-finalizers".into(),
        method: "PATCH",
        path: held.clone(),
        content_type: "application/merge-patch+json",
        body: Some(json!({ "spec": { "finalizers": [] } }).to_string()),
    });
    out.push(request(
        "namespace/finalize-bad-name".into(),
        "PUT",
        finalize.clone(),
        Some(held_with(json!(["hold", "Not Valid/x"]))),
    ));
    out.push(request(
        "namespace/finalize-drops-kubernetes".into(),
        "PUT",
        finalize.clone(),
        Some(held_with(json!(["example.com/hold"]))),
    ));
    out.push(request("namespace/finalized-get".into(), "GET", held, None));
    out.push(request(
        "namespace/finalize-patch".into(),
        "PATCH",
        finalize,
        Some(held_with(json!([]))),
    ));
    // a Namespace's status subresource: read, and a patch of the status only
    let status = format!("/api/v1/namespaces/{NAMESPACE}/status");
    out.push(request("namespace/status-get".into(), "GET", status.clone(), None));
    out.push(Request {
        id: "namespace/status-patch".into(),
        method: "PATCH",
        path: status,
        content_type: "application/merge-patch+json",
        body: Some(json!({ "metadata": { "labels": { "ignored": "yes" } }, "status": { "conditions": [{ "type": "NamespaceDeletionDiscoveryFailure", "status": "False", "reason": "ResourcesDiscovered", "message": "All resources successfully discovered" }] } }).to_string()),
    });
    out
}

/// List parameters.
fn lists() -> Vec<Request> {
    let list = |id: &str, query: &str| {
        request(
            format!("list/{id}"),
            "GET",
            format!("{}?{query}", services_path()),
            None,
        )
    };
    vec![
        list("label-selector", "labelSelector=a%3Db"),
        list("label-selector-set", "labelSelector=a%20in%20(b,c)"),
        list("label-selector-bad", "labelSelector=a%3D%3D%3Db"),
        list("field-selector-name", "fieldSelector=metadata.name%3Dclusterip-plain"),
        list("field-selector-unsupported", "fieldSelector=spec.type%3DClusterIP"),
        list("field-selector-bad", "fieldSelector=metadata.name"),
        list("limit-bad", "limit=-1"),
        list("continue-garbage", "limit=5&continue=garbage"),
        list("resource-version-bad", "resourceVersion=abc"),
        request(
            "list/pods-by-node".into(),
            "GET",
            format!("/api/v1/namespaces/{NAMESPACE}/pods?fieldSelector=spec.nodeName%3Dn1"),
            None,
        ),
        request(
            "list/all-namespaces-missing-kind".into(),
            "GET",
            "/api/v1/nothings".into(),
            None,
        ),
        request(
            "list/unknown-group".into(),
            "GET",
            "/apis/nope.example.com/v1/things".into(),
            None,
        ),
    ]
}

/// Malformed bodies.
fn malformed() -> Vec<Request> {
    let raw = |id: &str, content_type: &'static str, body: &str| Request {
        id: format!("malformed/{id}"),
        method: "POST",
        path: services_path(),
        content_type,
        body: Some(body.into()),
    };
    vec![
        raw("not-json", "application/json", "{not json"),
        raw("empty", "application/json", ""),
        raw("array", "application/json", "[]"),
        raw("number", "application/json", "7"),
        raw(
            "metadata-array",
            "application/json",
            r#"{"apiVersion":"v1","kind":"Service","metadata":[],"spec":{"ports":[{"port":80}]}}"#,
        ),
        raw(
            "wrong-type",
            "application/json",
            r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"w"},"spec":{"ports":"eighty"}}"#,
        ),
        raw(
            "unknown-field",
            "application/json",
            r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"u"},"spec":{"ports":[{"port":80}],"bogus":1}}"#,
        ),
        raw("bad-content-type", "text/plain", "hello"),
        raw(
            "namespace-mismatch",
            "application/json",
            r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"m","namespace":"other"},"spec":{"ports":[{"port":80}]}}"#,
        ),
    ]
}

/// A merge patch of the pod `p-node` (created bound to a node).
fn pod_patch(pods: &str, id: &str, body: Value) -> Request {
    Request {
        id: id.into(),
        method: "PATCH",
        path: format!("{pods}/p-node"),
        content_type: "application/merge-patch+json",
        body: Some(body.to_string()),
    }
}

/// ServiceCIDRs and IPAddresses (networking.k8s.io/v1): their validation and immutability.
fn networking() -> Vec<Request> {
    let cidrs_path = "/apis/networking.k8s.io/v1/servicecidrs".to_owned();
    let ips_path = "/apis/networking.k8s.io/v1/ipaddresses".to_owned();
    let cidr = |name: &str, cidrs: Value| json!({ "apiVersion": "networking.k8s.io/v1", "kind": "ServiceCIDR", "metadata": { "name": name }, "spec": { "cidrs": cidrs } });
    let ip = |name: &str, parent: Value| json!({ "apiVersion": "networking.k8s.io/v1", "kind": "IPAddress", "metadata": { "name": name }, "spec": { "parentRef": parent } });
    let gateway =
        json!({ "group": "gateway.example.com", "resource": "gateways", "namespace": NAMESPACE, "name": "gw" });
    let mut out = vec![];
    for (id, cidrs) in [
        ("v4", json!(["10.210.0.0/24"])),
        ("dual", json!(["10.211.0.0/24", "fd00:211::/112"])),
        ("empty", json!([])),
        ("three", json!(["10.212.0.0/24", "10.213.0.0/24", "fd00:213::/112"])),
        ("same-family", json!(["10.214.0.0/24", "10.215.0.0/24"])),
        ("not-a-cidr", json!(["10.216.0.0"])),
        ("host-bits", json!(["10.217.0.1/24"])),
        ("leading-zero", json!(["010.218.0.0/24"])),
        ("not-canonical", json!(["fd00:0:219::/112"])),
    ] {
        out.push(request(
            format!("servicecidr/create-{id}"),
            "POST",
            cidrs_path.clone(),
            Some(cidr(&format!("c-{id}"), cidrs)),
        ));
    }
    for (id, body) in [
        ("change", json!({ "spec": { "cidrs": ["10.220.0.0/24"] } })),
        (
            "add-family",
            json!({ "spec": { "cidrs": ["10.210.0.0/24", "fd00:210::/112"] } }),
        ),
        (
            "add-same-family",
            json!({ "spec": { "cidrs": ["10.210.0.0/24", "10.221.0.0/24"] } }),
        ),
    ] {
        out.push(Request {
            id: format!("servicecidr/patch-{id}"),
            method: "PATCH",
            path: format!("{cidrs_path}/c-v4"),
            content_type: "application/merge-patch+json",
            body: Some(body.to_string()),
        });
    }
    for (id, name, parent) in [
        ("valid", "10.230.0.5", gateway.clone()),
        ("v6", "fd00:230::5", gateway.clone()),
        ("not-canonical", "fd00:0:230::6", gateway.clone()),
        ("leading-zero", "10.230.0.07", gateway.clone()),
        ("not-an-ip", "gw-address", gateway.clone()),
        ("no-parent", "10.230.0.8", Value::Null),
        ("parent-without-name", "10.230.0.9", json!({ "resource": "gateways" })),
        (
            "parent-slash",
            "10.230.0.10",
            json!({ "resource": "gate/ways", "name": "..", "namespace": "a%b" }),
        ),
        (
            "parent-bad-group",
            "10.230.0.11",
            json!({ "group": "Not_A_Group", "resource": "gateways", "name": "gw" }),
        ),
    ] {
        out.push(request(
            format!("ipaddress/create-{id}"),
            "POST",
            ips_path.clone(),
            Some(ip(name, parent)),
        ));
    }
    out.push(Request {
        id: "ipaddress/patch-parent".into(),
        method: "PATCH",
        path: format!("{ips_path}/10.230.0.5"),
        content_type: "application/merge-patch+json",
        body: Some(json!({ "spec": { "parentRef": { "name": "other" } } }).to_string()),
    });
    out
}

/// The whole corpus, in the order it is replayed.
pub fn corpus() -> Vec<Request> {
    let mut all = service_matrix();
    all.extend(transitions());
    all.extend(updates());
    all.extend(patches());
    all.extend(applies());
    all.extend(workloads());
    all.extend(lists());
    all.extend(malformed());
    all.extend(dry_run_and_delete());
    all.extend(networking());
    all
}

#[test]
fn the_corpus_is_large_and_its_ids_unique() {
    let all = corpus();
    assert!(all.len() >= 300, "{} requests", all.len());
    let ids: std::collections::BTreeSet<&str> = all.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), all.len());
}
