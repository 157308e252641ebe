//! Upstream's checks of a Pod's `volumes` and of its containers' `volumeMounts`: each volume
//! named (a unique RFC 1123 label) with exactly one source, the first one set counting and
//! every later one `Forbidden` (in upstream's order of the sources, and with its paths, the
//! misspelt `downwarAPI` included); the common sources' own fields (emptyDir mode, hostPath
//! path, configMap and secret names, items, modes); and every mount naming a volume, at a
//! unique path, with a relative subPath. Paths and messages are upstream's. The sources of
//! storage the lab does not mount are counted but their fields are not checked.

use std::collections::HashSet;

use serde_json::Value;

use crate::field::{FieldError, FieldPath};

/// Every volume source, in the order upstream checks them: (field, the path a second source
/// is reported at).
pub const SOURCES: [(&str, &str); 30] = [
    ("emptyDir", "emptyDir"),
    ("hostPath", "hostPath"),
    ("gitRepo", "gitRepo"),
    ("gcePersistentDisk", "gcePersistentDisk"),
    ("awsElasticBlockStore", "awsElasticBlockStore"),
    ("secret", "secret"),
    ("nfs", "nfs"),
    ("iscsi", "iscsi"),
    ("glusterfs", "glusterfs"),
    ("flocker", "flocker"),
    ("persistentVolumeClaim", "persistentVolumeClaim"),
    ("rbd", "rbd"),
    ("cinder", "cinder"),
    ("cephfs", "cephFS"),
    ("quobyte", "quobyte"),
    ("downwardAPI", "downwarAPI"),
    ("fc", "fc"),
    ("flexVolume", "flexVolume"),
    ("configMap", "configMap"),
    ("azureFile", "azureFile"),
    ("vsphereVolume", "vsphereVolume"),
    ("photonPersistentDisk", "photonPersistentDisk"),
    ("portworxVolume", "portworxVolume"),
    ("azureDisk", "azureDisk"),
    ("storageos", "storageos"),
    ("projected", "projected"),
    ("scaleIO", "scaleIO"),
    ("csi", "csi"),
    ("ephemeral", "ephemeral"),
    ("image", "image"),
];

const FILE_MODE: &str = "must be a number between 0 and 0777 (octal), both inclusive";
const EMPTY_DIR_MODE: &str = "must be a number between 0 and 01777 (octal), both inclusive";

/// The errors of `volumes` (at `path`), and the names of the volumes without errors (which
/// mounts may name).
pub fn validate_volumes(volumes: &Value, path: &FieldPath) -> (HashSet<String>, Vec<FieldError>) {
    let (mut valid, mut errs) = (HashSet::new(), Vec::new());
    let mut names_seen = HashSet::new();
    for (i, volume) in volumes.as_array().into_iter().flatten().enumerate() {
        let at = path.index(i);
        let mut own = validate_source(volume, &at);
        let name = volume["name"].as_str().unwrap_or("");
        own.extend(super::pod_spec::label_name(name, &at.child("name")));
        if names_seen.contains(name) {
            own.push(FieldError::duplicate(at.child("name"), name));
        }
        if own.is_empty() {
            names_seen.insert(name.to_owned());
            valid.insert(name.to_owned());
        }
        errs.extend(own);
    }
    (valid, errs)
}

fn validate_source(volume: &Value, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut count = 0;
    for (field, reported) in SOURCES {
        let source = &volume[field];
        if source.is_null() {
            continue;
        }
        count += 1;
        if count > 1 {
            errs.push(FieldError::forbidden(
                path.child(reported),
                "may not specify more than 1 volume type",
            ));
            continue;
        }
        let at = path.child(field);
        match field {
            "emptyDir" => {
                if let Some(mode) = source["mode"].as_i64().filter(|m| !(0..=0o1777).contains(m)) {
                    errs.push(FieldError::invalid(at.child("mode"), mode, EMPTY_DIR_MODE));
                }
            }
            "hostPath" => errs.extend(host_path(source, &at)),
            "secret" => errs.extend(key_source(source, &at, "secretName")),
            "configMap" => errs.extend(key_source(source, &at, "name")),
            _ => {}
        }
    }
    if count == 0 {
        errs.push(FieldError::required(path.clone(), "must specify a volume type"));
    }
    errs
}

