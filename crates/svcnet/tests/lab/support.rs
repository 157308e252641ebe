//! A lab for one test: `svcnet lab up` under a name unique to this run (`t<pid>x<n>`),
//! driven with real kubectl and the lab's own `exec`/`external`, and always taken down
//! (also on failure). Labs of earlier runs whose test process is gone are removed first.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(0);

pub const SVCNET: &str = env!("CARGO_BIN_EXE_svcnet");

/// A pod running agnhost's netexec on 8080 (ready once it listens), labelled `app: APP`, on
/// `node-N` when given; `extra_spec` (indented two spaces) goes into its spec.
pub fn netexec_pod(name: &str, app: &str, node: Option<u32>, extra_spec: &str) -> String {
    let placed = node.map_or(String::new(), |n| format!("  nodeName: node-{n}\n"));
    format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {app}}}}}
spec:
{placed}{extra_spec}  containers:
    - name: netexec
      image: registry.k8s.io/e2e-test-images/agnhost:2.53
      args: [netexec, --http-port=8080]
      readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}
"
    )
}

/// A busybox pod labelled `app: client` that only waits (on node-`node`, when given): a
/// client to run commands in.
pub fn client_pod(name: &str, node: Option<u32>) -> String {
    let placed = node.map_or(String::new(), |n| format!("  nodeName: node-{n}\n"));
    format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: client}}}}
spec:
{placed}  containers: [{{name: shell, image: busybox, command: [sleep, infinity]}}]
"
    )
}

pub fn kubectl_binary() -> PathBuf {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv/bin/kubectl"));
    assert!(
        path.exists(),
        "{} is missing: `cargo xtask prereqs` installs kubectl",
        path.display()
    );
    path
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A lab name of this test run that no other lab of it uses (stale ones are swept by pid).
pub fn fresh_name() -> String {
    format!("t{}x{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst))
}

/// Takes down labs of earlier test runs that died without cleaning up.
fn remove_stale_labs() {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|n| n.strip_prefix("svl-t"))
        .filter_map(|rest| rest.split('-').next())
        .filter(|lab| {
            let pid = lab.split('x').next().unwrap_or("");
            !pid.is_empty() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        })
        .map(|lab| format!("t{lab}"))
        .collect();
    names.dedup();
    for name in names {
        let _ = Command::new(SVCNET).args(["lab", "down", "--name", &name]).output();
    }
}

/// Which control plane and node proxy a lab runs (`lab up --control-plane`, `--proxy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlPlane {
    Svcnet,
    /// Upstream's binaries, which `cargo xtask upstream` builds (`cargo xtask test` does first).
    Upstream,
    /// Upstream's control plane with upstream's kube-proxy on every node instead of ours.
    UpstreamWithKubeProxy,
}

impl ControlPlane {
    fn args(self) -> Vec<String> {
        match self {
            ControlPlane::Svcnet => vec![],
            ControlPlane::UpstreamWithKubeProxy => {
                let mut args = ControlPlane::Upstream.args();
                args.extend(["--proxy".into(), "kube-proxy".into()]);
                args
            }
            ControlPlane::Upstream => {
                let bin = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/upstream/bin"));
                assert!(
                    bin.join("kube-apiserver").exists(),
                    "upstream's binaries are not in {}: `cargo xtask upstream` builds them (`cargo xtask test` does)",
                    bin.display()
                );
                vec![
                    "--control-plane".into(),
                    "upstream".into(),
                    "--upstream-bin".into(),
                    bin.to_string_lossy().into_owned(),
                ]
            }
        }
    }
}

pub struct Lab {
    pub name: String,
    pub kubeconfig: PathBuf,
}

impl Lab {
    pub fn up(nodes: usize) -> Self {
        Self::up_with(nodes, &[]).0
    }

    pub fn up_on(nodes: usize, control_plane: ControlPlane) -> Self {
        Self::up_with_path_on(nodes, &[], None, control_plane).0
    }

