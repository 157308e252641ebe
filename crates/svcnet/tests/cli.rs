//! The `svcnet` binary end to end: `service check` over manifests.

use std::process::Command;

fn svcnet(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_svcnet")).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap())
}

#[test]
fn service_check_allocates_and_shares_node_ports() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/services.yaml");
    let (code, out) = svcnet(&["service", "check", example, "--service-cluster-ip-range", "10.0.0.0/24"]);
    assert_eq!(code, 0, "{out}");
    let docs: Vec<serde_json::Value> = out
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_yaml_ng::from_str(d).unwrap())
        .collect();
    assert_eq!(docs.len(), 2);
    let ip = docs[0]["spec"]["clusterIP"].as_str().unwrap();
    assert!(ip.starts_with("10.0.0."), "{ip}");
    let ports = docs[1]["spec"]["ports"].as_array().unwrap();
    assert_eq!(ports[0]["nodePort"], 30080);
    assert_eq!(
        ports[1]["nodePort"], ports[2]["nodePort"],
        "53/TCP and 53/UDP share a node port"
    );
}

#[test]
fn service_check_reports_the_status_and_fails() {
    let dir = std::env::temp_dir().join(format!("svcnet-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.yaml");
    std::fs::write(
        &file,
        "metadata: {name: web}\nspec: {ports: [{port: 0, targetPort: 80}]}\n",
    )
    .unwrap();
    let (code, out) = svcnet(&["service", "check", file.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(code, 1);
    assert!(
        out.contains(r#""message":"Service \"web\" is invalid: spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive""#),
        "{out}"
    );
}

#[test]
fn bad_flags_are_refused_clearly() {
    let out = Command::new(env!("CARGO_BIN_EXE_svcnet"))
        .args(["service", "check", "-", "--service-node-port-range", "9-1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid port range \"9-1\""));
}

#[test]
fn the_lab_refuses_clearly_without_root() {
    // run as nobody (setpriv is util-linux, on every Debian machine), from a copy of the
    // binary nobody can reach whatever the checkout's permissions are
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("svcnet");
    std::fs::copy(env!("CARGO_BIN_EXE_svcnet"), &exe).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(&exe)
        .args(["lab", "up", "--name", "nonroot"])
        .output()
        .expect("setpriv (util-linux) is needed for this test");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the lab needs root"), "{stderr}");
    assert!(!std::path::Path::new("/run/svcnet-lab/nonroot").exists());
}

#[test]
fn lab_names_and_sizes_are_checked_before_anything_is_made() {
    let (code, _) = svcnet(&["lab", "up", "--name", "Bad-Name"]);
    assert_eq!(code, 2);
    let out = Command::new(env!("CARGO_BIN_EXE_svcnet"))
        .args(["lab", "up", "--name", "ok", "--nodes", "33"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("a lab has 1 to 32 nodes, not 33"));
    assert!(!std::path::Path::new("/run/svcnet-lab/ok").exists());
}

#[test]
fn a_reader_that_stops_early_gets_no_panic() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/services.yaml");
    // `head -c 1` closes the pipe after one byte, long before svcnet has printed everything;
    // svcnet's standard error is what the shell prints
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "for i in 1 2 3; do {} service check {example} 2>&3 | head -c 1 >/dev/null; done 3>&1",
            env!("CARGO_BIN_EXE_svcnet")
        ))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stdout);
    assert!(stderr.is_empty(), "{stderr}");
}