fn host_path(source: &Value, path: &FieldPath) -> Vec<FieldError> {
    let target = source["path"].as_str().unwrap_or("");
    if target.is_empty() {
        return vec![FieldError::required(path.child("path"), "")];
    }
    no_backsteps(target, &path.child("path")).into_iter().collect()
}

/// A configMap or secret source: its name (`name_field`), default mode and items.
fn key_source(source: &Value, path: &FieldPath, name_field: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if source[name_field].as_str().unwrap_or("").is_empty() {
        errs.push(FieldError::required(path.child(name_field), ""));
    }
    errs.extend(file_mode(&source["defaultMode"], &path.child("defaultMode")));
    for (i, item) in source["items"].as_array().into_iter().flatten().enumerate() {
        let at = path.child("items").index(i);
        if item["key"].as_str().unwrap_or("").is_empty() {
            errs.push(FieldError::required(at.child("key"), ""));
        }
        let target = item["path"].as_str().unwrap_or("");
        if target.is_empty() {
            errs.push(FieldError::required(at.child("path"), ""));
        }
        errs.extend(local_non_reserved_path(target, &at.child("path")));
        errs.extend(file_mode(&item["mode"], &at.child("mode")));
    }
    errs
}

fn file_mode(mode: &Value, path: &FieldPath) -> Option<FieldError> {
    let mode = mode.as_i64()?;
    (!(0..=0o777).contains(&mode)).then(|| FieldError::invalid(path.clone(), mode, FILE_MODE))
}

/// Relative, no `..` element.
fn local_descending_path(target: &str, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if target.starts_with('/') {
        errs.push(FieldError::invalid(path.clone(), target, "must be a relative path"));
    }
    errs.extend(no_backsteps(target, path));
    errs
}

/// [`local_descending_path`], and not starting with `..` (a volume's own entries do).
fn local_non_reserved_path(target: &str, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = local_descending_path(target, path);
    if target.starts_with("..") && !target.starts_with("../") {
        errs.push(FieldError::invalid(path.clone(), target, "must not start with '..'"));
    }
    errs
}

fn no_backsteps(target: &str, path: &FieldPath) -> Option<FieldError> {
    target
        .split('/')
        .any(|part| part == "..")
        .then(|| FieldError::invalid(path.clone(), target, "must not contain '..'"))
}

