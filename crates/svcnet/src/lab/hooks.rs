//! How the lab's API server reaches pods: for the `proxy` subresources, connections are
//! opened from inside a node's network namespace (where every pod address is routed), by a
//! thread that enters it for that one connection; for `pods/log`, the kubelets' output files;
//! for `exec`, the pod's sandbox; for `port-forward`, the pod's own loopback, dialled the same
//! way from inside the pod's namespace.

use std::net::{SocketAddr, TcpStream};

use std::time::Duration;
use svcnet_apiserver::proxy::Dialer;

pub struct NodeDialer {
    pub netns: String,
}

impl svcnet_apiserver::proxy::Dialer for NodeDialer {
    fn dial(&self, addr: SocketAddr) -> std::io::Result<TcpStream> {
        let netns = self.netns.clone();
        // a thread of its own: entering a namespace must not leak into a pooled thread; the
        // socket stays in the node's namespace whichever thread uses it later
        std::thread::spawn(move || {
            crate::netns::enter(&netns)?;
            TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        })
        .join()
        .map_err(|_| std::io::Error::other("dialer thread panicked"))?
    }
}

/// Container output as the lab's kubelets write it: one file per container in the lab's
/// state directory (see `kubelet::worker`).
pub struct LogFiles {
    pub dir: std::path::PathBuf,
}

impl LogFiles {
    pub fn path(dir: &std::path::Path, namespace: &str, pod: &str, container: &str) -> std::path::PathBuf {
        dir.join(format!("{namespace}_{pod}_{container}.log"))
    }

    /// Where the previous run's output goes when a container restarts.
    pub fn previous_path(dir: &std::path::Path, namespace: &str, pod: &str, container: &str) -> std::path::PathBuf {
        dir.join(format!("{namespace}_{pod}_{container}.previous.log"))
    }
}

impl svcnet_apiserver::logs::PodLogs for LogFiles {
    fn read(&self, namespace: &str, pod: &str, container: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(Self::path(&self.dir, namespace, pod, container))
    }

    fn read_previous(&self, namespace: &str, pod: &str, container: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(Self::previous_path(&self.dir, namespace, pod, container))
    }

    fn read_from(&self, namespace: &str, pod: &str, container: &str, offset: u64) -> std::io::Result<Vec<u8>> {
        use std::io::{Read, Seek, SeekFrom};
        let mut file = std::fs::File::open(Self::path(&self.dir, namespace, pod, container))?;
        file.seek(SeekFrom::Start(offset))?;
        let mut added = Vec::new();
        file.read_to_end(&mut added)?;
        Ok(added)
    }
}

/// Runs `kubectl exec` commands in a lab pod: in its network namespace, through its sandbox
/// (hostname, resolv.conf, hosts), as the container's user, from its working directory with
/// its environment.
pub struct PodCommands {
    pub plan: super::plan::LabPlan,
    pub state: std::path::PathBuf,
    pub exe: String,
    pub consoles: std::sync::Arc<super::kubelet::console::Consoles>,
}

impl svcnet_apiserver::exec::PodStreaming for PodCommands {
    fn start(
        &self,
        pod: &serde_json::Value,
        container: &str,
        command: &[String],
        tty: bool,
    ) -> std::io::Result<svcnet_apiserver::exec::Process> {
        use super::kubelet::{container as containers, isolation};
        let pod: k8s_openapi::api::core::v1::Pod =
            serde_json::from_value(pod.clone()).map_err(std::io::Error::other)?;
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let dir = isolation::sandbox_dir(&self.state, &uid);
        if !dir.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the pod is not running on any node of the lab",
            ));
        }
        let spec = pod.spec.clone().unwrap_or_default();
        let found = spec
            .containers
            .iter()
            .find(|c| c.name == container)
            .ok_or_else(|| std::io::Error::other(format!("container {container} not found")))?;
        let (uid_, gid) = containers::identity(found, spec.security_context.as_ref());
        let isolation = isolation::Isolation {
            dir,
            container: container.to_owned(),
            entry: isolation::Entry::Join,
            uid: uid_,
            gid,
            workdir: found
                .working_dir
                .clone()
                .filter(|w| !w.is_empty())
                .unwrap_or_else(|| "/".into()),
        };
        let argv = if tty {
            isolation.wrap_on_terminal(&self.exe, command)
        } else {
            isolation.wrap(&self.exe, command)
        };
        // the sandbox gives the command the container's environment
        let mut cmd = tokio::process::Command::new(&argv[0]);
        cmd.args(&argv[1..]).kill_on_drop(true).current_dir("/");
        // a terminal: the command's three streams are its side, we keep the master
        let terminal = if tty {
            let (master, slave) = isolation::open_terminal()?;
            cmd.stdin(slave.try_clone()?).stdout(slave.try_clone()?).stderr(slave);
            Some(master)
        } else {
            cmd.stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            None
        };
        let child = crate::netns::spawn_async_in(&self.plan.pod_netns(&uid), &mut cmd)?;
        // the command's copies of the terminal are its own now; ours close with `cmd`
        drop(cmd);
        Ok(svcnet_apiserver::exec::Process { child, terminal })
    }

    fn attach(
        &self,
        pod: &serde_json::Value,
        container: &str,
        stdin: bool,
    ) -> std::io::Result<svcnet_apiserver::exec::Attached> {
        let namespace = pod["metadata"]["namespace"].as_str().unwrap_or("default").to_owned();
        let name = pod["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        let uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
        if !super::kubelet::isolation::sandbox_dir(&self.state, uid).is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the pod is not running on any node of the lab",
            ));
        }
        let log = LogFiles::path(&self.state.join("pods"), &namespace, &name, container);
        let key = (namespace, name, container.to_owned());
        super::kubelet::console::attach(&self.consoles, &key, log, stdin)
    }

    fn connect(&self, pod: &serde_json::Value, port: u16) -> std::io::Result<TcpStream> {
        let uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
        if !super::kubelet::isolation::sandbox_dir(&self.state, uid).is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the pod is not running on any node of the lab",
            ));
        }
        // the pod's own loopback, as the kubelet dials for port-forward
        NodeDialer {
            netns: self.plan.pod_netns(uid),
        }
        .dial(SocketAddr::from(([127, 0, 0, 1], port)))
    }
}
