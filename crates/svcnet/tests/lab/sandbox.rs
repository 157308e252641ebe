//! A pod's processes run as an unprivileged user unless the pod asks for root, from `/` rather
//! than the lab's own directory: a pasted manifest cannot write to the machine's system files.
//! They have their own mount, UTS and IPC namespaces, with the pod's name as hostname and the
//! pod's own `/etc/resolv.conf` and `/etc/hosts`: even a root pod that writes to those changes
//! only its copy. A pod's containers share its PID, IPC and UTS namespaces and nothing else
//! does: they see the pod's processes only, under the pod's init as PID 1, which takes what
//! is left of the pod with it when the pod goes.

use std::time::Duration;

use crate::support::{ControlPlane, Lab, wait_for};

fn pod(name: &str, security_context: &str, script: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: Never
  {security_context}
  containers:
    - name: sh
      image: busybox
      command: [sh, -c, '{script}']
"
    )
}

/// On both control planes (`kubectl logs` reaches the output through kube-apiserver too).
fn pods_run_unprivileged_unless_they_ask_for_root(control_plane: ControlPlane) {
    let lab = Lab::up_on(1, control_plane);
    let script = "echo uid=$(id -u) cwd=$(pwd) host=$(hostname) mnt=$(readlink /proc/self/ns/mnt) ipc=$(readlink /proc/self/ns/ipc) uts=$(readlink /proc/self/ns/uts); grep -q 10.96.0.10 /etc/resolv.conf && echo own-resolver; grep -q plain /etc/hosts && echo own-hosts; touch /etc/svcnet-sandbox-probe && echo wrote || echo refused";
    lab.apply(&pod("plain", "", script));
    let host_resolv = std::fs::read("/etc/resolv.conf").unwrap();
    lab.apply(&pod(
        "root",
        "securityContext: {runAsUser: 0}",
        "echo uid=$(id -u); echo sandboxed >> /etc/resolv.conf && echo appended",
    ));
    let logs = |name: &str| {
        wait_for(&format!("{name}'s output"), Duration::from_secs(30), || {
            let (ok, out) = lab.kubectl(&["logs", name]);
            (ok && out.contains("uid=") && (name == "root" || out.contains("wrote") || out.contains("refused")))
                .then_some(out)
        })
    };
    let plain = logs("plain");
    assert!(plain.contains("uid=65534 cwd=/ host=plain "), "{plain}");
    for ns in ["mnt", "ipc", "uts"] {
        let host = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        let host = format!("{ns}={}", host.display());
        assert!(
            !plain.contains(&host),
            "the pod shares the host's {ns} namespace: {plain}"
        );
    }
    assert!(plain.contains("own-resolver") && plain.contains("own-hosts"), "{plain}");
    assert!(plain.contains("refused"), "an unprivileged pod wrote to /etc: {plain}");
    assert!(!std::path::Path::new("/etc/svcnet-sandbox-probe").exists());
    let root = logs("root");
    assert!(root.contains("uid=0"), "{root}");
    wait_for("the root pod's write", Duration::from_secs(10), || {
        lab.kubectl(&["logs", "root"]).1.contains("appended").then_some(())
    });
    assert_eq!(
        std::fs::read("/etc/resolv.conf").unwrap(),
        host_resolv,
        "a root pod's write to /etc/resolv.conf reached the host's"
    );
}

/// On both control planes: the kubelet's events and container statuses reach kube-apiserver
/// as they reach svcnet's. An image the lab does not run
/// waits in `ErrImagePull`, then `ImagePullBackOff`, with Warning events that name it; the
/// nginx image serves its welcome page.
fn a_container_the_lab_cannot_run_is_explained_by_a_warning_event(control_plane: ControlPlane) {
    let lab = Lab::up_on(1, control_plane);
    lab.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: cache}\nspec:\n  containers: [{name: redis, image: 'redis:7'}]\n",
    );
    lab.apply(&crate::support::client_pod("client", None));
    lab.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web, labels: {app: web}}\nspec:\n  containers: [{name: nginx, image: 'nginx:1.27', readinessProbe: {httpGet: {path: /, port: 80}, periodSeconds: 1}}]\n",
    );
    let event = wait_for("a Failed warning", Duration::from_secs(30), || {
        let events = lab.k(&[
            "get",
            "events",
            "--field-selector=involvedObject.name=cache,type=Warning",
            "-o",
            "custom-columns=REASON:.reason,MESSAGE:.message",
            "--no-headers",
        ]);
        events
            .lines()
            .find(|l| l.starts_with("Failed") && l.contains("Failed to pull image"))
            .map(str::to_owned)
    });
    assert!(event.contains("\"redis:7\"") && event.contains("busybox"), "{event}");
    let reason = wait_for("ImagePullBackOff", Duration::from_secs(30), || {
        let reason = lab.get(&["pod", "cache"], "{.status.containerStatuses[0].state.waiting.reason}");
        (reason == "ImagePullBackOff").then_some(reason)
    });
    let described = lab.k(&["describe", "pod", "cache"]);
    assert!(
        described.contains(&reason) && described.contains("Back-off pulling image \"redis:7\""),
        "{described}"
    );
    lab.wait_ready_pods("app=web", 1);
    lab.wait_ready_pods("app=client", 1);
    let ip = lab.get(&["pod", "web"], "{.status.podIP}");
    let page = lab.ask_from_pod("client", &[&format!("{ip}:80"), "--request", "/"]);
    assert!(page.contains("Welcome to nginx!"), "{page}");
}

