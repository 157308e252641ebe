use super::*;
use serde_json::json;

fn pod(volumes: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1",
                     "labels": {"app": "web", "tier": "a\"b"}, "annotations": {"note": "x"}},
        "spec": {"containers": [{"name": "c"}], "volumes": volumes, "nodeName": "node-1"},
        "status": {"podIP": "10.244.1.2"}
    }))
    .unwrap()
}

fn inputs() -> Inputs {
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "cfg"}, "data": {"a.conf": "A", "b": "B"}, "binaryData": {"bin": "AAE="}
    }))
    .unwrap();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "pw"}, "data": {"password": "czNjcjN0"}
    }))
    .unwrap();
    let mut inputs = Inputs::default();
    inputs.config_maps.insert("cfg".into(), Some(cm));
    inputs.config_maps.insert("gone".into(), None);
    inputs.secrets.insert("pw".into(), Some(secret));
    inputs.secrets.insert("gone".into(), None);
    inputs
}

fn content_of(volume: serde_json::Value, inputs: &Inputs) -> Result<Content, String> {
    let p = pod(json!([volume]));
    let v = &p.spec.as_ref().unwrap().volumes.as_ref().unwrap()[0];
    content(v, &p, inputs)
}

fn file_list(c: Content) -> Vec<(String, String, u32)> {
    match c {
        Content::Files { files, .. } => files
            .into_iter()
            .map(|f| (f.path, String::from_utf8_lossy(&f.data).into_owned(), f.mode))
            .collect(),
        Content::EmptyDir => panic!("files expected"),
    }
}

#[test]
fn a_config_map_gives_every_key_or_the_listed_items() {
    let all = file_list(content_of(json!({"name": "v", "configMap": {"name": "cfg"}}), &inputs()).unwrap());
    assert_eq!(
        all,
        [
            ("a.conf".into(), "A".into(), 0o644),
            ("b".into(), "B".into(), 0o644),
            ("bin".into(), "\0\u{1}".into(), 0o644)
        ]
    );
    let items = json!({"name": "v", "configMap": {"name": "cfg", "defaultMode": 0o400,
        "items": [{"key": "b", "path": "conf/b.txt"}, {"key": "a.conf", "path": "a", "mode": 0o600}]}});
    assert_eq!(
        file_list(content_of(items, &inputs()).unwrap()),
        [
            ("conf/b.txt".into(), "B".into(), 0o400),
            ("a".into(), "A".into(), 0o600)
        ]
    );
}

#[test]
fn missing_objects_and_keys_fail_the_mount_in_upstream_s_words_unless_optional() {
    let missing = content_of(json!({"name": "v", "configMap": {"name": "gone"}}), &inputs());
    assert_eq!(missing, Err("configmap \"gone\" not found".into()));
    let secret = content_of(json!({"name": "v", "secret": {"secretName": "gone"}}), &inputs());
    assert_eq!(secret, Err("secret \"gone\" not found".into()));
    let key = content_of(
        json!({"name": "v", "configMap": {"name": "cfg", "items": [{"key": "nope", "path": "x"}]}}),
        &inputs(),
    );
    assert_eq!(key, Err("configmap references non-existent configmap key: nope".into()));
    let optional = content_of(
        json!({"name": "v", "configMap": {"name": "gone", "optional": true}}),
        &inputs(),
    );
    assert_eq!(file_list(optional.unwrap()), []);
    assert_eq!(
        failed_mount("v", "secret \"gone\" not found"),
        "MountVolume.SetUp failed for volume \"v\" : secret \"gone\" not found"
    );
}

#[test]
fn secrets_are_decoded_and_other_kinds_are_refused_by_name() {
    let s = file_list(content_of(json!({"name": "v", "secret": {"secretName": "pw"}}), &inputs()).unwrap());
    assert_eq!(s, [("password".into(), "s3cr3t".into(), 0o644)]);
    let host = content_of(json!({"name": "h", "hostPath": {"path": "/etc"}}), &inputs()).unwrap_err();
    assert!(
        host.contains("\"h\"") && host.contains("emptyDir, configMap, secret"),
        "{host}"
    );
    assert_eq!(
        content_of(json!({"name": "e", "emptyDir": {}}), &inputs()),
        Ok(Content::EmptyDir)
    );
}

