//! `kubectl port-forward` (SPDY tunnelled in a WebSocket) on svcnet's API server and on
//! upstream's (which proxies it to the lab's kubelet API): a Service's port reaches its pod,
//! one local connection after another and several at once, with bodies larger than one SPDY
//! frame both ways; a port nothing listens on is reported with the kubelet's words.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::support::{self, ControlPlane, Lab};

on_svcnet_and_upstream!(kubectl_port_forward_reaches_a_service_s_pod);

/// `kubectl port-forward TARGET :PORT` for at most a minute; returns it and the local port
/// it listens on.
fn port_forward(lab: &Lab, target: &str, remote: u16) -> (std::process::Child, u16) {
    let mut child = Command::new("timeout")
        .arg("60")
        .arg(support::kubectl_binary())
        .envs(lab.kubectl_env())
        .args(["port-forward", "--address=127.0.0.1", target, &format!(":{remote}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    stdout.read_line(&mut line).unwrap();
    // kubectl goes on writing there ("Handling connection for ..."): keep the pipe open
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    // "Forwarding from 127.0.0.1:PORT -> REMOTE"
    let port = line
        .split_whitespace()
        .nth(2)
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok());
    (
        child,
        port.unwrap_or_else(|| panic!("kubectl port-forward said {line:?}")),
    )
}

fn curl(url: &str) -> (bool, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn kubectl_port_forward_reaches_a_service_s_pod(control_plane: ControlPlane) {
    let lab = Lab::up_on(1, control_plane);
    lab.apply(&crate::deployment("web", 1, ""));
    lab.apply(
        "apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
",
    );
    lab.wait_ready_pods("app=web", 1);
    let pod = lab.get(&["pods", "-l", "app=web"], "{.items[0].metadata.name}");

    // kubectl resolves the Service to its pod and the target port
    let (forwarder, port) = port_forward(&lab, "svc/web", 80);
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..3 {
        let (ok, text) = curl(&format!("{base}/hostname"));
        assert!(ok && text == pod, "{text}");
    }
    // several connections at once
    let parallel: Vec<_> = (0..4)
        .map(|i| {
            let url = format!("{base}/echo?msg=parallel-{i}");
            std::thread::spawn(move || curl(&url))
        })
        .collect();
    for (i, t) in parallel.into_iter().enumerate() {
        let (ok, text) = t.join().unwrap();
        assert!(ok && text == format!("parallel-{i}"), "{text}");
    }
    // more than one SPDY frame each way (frames carry at most 32 KiB)
    let big = "x".repeat(100_000);
    let (ok, text) = curl(&format!("{base}/echo?msg={big}"));
    assert!(ok && text == big, "{} bytes came back", text.len());
    support::stop(forwarder);

    // nothing listens on 9999: the connection ends, and kubectl says why
    let (mut refused, port) = port_forward(&lab, &format!("pod/{pod}"), 9999);
    let (ok, _) = curl(&format!("http://127.0.0.1:{port}/"));
    assert!(!ok);
    let _ = refused.wait();
    let mut said = String::new();
    std::io::Read::read_to_string(&mut refused.stderr.take().unwrap(), &mut said).unwrap();
    assert!(said.contains("error forwarding port 9999 to pod"), "{said}");
}