    /// A directory standing in for `$PATH` with every program on it except `without`
    /// (symbolic links, removed with the directory).
    pub fn path_without(without: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let path = std::env::var("PATH").unwrap_or_default();
        for entry in std::env::split_paths(&path)
            .filter_map(|d| std::fs::read_dir(d).ok())
            .flatten()
            .flatten()
        {
            let name = entry.file_name();
            let link = dir.path().join(&name);
            if without.iter().any(|w| name == *w) || link.exists() {
                continue;
            }
            let _ = std::os::unix::fs::symlink(entry.path(), link);
        }
        dir
    }

    /// `lab up` with extra arguments; also returns what it printed.
    pub fn up_with(nodes: usize, extra: &[&str]) -> (Self, String) {
        Self::up_with_path(nodes, extra, None)
    }

    /// `up_with`, the lab's processes finding programs on `path` instead of `$PATH`.
    pub fn up_with_path(nodes: usize, extra: &[&str], path: Option<&std::path::Path>) -> (Self, String) {
        Self::up_with_path_on(nodes, extra, path, ControlPlane::Svcnet)
    }

    /// `up_with_path` on `control_plane`.
    pub fn up_with_path_on(
        nodes: usize,
        extra: &[&str],
        path: Option<&std::path::Path>,
        control_plane: ControlPlane,
    ) -> (Self, String) {
        assert!(rustix_is_root(), "lab tests need root (network namespaces, nftables)");
        remove_stale_labs();
        let name = fresh_name();
        let kubeconfig = match control_plane {
            ControlPlane::Svcnet => format!("/run/svcnet-lab/{name}/apiserver/kubeconfig"),
            ControlPlane::Upstream | ControlPlane::UpstreamWithKubeProxy => {
                format!("/run/svcnet-lab/{name}/upstream/kubeconfig")
            }
        };
        let lab = Lab {
            kubeconfig: PathBuf::from(kubeconfig),
            name,
        };
        let mut up = Command::new(SVCNET);
        up.args(["lab", "up", "--name", &lab.name, "--nodes", &nodes.to_string()])
            .args(extra)
            .args(control_plane.args());
        if let Some(path) = path {
            up.env("PATH", path);
        }
        let out = up.output().unwrap();
        assert!(out.status.success(), "lab up failed:\n{}", text(&out));
        (lab, text(&out))
    }

