//! Readiness probes: `tcpSocket`, `httpGet` (from the node, as upstream's kubelet does) and
//! `exec` (inside the pod's namespace). Resolving a probe against its container is pure; only
//! [`check`] touches the network.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// What one probe does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Tcp(SocketAddr),
    Http { addr: SocketAddr, path: String },
    Exec(Vec<String>),
}

/// A probe with its timing, in seconds (upstream's defaults filled in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub action: Action,
    pub initial_delay: u64,
    pub period: u64,
    pub timeout: u64,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(p) => u16::try_from(*p).map_err(|_| format!("probe port {p} is out of range")),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| format!("probe port {name:?} is not a port of container {:?}", container.name)),
    }
}

/// The probe of `container` against a pod at `pod_ip`.
pub fn plan(probe: &Probe, container: &Container, pod_ip: IpAddr) -> Result<Plan, String> {
    let action = if let Some(tcp) = &probe.tcp_socket {
        Action::Tcp(SocketAddr::new(pod_ip, resolve_port(&tcp.port, container)?))
    } else if let Some(http) = &probe.http_get {
        if http.scheme.as_deref().is_some_and(|s| s != "HTTP") {
            return Err("only HTTP probes are supported in the lab".into());
        }
        let host = match &http.host {
            Some(h) => h
                .parse()
                .map_err(|_| format!("probe host {h:?} is not an IP address"))?,
            None => pod_ip,
        };
        Action::Http {
            addr: SocketAddr::new(host, resolve_port(&http.port, container)?),
            path: http.path.clone().unwrap_or_else(|| "/".into()),
        }
    } else if let Some(exec) = &probe.exec {
        let command = exec.command.clone().unwrap_or_default();
        if command.is_empty() {
            return Err("exec probe without a command".into());
        }
        Action::Exec(command)
    } else {
        return Err("probe has no handler (tcpSocket, httpGet or exec)".into());
    };
    let secs = |v: Option<i32>, default: i32| u64::try_from(v.unwrap_or(default).max(0)).unwrap_or(0);
    Ok(Plan {
        action,
        initial_delay: secs(probe.initial_delay_seconds, 0),
        period: secs(probe.period_seconds, 10).max(1),
        timeout: secs(probe.timeout_seconds, 1).max(1),
        success_threshold: probe.success_threshold.unwrap_or(1).max(1) as u32,
        failure_threshold: probe.failure_threshold.unwrap_or(3).max(1) as u32,
    })
}

/// Whether an HTTP response's status line means success (200 to 399).
pub fn http_ok(response: &str) -> bool {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .is_some_and(|code| (200..400).contains(&code))
}

fn network_probe(node_netns: &str, action: &Action, timeout: Duration) -> std::io::Result<bool> {
    crate::netns::enter(node_netns)?;
    match action {
        Action::Tcp(addr) => Ok(TcpStream::connect_timeout(addr, timeout).is_ok()),
        Action::Http { addr, path } => {
            let mut s = TcpStream::connect_timeout(addr, timeout)?;
            s.set_read_timeout(Some(timeout))?;
            s.set_write_timeout(Some(timeout))?;
            write!(
                s,
                "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: kube-probe/1.37\r\nConnection: close\r\n\r\n"
            )?;
            let mut head = [0u8; 64];
            let n = s.read(&mut head)?;
            Ok(http_ok(&String::from_utf8_lossy(&head[..n])))
        }
        Action::Exec(_) => Ok(false),
    }
}

/// Runs one probe; `false` on failure or timeout.
pub async fn check(action: &Action, node_netns: &str, pod_netns: &str, timeout: Duration) -> bool {
    match action {
        Action::Exec(command) => {
            let Some((program, args)) = command.split_first() else {
                return false;
            };
            let mut cmd = tokio::process::Command::new(program);
            cmd.args(args)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true);
            let Ok(mut child) = crate::netns::spawn_async_in(pod_netns, &mut cmd) else {
                return false;
            };
            matches!(
                tokio::time::timeout(timeout, child.wait()).await,
                Ok(Ok(status)) if status.success()
            )
        }
        network => {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let (action, netns) = (network.clone(), node_netns.to_owned());
            // a thread of its own: it enters the node's namespace, which must not leak
            // into a pooled thread
            std::thread::spawn(move || {
                let _ = tx.send(network_probe(&netns, &action, timeout).unwrap_or(false));
            });
            rx.await.unwrap_or(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerPort, ExecAction, HTTPGetAction, TCPSocketAction};

    fn web() -> Container {
        Container {
            name: "web".into(),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: 8080,
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn probes_resolve_named_ports_and_defaults() {
        let ip: IpAddr = "10.244.1.2".parse().unwrap();
        let http = Probe {
            http_get: Some(HTTPGetAction {
                port: IntOrString::String("http".into()),
                path: Some("/hostname".into()),
                ..Default::default()
            }),
            period_seconds: Some(2),
            ..Default::default()
        };
        let p = plan(&http, &web(), ip).unwrap();
        assert_eq!(
            p.action,
            Action::Http {
                addr: "10.244.1.2:8080".parse().unwrap(),
                path: "/hostname".into()
            }
        );
        assert_eq!(
            (p.period, p.timeout, p.success_threshold, p.failure_threshold),
            (2, 1, 1, 3)
        );
        let tcp = Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(9376),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            plan(&tcp, &web(), ip).unwrap().action,
            Action::Tcp("10.244.1.2:9376".parse().unwrap())
        );
        let exec = Probe {
            exec: Some(ExecAction {
                command: Some(vec!["cat".into(), "/tmp/ready".into()]),
            }),
            ..Default::default()
        };
        assert_eq!(
            plan(&exec, &web(), ip).unwrap().action,
            Action::Exec(vec!["cat".into(), "/tmp/ready".into()])
        );
    }

    #[test]
    fn bad_probes_are_explained() {
        let ip: IpAddr = "10.244.1.2".parse().unwrap();
        let unknown = Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::String("grpc".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(
            plan(&unknown, &web(), ip)
                .unwrap_err()
                .contains("\"grpc\" is not a port")
        );
        assert!(plan(&Probe::default(), &web(), ip).unwrap_err().contains("no handler"));
    }

    #[test]
    fn http_status_lines() {
        assert!(http_ok("HTTP/1.1 200 OK\r\n"));
        assert!(http_ok("HTTP/1.0 302 Found\r\n"));
        assert!(!http_ok("HTTP/1.1 404 Not Found\r\n"));
        assert!(!http_ok(""));
    }
}
