//! Upstream's defaulting of a Pod, as the API server applies it on every write (the API
//! defaults of `SetDefaults_PodSpec`, `SetDefaults_Container`, probes and ports, plus what
//! upstream's default admission adds: priority, preemption policy, the default service
//! account and the not-ready/unreachable tolerations), and a new Pod's initial status
//! (`Pending`, with its QoS class). Works on JSON so fields the typed model lacks survive.

use serde_json::{Value, json};

/// How long a pod tolerates its node being not ready or unreachable (upstream's
/// DefaultTolerationSeconds admission).
const DEFAULT_TOLERATION_SECONDS: i64 = 300;

/// Sets `field` of `object` to `value` unless present (and not null).
fn default(object: &mut Value, field: &str, value: Value) {
    if object.get(field).is_none_or(Value::is_null) {
        object[field] = value;
    }
}

/// Fills upstream's API defaults into a PodSpec (`spec`), in place: what every PodSpec gets,
/// pod templates included. Anything but an object is left for validation.
pub fn default_pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "schedulerName", json!("default-scheduler"));
    default(spec, "securityContext", json!({}));
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        // `get_mut`, never `[..]` on a `&mut Value`: indexing would insert a null
        if let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) {
            containers.iter_mut().for_each(default_container);
        }
    }
    if let Some(volumes) = spec.get_mut("volumes").and_then(Value::as_array_mut) {
        volumes.iter_mut().filter(|v| v.is_object()).for_each(default_volume);
    }
}

/// A volume's defaults: an emptyDir when it names no source; mode 0644 for the file sources,
/// `v1` field selectors, an hour for projected tokens and an unset hostPath type.
fn default_volume(volume: &mut Value) {
    const FILE_MODE: i64 = 0o644;
    let sources = super::pod_volumes::SOURCES;
    if sources
        .iter()
        .all(|(field, _)| volume.get(field).is_none_or(Value::is_null))
    {
        volume["emptyDir"] = json!({});
    }
    for field in ["configMap", "secret", "downwardAPI", "projected"] {
        if let Some(source) = volume.get_mut(field).filter(|s| s.is_object()) {
            default(source, "defaultMode", json!(FILE_MODE));
        }
    }
    if let Some(host_path) = volume.get_mut("hostPath").filter(|s| s.is_object()) {
        default(host_path, "type", json!(""));
    }
    if let Some(items) = volume.pointer_mut("/downwardAPI/items").and_then(Value::as_array_mut) {
        items.iter_mut().for_each(default_field_ref);
    }
    for source in volume
        .pointer_mut("/projected/sources")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(token) = source.get_mut("serviceAccountToken").filter(|t| t.is_object()) {
            default(token, "expirationSeconds", json!(3600));
        }
        if let Some(items) = source.pointer_mut("/downwardAPI/items").and_then(Value::as_array_mut) {
            items.iter_mut().for_each(default_field_ref);
        }
    }
}

/// An object field selector's `apiVersion` (`v1`), where `holder` (an env var's `valueFrom`
/// or a downward API item) has one.
fn default_field_ref(holder: &mut Value) {
    if let Some(field_ref) = holder.get_mut("fieldRef").filter(|f| f.is_object()) {
        default(field_ref, "apiVersion", json!("v1"));
    }
}

/// What a Pod gets on creation and a pod template does not (upstream's pod strategy and
/// default admission): service links on, the default service account, priority 0 with its
/// preemption policy, and the not-ready/unreachable tolerations.
pub fn admit_pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    default(spec, "enableServiceLinks", json!(true));
    default(spec, "priority", json!(0));
    default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    default(spec, "serviceAccountName", json!("default"));
    let account = spec["serviceAccountName"].clone();
    default(spec, "serviceAccount", account);
    default_tolerations(spec);
}