    /// The environment kubectl gets for this lab: its kubeconfig, and a discovery cache of its
    /// own (kubectl's shared cache is keyed by address and port, which labs and test servers
    /// reuse, so another server's API list could be taken for this one's).
    pub fn kubectl_env(&self) -> [(&'static str, PathBuf); 2] {
        [
            ("KUBECONFIG", self.kubeconfig.clone()),
            ("KUBECACHEDIR", self.kubeconfig.with_file_name("kubectl-cache")),
        ]
    }

    pub fn kubectl(&self, args: &[&str]) -> (bool, String) {
        // bounded: a kubectl waiting on something that never happens fails the test instead
        // of hanging it
        let out = Command::new("timeout")
            .arg("120")
            .arg(kubectl_binary())
            .envs(self.kubectl_env())
            .args(args)
            .output()
            .unwrap();
        (out.status.success(), text(&out))
    }

    /// kubectl against this lab, bounded to 60 s, for a test to add arguments and stdin to.
    pub fn kubectl_command(&self) -> Command {
        let mut command = Command::new("timeout");
        command.arg("60").arg(kubectl_binary()).envs(self.kubectl_env());
        command
    }

    /// `kubectl proxy` on a free loopback port for at most `seconds`; returns the process
    /// (end it with [`stop`]) and the port it serves on.
    pub fn kubectl_proxy(&self, seconds: u32) -> (std::process::Child, u16) {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new("timeout")
            .arg(seconds.to_string())
            .arg(kubectl_binary())
            .envs(self.kubectl_env())
            .args(["proxy", "--port=0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "Starting to serve on 127.0.0.1:PORT"
        let port = line.trim().rsplit(':').next().and_then(|p| p.parse().ok());
        (child, port.unwrap_or_else(|| panic!("kubectl proxy said {line:?}")))
    }

    /// kubectl in the background for at most `seconds` (end it early with [`stop`]), its
    /// output piped.
    pub fn kubectl_background(&self, seconds: u32, args: &[&str]) -> std::process::Child {
        Command::new("timeout")
            .arg(seconds.to_string())
            .arg(kubectl_binary())
            .envs(self.kubectl_env())
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    }

    /// kubectl that must succeed; returns its output.
    pub fn k(&self, args: &[&str]) -> String {
        let (ok, out) = self.kubectl(args);
        assert!(ok, "kubectl {args:?} failed:\n{out}");
        out
    }

    pub fn apply(&self, manifest: &str) {
        let path = std::env::temp_dir().join(format!("{}-{}.yaml", self.name, NEXT.fetch_add(1, Ordering::SeqCst)));
        std::fs::write(&path, manifest).unwrap();
        self.k(&["apply", "-f", path.to_str().unwrap()]);
        let _ = std::fs::remove_file(path);
    }

    fn lab_command(&self, prefix: &[&str], command: &[&str]) -> String {
        let out = Command::new(SVCNET)
            .args(["lab"])
            .args(prefix)
            .args(["--name", &self.name, "--"])
            .args(command)
            .output()
            .unwrap();
        text(&out).trim().to_owned()
    }

    /// `svcnet agnhost client ARGS` from a pod.
    pub fn ask_from_pod(&self, pod: &str, args: &[&str]) -> String {
        let mut command = vec![SVCNET, "agnhost", "client"];
        command.extend_from_slice(args);
        self.lab_command(&["exec", pod], &command)
    }

    /// `svcnet agnhost client ARGS` from the external host.
    pub fn ask_from_outside(&self, args: &[&str]) -> String {
        let mut command = vec![SVCNET, "agnhost", "client"];
        command.extend_from_slice(args);
        self.lab_command(&["external"], &command)
    }

    /// A jsonpath query on one object.
    pub fn get(&self, what: &[&str], jsonpath: &str) -> String {
        let mut args = vec!["get"];
        args.extend_from_slice(what);
        let expr = format!("jsonpath={jsonpath}");
        args.extend(["-o", &expr]);
        self.k(&args)
    }

    pub fn wait_ready_pods(&self, selector: &str, want: usize) {
        let jsonpath = r#"{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}"#;
        wait_for(
            &format!("{want} ready pods with {selector}"),
            Duration::from_secs(60),
            || {
                let out = self.get(&["pods", "-l", selector], jsonpath);
                (out.lines().filter(|l| *l == "True").count() == want).then_some(())
            },
        );
    }

    /// What `svcnet lab status` prints.
    pub fn lab_status(&self) -> String {
        let out = Command::new(SVCNET)
            .args(["lab", "status", "--name", &self.name])
            .output()
            .unwrap();
        assert!(out.status.success(), "lab status failed:\n{}", text(&out));
        text(&out)
    }

    pub fn state_dir(&self) -> PathBuf {
        PathBuf::from(format!("/run/svcnet-lab/{}", self.name))
    }

    pub fn down(&self) -> String {
        let out = Command::new(SVCNET)
            .args(["lab", "down", "--name", &self.name])
            .output()
            .unwrap();
        assert!(out.status.success(), "lab down failed:\n{}", text(&out));
        text(&out)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // what the cluster looked like when the test failed, for whoever reads the log
            let (_, pods) = self.kubectl(&["get", "pods", "-A", "-o", "wide"]);
            let log = std::fs::read_to_string(self.state_dir().join("lab.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- lab {} at the failure ---\n{pods}", self.name);
            eprintln!("--- the end of its lab.log ---");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
        let _ = Command::new(SVCNET)
            .args(["lab", "down", "--name", &self.name])
            .output();
    }
}

fn rustix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next().map(|u| u == "0"))
        .unwrap_or(false)
}

/// Polls `check` until it gives a value or `timeout` passes (then fails naming `what`).
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The distinct answers among `lines`.
pub fn distinct(lines: &str) -> std::collections::BTreeSet<String> {
    lines.lines().map(str::to_owned).collect()
}

/// Stops a process started under `timeout` and waits for it: SIGTERM, which `timeout` passes
/// on to its command (SIGKILL would orphan the command instead).
pub fn stop(mut child: std::process::Child) {
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
}
