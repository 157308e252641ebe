//! The server keeps its secrets from other users and survives any stored object.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::api::ApiServer as Server;
use crate::{kubectl, kubectl_until};

/// The user the unprivileged reader runs as (`nobody` on Debian; any uid without a home works).
const UNPRIVILEGED: u32 = 65534;

/// The data directory's files holding secrets or cluster state.
const PRIVATE: &[&str] = &["token", "ca.key", "apiserver.key", "kubeconfig", "store.redb"];

/// Polls `open()` on every private file of `dir` as an unprivileged user for at most `seconds`,
/// printing the name of each file it managed to read (once).
const READER: &str = r#"
import os, sys, time
d, names, end = sys.argv[1], sys.argv[2].split(","), time.time() + float(sys.argv[3])
print("polling", flush=True)
while time.time() < end and names:
    for n in list(names):
        try:
            with open(os.path.join(d, n), "rb") as f:
                f.read(1)
            print("read", n, flush=True)
            names.remove(n)
        except OSError:
            pass
"#;

#[test]
fn an_unprivileged_user_cannot_read_secrets_during_start_or_restart() {
    // a parent anyone may traverse, as /run or /var/lib are: only svcnet's own modes protect
    let parent = tempfile::tempdir().unwrap();
    std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = tempfile::Builder::new().tempdir_in(parent.path()).unwrap();
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut reader = Command::new("python3")
        .args(["-c", READER])
        .arg(data.path())
        .arg(PRIVATE.join(","))
        .arg("60")
        .uid(UNPRIVILEGED)
        .gid(UNPRIVILEGED)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs the unprivileged reader");
    let mut lines = BufReader::new(reader.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().and_then(Result::ok).as_deref(), Some("polling"));
    let started = Instant::now();
    let mut server = Server::start_in(data);
    server.restart();
    let (ok, text) = kubectl(&server, &["get", "namespaces", "-o", "name"]);
    assert!(ok, "{text}");
    let _ = reader.kill();
    let _ = reader.wait();
    let reads: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        reads.is_empty(),
        "another user read the server's secrets while it started: {reads:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the reader stopped before the server was up"
    );
    let mode = std::fs::metadata(server.dir.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "data directory mode");
    for name in PRIVATE {
        let mode = std::fs::metadata(server.dir.path().join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{name}");
    }
}

fn pod_count(server: &Server) -> usize {
    let (ok, text) = kubectl(server, &["get", "pods", "-o", "name"]);
    assert!(ok, "the server stopped answering: {text}");
    text.lines().filter(|l| l.starts_with("pod/")).count()
}

#[test]
fn a_huge_replica_count_neither_stops_the_server_nor_its_restart() {
    let mut server = Server::start();
    let (ok, text) = kubectl(
        &server,
        &[
            "create",
            "deployment",
            "huge",
            "--image=agnhost",
            "--replicas=2147483647",
        ],
    );
    assert!(ok, "{text}");
    // the controller creates pods in bounded batches and keeps serving meanwhile
    let deadline = Instant::now() + Duration::from_secs(60);
    while pod_count(&server) < 500 {
        assert!(Instant::now() < deadline, "no batch of pods within 60 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    // the stored object is still there after a restart, and the server starts and serves
    server.restart();
    assert!(pod_count(&server) >= 500);
    let (ok, text) = kubectl(&server, &["scale", "deployment", "huge", "--replicas=1"]);
    assert!(ok, "{text}");
    let deadline = Instant::now() + Duration::from_secs(120);
    while pod_count(&server) > 1 {
        assert!(
            Instant::now() < deadline,
            "the excess pods were not removed within 120 s"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    kubectl_until(
        &server,
        &["get", "replicasets", "-o", "jsonpath={.items[0].status.replicas}"],
        |t| t == "1",
    );
}

/// The server runs with two malloc arenas (it executes itself again with
/// `MALLOC_ARENA_MAX=2`; see `svcnet::arenas`), under the same process id.
#[test]
fn the_server_limits_its_malloc_arenas() {
    let server = Server::start();
    let environ = std::fs::read(format!("/proc/{}/environ", server.pid())).unwrap();
    let vars: Vec<&[u8]> = environ.split(|b| *b == 0).collect();
    assert!(
        vars.contains(&&b"MALLOC_ARENA_MAX=2"[..]),
        "MALLOC_ARENA_MAX=2 is not in the server's environment"
    );
}
