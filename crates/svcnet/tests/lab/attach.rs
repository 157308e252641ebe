//! `kubectl attach` and `kubectl run -i`/`-it` (WebSocket, `v5.channel.k8s.io`), on svcnet's
//! API server and on upstream's (which proxies them to the lab's kubelet API): attaching to
//! a running container shows what it writes from then on; `run -i` feeds a container's stdin
//! (closed when kubectl's ends: `stdinOnce`) and returns its exit code; `run -it` gives it a
//! terminal of kubectl's size; `-i` on a container without stdin is refused with the reason.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::support::{self, ControlPlane, Lab};

on_svcnet_and_upstream!(kubectl_attach_and_run_interactively);

/// kubectl with `input` on its stdin (then closed); its exit code, stdout and stderr.
fn kubectl_with_input(lab: &Lab, input: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let mut child = Command::new("timeout")
        .arg("90")
        .arg(support::kubectl_binary())
        .envs(lab.kubectl_env())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn kubectl_attach_and_run_interactively(control_plane: ControlPlane) {
    let lab = Lab::up_on(1, control_plane);
    lab.apply(
        "apiVersion: v1
kind: Pod
metadata: {name: talker, labels: {app: talker}}
spec:
  containers:
    - name: talker
      image: busybox
      command: [sh, -c, 'i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.3; done']
",
    );
    lab.wait_ready_pods("app=talker", 1);

    // attach: what it writes from now on (kubectl is stopped after a few seconds)
    let out = Command::new("timeout")
        .arg("4")
        .arg(support::kubectl_binary())
        .envs(lab.kubectl_env())
        .args(["attach", "talker"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    let ticks: Vec<&str> = shown.lines().filter(|l| l.starts_with("tick-")).collect();
    assert!(ticks.len() >= 3, "attach showed {shown:?}");
    assert!(
        !ticks.contains(&"tick-1"),
        "attach showed output from before it: {shown:?}"
    );

    // -i on a container without stdin: refused, saying why
    let (code, _, err) = kubectl_with_input(&lab, "", &["attach", "-i", "talker"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("was not started with stdin: true"), "{err}");

    // run -i: stdin reaches the container, its end ends the container's (stdinOnce), the
    // exit code comes back and --rm removes the pod
    let (code, out, err) = kubectl_with_input(
        &lab,
        "one\ntwo\n",
        &[
            "run",
            "-i",
            "--rm",
            "--restart=Never",
            "--image=busybox",
            "counter",
            "--",
            "sh",
            "-c",
            "wc -l; exit 3",
        ],
    );
    assert_eq!(code, Some(3), "stdout: {out}\nstderr: {err}");
    assert!(out.lines().any(|l| l.trim() == "2"), "{out}");
    assert!(out.contains("pod \"counter\" deleted"), "{out}");

    // run -it: a terminal of kubectl's size (kubectl wants a terminal of its own: script(1),
    // whose input stays open while the command runs)
    let line = format!(
        "stty cols 91 rows 31; {} run -it --rm --restart=Never --image=busybox shell -- sh -c 'sleep 1; tty; stty size; exit 4'",
        support::kubectl_binary().display()
    );
    let mut script = Command::new("timeout")
        .args(["90", "script", "-qec", &line, "/dev/null"])
        .envs(lab.kubectl_env())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let keep_open = script.stdin.take();
    let out = script.wait_with_output().unwrap();
    drop(keep_open);
    let shown = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert_eq!(out.status.code(), Some(4), "{shown}");
    assert!(shown.contains("/dev/pts/") && shown.contains("31 91"), "{shown}");
}