on_svcnet_and_upstream!(pods_run_unprivileged_unless_they_ask_for_root);

on_svcnet_and_upstream!(a_container_the_lab_cannot_run_is_explained_by_a_warning_event);

#[test]
fn a_pod_s_containers_share_its_pid_ipc_and_uts_namespaces() {
    let lab = Lab::up(1);
    lab.apply(
        "apiVersion: v1
kind: Pod
metadata: {name: two, labels: {app: two}}
spec:
  containers:
    - {name: a, image: busybox, command: [sleep, infinity]}
    - {name: b, image: busybox, command: [sh, -c, 'sleep 1000']}
---
apiVersion: v1
kind: Pod
metadata: {name: other, labels: {app: other}}
spec:
  containers:
    - {name: c, image: busybox, command: [sleep, infinity]}
",
    );
    lab.wait_ready_pods("app=two", 1);
    lab.wait_ready_pods("app=other", 1);
    let exec =
        |pod: &str, container: &str, script: &str| lab.k(&["exec", pod, "-c", container, "--", "sh", "-c", script]);
    let namespaces = "hostname; readlink /proc/self/ns/pid /proc/self/ns/ipc /proc/self/ns/uts";
    let (a, b, c) = (
        exec("two", "a", namespaces),
        exec("two", "b", namespaces),
        exec("other", "c", namespaces),
    );
    assert_eq!(a, b, "the containers of one pod share its namespaces");
    assert!(a.starts_with("two\n") && c.starts_with("other\n"), "{a}{c}");
    for ns in ["pid", "ipc", "uts"] {
        let host = std::fs::read_link(format!("/proc/self/ns/{ns}"))
            .unwrap()
            .display()
            .to_string();
        let line = |out: &str| {
            out.lines()
                .find(|l| l.starts_with(&format!("{ns}:")))
                .unwrap_or_default()
                .to_owned()
        };
        assert_ne!(line(&a), line(&c), "two pods share a {ns} namespace");
        assert_ne!(line(&a), host, "a pod shares the host's {ns} namespace");
    }
    // the pod's processes only, under its init as PID 1
    let seen = exec(
        "two",
        "a",
        "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done",
    );
    let first = exec("two", "a", "tr '\\0' ' ' < /proc/1/cmdline");
    assert!(first.contains("lab sandbox-reaper"), "PID 1 is {first:?}");
    let commands: Vec<&str> = seen.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(commands.iter().any(|c| c.starts_with("sleep infinity")), "{seen}");
    assert!(commands.iter().any(|c| c.starts_with("sleep 1000")), "{seen}");
    assert!(
        commands.len() < 12
            && !commands
                .iter()
                .any(|c| c.contains("lab daemon") || c.contains("svcnet proxy")),
        "the pod sees processes beyond its own: {seen}"
    );
    // System V IPC is the pod's: a queue made in one container is seen by the other only
    let made = exec("two", "a", "ipcmk -Q");
    let key_line = exec("two", "b", "ipcs -q");
    let id = made.trim().rsplit(' ').next().unwrap_or_default().to_owned();
    assert!(
        key_line
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some(id.as_str())),
        "queue {id} not seen by the pod's other container: {key_line}"
    );
    let elsewhere = exec("other", "c", "ipcs -q");
    assert!(
        !elsewhere
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some(id.as_str()) && l.contains("0x")),
        "another pod sees the queue: {elsewhere}"
    );

    // the pod's init goes with it
    let uid = lab.get(&["pod", "two"], "{.metadata.uid}");
    let init_file = lab.state_dir().join("sandboxes").join(&uid).join("init.pid");
    let init = std::fs::read_to_string(&init_file).unwrap();
    let init = std::path::PathBuf::from(format!("/proc/{}", init.trim()));
    assert!(init.exists(), "{} is not running", init.display());
    lab.k(&["delete", "pod", "two"]);
    wait_for("the pod's init to end", Duration::from_secs(30), || {
        (!init.exists()).then_some(())
    });
}