#[test]
fn the_downward_api_renders_fields_as_upstream_does() {
    let v = json!({"name": "v", "downwardAPI": {"items": [
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
        {"path": "app", "fieldRef": {"fieldPath": "metadata.labels['app']"}},
    ]}});
    assert_eq!(
        file_list(content_of(v, &inputs()).unwrap()),
        [
            ("labels".into(), "app=\"web\"\ntier=\"a\\\"b\"".into(), 0o644),
            ("name".into(), "web-1".into(), 0o644),
            ("app".into(), "web".into(), 0o644)
        ]
    );
    let bad = json!({"name": "v", "downwardAPI": {"items": [{"path": "x", "fieldRef": {"fieldPath": "spec.bogus"}}]}});
    assert_eq!(
        content_of(bad, &inputs()),
        Err("unsupported fieldPath: spec.bogus".into())
    );
}

#[test]
fn a_projected_volume_merges_its_sources_and_notes_a_token_it_could_not_get() {
    let v = json!({"name": "kube-api-access-x", "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "cfg", "items": [{"key": "a.conf", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
    ]}});
    let p = pod(json!([v]));
    let wanted = needs(&p);
    assert_eq!(wanted.config_maps, BTreeSet::from(["cfg".to_owned()]));
    let key = TokenKey {
        audience: None,
        expiration_seconds: 3607,
    };
    assert_eq!(wanted.tokens, BTreeSet::from([key.clone()]));
    let mut with_token = inputs();
    with_token.tokens.insert(key.clone(), Ok("jwt".into()));
    let volume = &p.spec.as_ref().unwrap().volumes.as_ref().unwrap()[0];
    assert_eq!(
        file_list(content(volume, &p, &with_token).unwrap()),
        [
            ("token".into(), "jwt".into(), 0o644),
            ("ca.crt".into(), "A".into(), 0o644),
            ("namespace".into(), "shop".into(), 0o644)
        ]
    );
    let mut without = inputs();
    without
        .tokens
        .insert(key, Err("the API server does not serve TokenRequest".into()));
    match content(volume, &p, &without).unwrap() {
        Content::Files { files, notes } => {
            assert_eq!(files.len(), 2);
            assert_eq!(
                notes,
                ["no service account token at token: the API server does not serve TokenRequest"]
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn only_empty_dirs_are_writable() {
    let p = pod(json!([{"name": "e", "emptyDir": {}}, {"name": "c", "configMap": {"name": "cfg"}}]));
    assert!(writable(&p, "e"));
    assert!(!writable(&p, "c"));
    assert!(!writable(&p, "missing"));
}

#[test]
fn files_are_laid_out_as_the_atomic_writer_does_and_replaced_whole() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("svcnet-volume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let first = Content::Files {
        files: vec![
            VolumeFile {
                path: "a".into(),
                data: b"1".to_vec(),
                mode: 0o640,
            },
            VolumeFile {
                path: "conf/b".into(),
                data: b"2".to_vec(),
                mode: 0o644,
            },
        ],
        notes: vec![],
    };
    write(&dir, &first, "2026_12_03_01_00_00.000000001").unwrap();
    assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "1");
    assert_eq!(std::fs::read_to_string(dir.join("conf/b")).unwrap(), "2");
    assert_eq!(std::fs::read_link(dir.join("a")).unwrap(), Path::new("..data/a"));
    assert_eq!(
        std::fs::read_link(dir.join("..data")).unwrap(),
        Path::new("..2026_12_03_01_00_00.000000001")
    );
    assert_eq!(
        std::fs::metadata(dir.join("a")).unwrap().permissions().mode() & 0o777,
        0o640
    );
    let second = Content::Files {
        files: vec![VolumeFile {
            path: "a".into(),
            data: b"3".to_vec(),
            mode: 0o644,
        }],
        notes: vec![],
    };
    write(&dir, &second, "2026_12_03_01_00_10.000000001").unwrap();
    assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "3");
    assert!(!dir.join("conf").exists(), "an entry no longer there is removed");
    let generations: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("..") && n != "..data")
        .collect();
    assert_eq!(generations, ["..2026_12_03_01_00_10.000000001"]);
    let escape = Content::Files {
        files: vec![VolumeFile {
            path: "../x".into(),
            data: vec![],
            mode: 0o644,
        }],
        notes: vec![],
    };
    assert!(write(&dir, &escape, "s").is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}
