//! `kubectl exec` (WebSocket, `v5.channel.k8s.io`), on svcnet's API server and on upstream's
//! (which proxies the WebSocket to the lab's kubelet API): a command's output, errors and exit
//! code come back apart, stdin reaches it and its end ends the command, and it runs as the
//! pod's processes do (its hostname, user and resolver); `-t` gives it a terminal of kubectl's
//! size; `kubectl cp` (tar over exec) copies the pod's files out.

use std::io::Write;
use std::process::Stdio;

use crate::support::{ControlPlane, Lab};

fn exec(lab: &Lab, stdin: Option<&str>, args: &[&str]) -> (Option<i32>, String, String) {
    let mut command = lab.kubectl_command();
    command.args(["exec"]).args(args);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    command.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = command.spawn().unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

on_svcnet_and_upstream!(kubectl_exec_runs_commands_in_the_pod_s_sandbox);

fn kubectl_exec_runs_commands_in_the_pod_s_sandbox(control_plane: ControlPlane) {
    let lab = Lab::up_on(1, control_plane);
    lab.apply(
        "apiVersion: v1
kind: Pod
metadata: {name: client, labels: {app: client}}
spec:
  containers:
    - name: shell
      image: busybox
      command: [sleep, infinity]
      env: [{name: GREETING, value: hello}]
",
    );
    lab.wait_ready_pods("app=client", 1);

    let (code, out, err) = exec(
        &lab,
        None,
        &["client", "--", "sh", "-c", "echo out; echo err >&2; exit 3"],
    );
    assert_eq!((code, out.as_str()), (Some(3), "out\n"), "stderr: {err}");
    assert!(err.contains("err"), "{err}");

    let (code, out, err) = exec(&lab, Some("line one\nline two\n"), &["-i", "client", "--", "wc", "-l"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), "2", "stdin reached the command and its end ended it");

    let (code, out, err) = exec(
        &lab,
        None,
        &[
            "client",
            "-c",
            "shell",
            "--",
            "sh",
            "-c",
            "hostname; id -u; echo $GREETING; head -1 /etc/resolv.conf",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out,
        "client\n65534\nhello\nsearch default.svc.cluster.local svc.cluster.local cluster.local\n"
    );

    // -t: a terminal, with kubectl's size (kubectl wants a terminal of its own: script(1))
    let kubectl = crate::support::kubectl_binary();
    let line = format!(
        "stty cols 91 rows 31; {} exec -it client -- sh -c 'tty; stty size; exit 4'",
        kubectl.display()
    );
    let out = std::process::Command::new("timeout")
        .args(["60", "script", "-qec", &line, "/dev/null"])
        .envs(lab.kubectl_env())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert_eq!(out.status.code(), Some(4), "{shown}");
    assert!(shown.contains("/dev/pts/") && shown.contains("31 91"), "{shown}");

    // kubectl cp is tar over exec: the pod's own hosts file comes out
    let copy = tempfile::tempdir().unwrap();
    let target = copy.path().join("hosts");
    let out = lab
        .kubectl_command()
        .args(["cp", "client:/etc/hosts"])
        .arg(&target)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let hosts = std::fs::read_to_string(&target).unwrap();
    assert!(
        hosts.contains("Kubernetes-managed hosts file") && hosts.contains("\tclient\n"),
        "{hosts}"
    );

    let (code, _, err) = exec(&lab, None, &["client", "-c", "nope", "--", "true"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("nope"), "{err}");
    let (code, _, err) = exec(&lab, None, &["client", "--", "/no/such/program"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("/no/such/program"), "{err}");
}