fn default_tolerations(spec: &mut Value) {
    if !(spec["tolerations"].is_array() || spec["tolerations"].is_null()) {
        return;
    }
    for key in ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"] {
        let tolerations = spec["tolerations"].as_array().cloned().unwrap_or_default();
        // a toleration of the taint already given (or one for every NoExecute taint) stands
        let covered = tolerations.iter().any(|t| {
            let effect_ok = t["effect"].as_str().is_none_or(|e| e.is_empty() || e == "NoExecute");
            effect_ok && (t["key"] == key || (t["key"].as_str().is_none_or(str::is_empty) && t["operator"] == "Exists"))
        });
        if !covered {
            let mut tolerations = tolerations;
            tolerations.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute",
                                    "tolerationSeconds": DEFAULT_TOLERATION_SECONDS}));
            spec["tolerations"] = Value::Array(tolerations);
        }
    }
}

/// `Always` for an image without a tag or tagged `latest` (and no digest), else
/// `IfNotPresent`, as upstream decides.
pub fn image_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, tag)) if tag != "latest" => "IfNotPresent",
        _ => "Always",
    }
}

fn default_container(container: &mut Value) {
    if !container.is_object() {
        return;
    }
    default(container, "terminationMessagePath", json!("/dev/termination-log"));
    default(container, "terminationMessagePolicy", json!("File"));
    let policy = image_pull_policy(container["image"].as_str().unwrap_or(""));
    default(container, "imagePullPolicy", json!(policy));
    default(container, "resources", json!({}));
    if let Some(env) = container.get_mut("env").and_then(Value::as_array_mut) {
        for var in env.iter_mut() {
            if let Some(from) = var.get_mut("valueFrom").filter(|f| f.is_object()) {
                default_field_ref(from);
            }
        }
    }
    if let Some(ports) = container.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports.iter_mut().filter(|p| p.is_object()) {
            default(port, "protocol", json!("TCP"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let Some(p) = container.get_mut(probe).filter(|p| p.is_object()) else {
            continue;
        };
        default(p, "timeoutSeconds", json!(1));
        default(p, "periodSeconds", json!(10));
        default(p, "successThreshold", json!(1));
        default(p, "failureThreshold", json!(3));
        if let Some(get) = p.get_mut("httpGet").filter(|g| g.is_object()) {
            default(get, "scheme", json!("HTTP"));
        }
    }
}

/// A container's requests and limits of `resource` (cpu or memory), as given.
fn amounts<'a>(container: &'a Value, resource: &str) -> (Option<&'a Value>, Option<&'a Value>) {
    let pick = |kind: &str| container["resources"][kind].get(resource).filter(|v| !v.is_null());
    (pick("requests"), pick("limits"))
}

/// Upstream's QoS class of a PodSpec: `Guaranteed` when every container limits cpu and memory
/// and requests exactly that (requests default to limits); `BestEffort` when no container
/// requests or limits either; otherwise `Burstable`.
pub fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .flat_map(|l| spec[*l].as_array().into_iter().flatten())
        .collect();
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in &containers {
        for resource in ["cpu", "memory"] {
            let (request, limit) = amounts(c, resource);
            any |= request.is_some() || limit.is_some();
            match (request, limit) {
                (_, None) => guaranteed = false,
                (Some(r), Some(l)) if r != l => guaranteed = false,
                _ => {}
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// A new Pod's status: `Pending`, with its QoS class (whatever status the client sent is
/// replaced, as upstream's create does).
pub fn initial_status(spec: &Value) -> Value {
    json!({"phase": "Pending", "qosClass": qos_class(spec)})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_pod_gets_upstreams_defaults() {
        let mut spec = json!({"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}],
                                              "readinessProbe": {"httpGet": {"port": 80}}}]});
        default_pod_spec(&mut spec);
        let template = spec.clone();
        assert!(template.get("tolerations").is_none() && template.get("serviceAccountName").is_none());
        admit_pod_spec(&mut spec);
        assert_eq!(spec["restartPolicy"], "Always");
        assert_eq!(spec["dnsPolicy"], "ClusterFirst");
        assert_eq!(spec["terminationGracePeriodSeconds"], 30);
        assert_eq!(spec["schedulerName"], "default-scheduler");
        assert_eq!(spec["serviceAccountName"], "default");
        assert_eq!(spec["tolerations"].as_array().unwrap().len(), 2);
        let c = &spec["containers"][0];
        assert_eq!(c["imagePullPolicy"], "Always");
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(c["readinessProbe"]["periodSeconds"], 10);
        assert_eq!(c["readinessProbe"]["httpGet"]["scheme"], "HTTP");
    }

    #[test]
    fn volumes_and_field_selectors_get_upstreams_defaults() {
        let mut spec = json!({"containers": [{"name": "c", "image": "x",
            "env": [{"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]}],
        "volumes": [
            {"name": "bare"},
            {"name": "cfg", "configMap": {"name": "a"}},
            {"name": "own", "secret": {"secretName": "s", "defaultMode": 256}},
            {"name": "host", "hostPath": {"path": "/x"}},
            {"name": "info", "downwardAPI": {"items": [{"path": "n", "fieldRef": {"fieldPath": "metadata.name"}}]}},
            {"name": "p", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}},
        ]});
        default_pod_spec(&mut spec);
        let v = &spec["volumes"];
        assert_eq!(v[0]["emptyDir"], json!({}));
        assert_eq!(v[1]["configMap"]["defaultMode"], 420);
        assert_eq!(v[2]["secret"]["defaultMode"], 256, "a given mode stays");
        assert_eq!(v[3]["hostPath"]["type"], "");
        assert_eq!(v[4]["downwardAPI"]["items"][0]["fieldRef"]["apiVersion"], "v1");
        assert_eq!(
            v[5]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
            3600
        );
        assert_eq!(
            spec["containers"][0]["env"][0]["valueFrom"]["fieldRef"]["apiVersion"],
            "v1"
        );
    }

    #[test]
    fn absent_fields_stay_absent() {
        let mut spec = json!({"containers": [{"name": "c", "image": "x:1"}]});
        default_pod_spec(&mut spec);
        for field in ["initContainers", "ephemeralContainers"] {
            assert!(spec.get(field).is_none(), "{field}: {spec}");
        }
        let c = &spec["containers"][0];
        for field in ["ports", "livenessProbe", "readinessProbe", "startupProbe"] {
            assert!(c.get(field).is_none(), "{field}: {c}");
        }
    }

    #[test]
    fn given_values_are_kept() {
        let mut spec = json!({"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                              "tolerations": [{"operator": "Exists"}],
                              "containers": [{"name": "c", "image": "x:1.2", "imagePullPolicy": "Never",
                                              "ports": [{"containerPort": 53, "protocol": "UDP"}]}]});
        default_pod_spec(&mut spec);
        admit_pod_spec(&mut spec);
        assert_eq!(spec["restartPolicy"], "Never");
        assert_eq!(spec["terminationGracePeriodSeconds"], 0);
        assert_eq!(
            spec["tolerations"].as_array().unwrap().len(),
            1,
            "a wildcard toleration covers both"
        );
        assert_eq!(spec["containers"][0]["imagePullPolicy"], "Never");
        assert_eq!(spec["containers"][0]["ports"][0]["protocol"], "UDP");
    }

    #[test]
    fn pull_policy_follows_the_tag() {
        assert_eq!(image_pull_policy("nginx"), "Always");
        assert_eq!(image_pull_policy("nginx:latest"), "Always");
        assert_eq!(
            image_pull_policy("registry.k8s.io/e2e-test-images/agnhost:2.53"),
            "IfNotPresent"
        );
        assert_eq!(image_pull_policy("localhost:5000/app"), "Always");
        assert_eq!(image_pull_policy("app@sha256:abcd"), "IfNotPresent");
    }

    #[test]
    fn qos_classes() {
        let pod = |resources: Value| json!({"containers": [{"name": "c", "resources": resources}]});
        assert_eq!(qos_class(&pod(json!({}))), "BestEffort");
        assert_eq!(qos_class(&pod(json!({"requests": {"cpu": "100m"}}))), "Burstable");
        let equal = json!({"limits": {"cpu": "1", "memory": "1Gi"}});
        assert_eq!(qos_class(&pod(equal)), "Guaranteed");
        let unequal = json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}});
        assert_eq!(qos_class(&pod(unequal)), "Burstable");
        assert_eq!(initial_status(&pod(json!({})))["phase"], "Pending");
    }

    #[test]
    fn malformed_specs_are_left_alone() {
        for mut bad in [
            json!("x"),
            json!(null),
            json!({"containers": "x"}),
            json!({"tolerations": 3}),
        ] {
            default_pod_spec(&mut bad);
        }
    }
}
