//! Upstream's control plane in the lab keeps its secrets: its directory is private, and etcd
//! (which holds every object, Secrets and tokens included) answers only clients holding a
//! certificate of the lab's CA, so another local user on loopback gets nothing from it.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::support::{ControlPlane, Lab};

#[test]
fn etcd_answers_only_the_api_server_and_the_directory_is_private() {
    let lab = Lab::up_on(1, ControlPlane::Upstream);
    let dir = lab.state_dir().join("upstream");
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{}", dir.display());
    let pid = std::fs::read_to_string(dir.join("pids/etcd.pid")).unwrap();
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", pid.trim())).unwrap();
    let url = String::from_utf8_lossy(&cmdline)
        .split('\0')
        .find_map(|a| a.strip_prefix("--listen-client-urls=").map(str::to_owned))
        .expect("etcd's client URL");
    assert!(url.starts_with("https://"), "{url}");
    // another user, without a certificate: refused during the TLS handshake
    let stranger = Command::new("curl")
        .args([
            "-sk",
            "--max-time",
            "5",
            &format!("{url}/v3/kv/range"),
            "-d",
            r#"{"key":"Lw=="}"#,
        ])
        .uid(65534)
        .gid(65534)
        .output()
        .expect("curl is needed");
    assert!(
        !stranger.status.success(),
        "etcd answered a client without a certificate: {stranger:?}"
    );
    assert!(
        stranger.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&stranger.stdout)
    );
    // the API server's client certificate is let in (so the refusal above is the certificate's)
    let with_cert = Command::new("curl")
        .args(["-s", "--max-time", "5", "--cacert"])
        .arg(dir.join("ca.crt"))
        .arg("--cert")
        .arg(dir.join("etcd-client.crt"))
        .arg("--key")
        .arg(dir.join("etcd-client.key"))
        .arg(format!("{url}/health"))
        .output()
        .unwrap();
    let health = String::from_utf8_lossy(&with_cert.stdout);
    assert!(health.contains(r#""health":"true""#), "{health}");
}
