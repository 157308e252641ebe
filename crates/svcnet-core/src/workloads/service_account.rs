//! What upstream's ServiceAccount admission gives a new Pod: its account's image pull
//! secrets when it names none, and, unless the pod or its account turns automounting off,
//! the projected `kube-api-access-*` volume (a bound token, the cluster's CA, the namespace)
//! mounted read-only at [`TOKEN_MOUNT_PATH`] in every container and init container that does
//! not mount something there already. Pure: the volume name's random suffix is passed in.

use serde_json::{Value, json};

/// Where the token volume is mounted.
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The token volume's name prefix.
pub const TOKEN_VOLUME_PREFIX: &str = "kube-api-access-";

/// Whether the token is mounted: the pod's choice, else its account's, else yes.
pub fn automounts(spec: &Value, account: &Value) -> bool {
    spec["automountServiceAccountToken"]
        .as_bool()
        .or_else(|| account["automountServiceAccountToken"].as_bool())
        .unwrap_or(true)
}

/// The projected source upstream mounts: a token valid for about an hour, the CA of
/// `kube-root-ca.crt`, and the pod's namespace.
fn token_volume_source() -> Value {
    json!({
        "defaultMode": 420,
        "sources": [
            { "serviceAccountToken": { "expirationSeconds": 3607, "path": "token" } },
            { "configMap": { "name": "kube-root-ca.crt", "items": [{ "key": "ca.crt", "path": "ca.crt" }] } },
            { "downwardAPI": { "items": [{ "fieldRef": { "apiVersion": "v1", "fieldPath": "metadata.namespace" }, "path": "namespace" }] } },
        ],
    })
}

/// Admits pod `spec` with its ServiceAccount `account` (the stored object); `suffix` names a
/// new token volume (five random characters).
pub fn admit(spec: &mut Value, account: &Value, suffix: &str) {
    if !spec.is_object() {
        return;
    }
    if automounts(spec, account) {
        mount_token(spec, suffix);
    }
    let none = spec["imagePullSecrets"].as_array().is_none_or(Vec::is_empty);
    if let Some(secrets) = account["imagePullSecrets"].as_array().filter(|s| none && !s.is_empty()) {
        let names: Vec<Value> = secrets.iter().map(|s| json!({ "name": s["name"].clone() })).collect();
        spec["imagePullSecrets"] = Value::Array(names);
    }
}

fn mount_token(spec: &mut Value, suffix: &str) {
    let existing = spec["volumes"].as_array().and_then(|volumes| {
        volumes
            .iter()
            .filter_map(|v| v["name"].as_str())
            .find(|name| name.starts_with(TOKEN_VOLUME_PREFIX))
            .map(str::to_owned)
    });
    let name = existing
        .clone()
        .unwrap_or_else(|| format!("{TOKEN_VOLUME_PREFIX}{suffix}"));
    let mount = json!({ "name": name, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH });
    let mut mounted = false;
    for list in ["initContainers", "containers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for container in containers.iter_mut().filter(|c| c.is_object()) {
            let has_one = container["volumeMounts"]
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m["mountPath"] == TOKEN_MOUNT_PATH));
            if has_one {
                continue;
            }
            if !container["volumeMounts"].is_array() {
                container["volumeMounts"] = json!([]);
            }
            if let Some(mounts) = container["volumeMounts"].as_array_mut() {
                mounts.push(mount.clone());
                mounted = true;
            }
        }
    }
    if existing.is_none() && mounted {
        if !spec["volumes"].is_array() {
            spec["volumes"] = json!([]);
        }
        if let Some(volumes) = spec["volumes"].as_array_mut() {
            volumes.push(json!({ "name": name, "projected": token_volume_source() }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_container_mounts_one_token_volume() {
        let mut spec = json!({
            "initContainers": [{ "name": "init" }],
            "containers": [
                { "name": "a", "volumeMounts": [{ "name": "data", "mountPath": "/data" }] },
                { "name": "b" },
            ],
            "volumes": [{ "name": "data", "emptyDir": {} }],
        });
        admit(&mut spec, &json!({}), "x7k2p");
        let volumes = spec["volumes"].as_array().unwrap();
        assert_eq!(volumes.len(), 2);
        assert_eq!(volumes[1]["name"], "kube-api-access-x7k2p");
        assert_eq!(
            volumes[1]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
            3607
        );
        for c in ["initContainers", "containers"] {
            for container in spec[c].as_array().unwrap() {
                let last = container["volumeMounts"].as_array().unwrap().last().unwrap().clone();
                assert_eq!(
                    last,
                    json!({ "name": "kube-api-access-x7k2p", "readOnly": true, "mountPath": TOKEN_MOUNT_PATH })
                );
            }
        }
        assert_eq!(spec["containers"][0]["volumeMounts"][0]["name"], "data");
    }

    #[test]
    fn the_pod_then_its_account_may_turn_automounting_off() {
        let container = json!({ "containers": [{ "name": "a" }] });
        let off = json!({ "automountServiceAccountToken": false });
        let mut spec = container.clone();
        admit(&mut spec, &off, "aaaaa");
        assert!(spec.get("volumes").is_none(), "{spec}");
        let mut spec = container.clone();
        spec["automountServiceAccountToken"] = json!(true);
        admit(&mut spec, &off, "aaaaa");
        assert_eq!(spec["volumes"][0]["name"], "kube-api-access-aaaaa");
        let mut spec = container;
        spec["automountServiceAccountToken"] = json!(false);
        admit(&mut spec, &json!({}), "aaaaa");
        assert!(spec.get("volumes").is_none(), "{spec}");
    }

    #[test]
    fn a_mount_or_volume_already_there_is_kept() {
        let mut spec = json!({
            "containers": [{ "name": "a", "volumeMounts": [{ "name": "mine", "mountPath": TOKEN_MOUNT_PATH }] }],
        });
        admit(&mut spec, &json!({}), "aaaaa");
        assert!(spec.get("volumes").is_none(), "no container needed the volume: {spec}");
        let mut spec = json!({
            "containers": [{ "name": "a" }],
            "volumes": [{ "name": "kube-api-access-old01", "projected": {} }],
        });
        admit(&mut spec, &json!({}), "aaaaa");
        assert_eq!(spec["volumes"].as_array().unwrap().len(), 1);
        assert_eq!(
            spec["containers"][0]["volumeMounts"][0]["name"],
            "kube-api-access-old01"
        );
    }

    #[test]
    fn the_account_s_pull_secrets_fill_an_empty_list() {
        let account = json!({ "imagePullSecrets": [{ "name": "registry" }] });
        let mut spec = json!({ "containers": [{ "name": "a" }], "automountServiceAccountToken": false });
        admit(&mut spec, &account, "aaaaa");
        assert_eq!(spec["imagePullSecrets"], json!([{ "name": "registry" }]));
        let mut spec = json!({ "containers": [], "imagePullSecrets": [{ "name": "own" }] });
        admit(&mut spec, &account, "aaaaa");
        assert_eq!(spec["imagePullSecrets"], json!([{ "name": "own" }]));
    }
}