/// The errors of a container's `volumeMounts` (at `path`) given the pod's valid volumes.
pub fn validate_mounts(mounts: &Value, volumes: &HashSet<String>, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut mount_points = HashSet::new();
    for (i, mount) in mounts.as_array().into_iter().flatten().enumerate() {
        let at = path.index(i);
        let name = mount["name"].as_str().unwrap_or("");
        if name.is_empty() {
            errs.push(FieldError::required(at.child("name"), ""));
        }
        if !volumes.contains(name) {
            errs.push(FieldError::not_found(at.child("name"), name));
        }
        let mount_path = mount["mountPath"].as_str().unwrap_or("");
        if mount_path.is_empty() {
            errs.push(FieldError::required(at.child("mountPath"), ""));
        }
        if !mount_points.insert(mount_path.to_owned()) {
            errs.push(FieldError::invalid(at.child("mountPath"), mount_path, "must be unique"));
        }
        // upstream reports these at the list's path, not the mount's
        let sub_path = mount["subPath"].as_str().unwrap_or("");
        if !sub_path.is_empty() {
            errs.extend(local_descending_path(sub_path, &path.child("subPath")));
        }
        let expr = mount["subPathExpr"].as_str().unwrap_or("");
        if !expr.is_empty() {
            if !sub_path.is_empty() {
                errs.push(FieldError::invalid(
                    at.child("subPathExpr"),
                    expr,
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
            errs.extend(local_descending_path(expr, &path.child("subPathExpr")));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn volume_errors(volumes: Value) -> Vec<String> {
        validate_volumes(&volumes, &FieldPath::new("spec").child("volumes"))
            .1
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_volume_has_exactly_one_source_reported_as_upstream_does() {
        assert_eq!(
            volume_errors(json!([{"name": "v"}])),
            ["spec.volumes[0]: Required value: must specify a volume type"]
        );
        assert_eq!(
            volume_errors(json!([{"name": "v", "emptyDir": {}, "downwardAPI": {}, "configMap": {"name": "x"}}])),
            [
                "spec.volumes[0].downwarAPI: Forbidden: may not specify more than 1 volume type",
                "spec.volumes[0].configMap: Forbidden: may not specify more than 1 volume type"
            ]
        );
        assert_eq!(
            volume_errors(json!([{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}}, {"emptyDir": {}}])),
            [
                r#"spec.volumes[1].name: Duplicate value: "v""#,
                "spec.volumes[2].name: Required value"
            ]
        );
    }

    #[test]
    fn config_map_and_secret_fields() {
        assert_eq!(
            volume_errors(json!([{"name": "c", "configMap": {"defaultMode": 1000,
                "items": [{"key": "", "path": "../x"}, {"key": "k", "path": "/abs", "mode": -1}, {"key": "k", "path": "..data"}]}}])),
            [
                "spec.volumes[0].configMap.name: Required value",
                "spec.volumes[0].configMap.defaultMode: Invalid value: 1000: must be a number between 0 and 0777 (octal), both inclusive",
                "spec.volumes[0].configMap.items[0].key: Required value",
                r#"spec.volumes[0].configMap.items[0].path: Invalid value: "../x": must not contain '..'"#,
                r#"spec.volumes[0].configMap.items[1].path: Invalid value: "/abs": must be a relative path"#,
                "spec.volumes[0].configMap.items[1].mode: Invalid value: -1: must be a number between 0 and 0777 (octal), both inclusive",
                r#"spec.volumes[0].configMap.items[2].path: Invalid value: "..data": must not start with '..'"#,
            ]
        );
        assert_eq!(
            volume_errors(json!([{"name": "s", "secret": {}}, {"name": "h", "hostPath": {"path": "/a/../b"}}])),
            [
                "spec.volumes[0].secret.secretName: Required value",
                r#"spec.volumes[1].hostPath.path: Invalid value: "/a/../b": must not contain '..'"#
            ]
        );
    }

    #[test]
    fn mounts_name_a_valid_volume_at_a_unique_path() {
        let volumes = HashSet::from(["data".to_owned()]);
        let errs: Vec<String> = validate_mounts(
            &json!([
                {"name": "data", "mountPath": "/d", "subPath": "../up"},
                {"name": "gone", "mountPath": "/d"},
                {"name": "", "mountPath": ""},
                {"name": "data", "mountPath": "/e", "subPath": "a", "subPathExpr": "$(X)"},
            ]),
            &volumes,
            &FieldPath::new("spec")
                .child("containers")
                .index(0)
                .child("volumeMounts"),
        )
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            errs,
            [
                r#"spec.containers[0].volumeMounts.subPath: Invalid value: "../up": must not contain '..'"#,
                r#"spec.containers[0].volumeMounts[1].name: Not found: "gone""#,
                r#"spec.containers[0].volumeMounts[1].mountPath: Invalid value: "/d": must be unique"#,
                "spec.containers[0].volumeMounts[2].name: Required value",
                r#"spec.containers[0].volumeMounts[2].name: Not found: """#,
                "spec.containers[0].volumeMounts[2].mountPath: Required value",
                r#"spec.containers[0].volumeMounts[3].subPathExpr: Invalid value: "$(X)": subPathExpr and subPath are mutually exclusive"#,
            ]
        );
    }
}
