//! Network namespaces owned by one run (a test, a benchmark, a lab): created under a unique
//! per-run prefix, removed with every process started in them when dropped (also on failure
//! or panic). Namespaces an earlier run of the same kind left behind, whose process is gone,
//! are removed at start. Nothing is ever added to the caller's own namespace.
//! [`enter`] moves a thread into a namespace (for probes, dialers and benchmarks).

use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Moves the calling thread into the named network namespace (`ip netns` names). Only for
/// threads of their own: sockets it then creates, and processes it starts, live there.
pub fn enter(name: &str) -> std::io::Result<()> {
    use std::os::fd::AsFd;
    let ns = std::fs::File::open(format!("/var/run/netns/{name}"))?;
    rustix::thread::move_into_link_name_space(ns.as_fd(), Some(rustix::thread::LinkNameSpaceType::Network))?;
    Ok(())
}

/// Fails with a clear message unless running as root with `ip`, `nft` and `conntrack`.
pub fn require_root_tools() {
    let uid = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("Uid:")
                .map(|v| v.split_whitespace().next().unwrap().to_owned())
        })
        .unwrap();
    assert_eq!(
        uid, "0",
        "dataplane system tests need root (network namespaces, nftables)"
    );
    for tool in ["ip", "nft", "conntrack"] {
        let ok = Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
            || Command::new(tool).arg("-V").output().is_ok_and(|o| o.status.success());
        assert!(
            ok,
            "dataplane system tests need `{tool}`; `cargo xtask prereqs` installs it"
        );
    }
}

fn remove_stale(kind: &str) {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix(kind) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or("");
        let alive = std::path::Path::new(&format!("/proc/{pid}")).exists();
        if !alive {
            kill_processes_in(name);
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

fn kill_processes_in(ns: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
    }
}

pub struct Namespaces {
    prefix: String,
    created: Vec<String>,
    children: Vec<Child>,
}

impl Namespaces {
    /// `kind` starts every name (e.g. `svt-` for tests, `svb-` for benchmarks); then come
    /// this process's id and a counter, so runs never collide.
    pub fn new(kind: &str) -> Self {
        require_root_tools();
        remove_stale(kind);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        Namespaces {
            prefix: format!("{kind}{}-{n}-", std::process::id()),
            created: Vec::new(),
            children: Vec::new(),
        }
    }

    /// Creates a namespace (loopback up) and returns its full name.
    pub fn add(&mut self, short: &str) -> String {
        let name = format!("{}{short}", self.prefix);
        run(&["ip", "netns", "add", &name]);
        self.created.push(name.clone());
        self.exec_ok(&name, &["ip", "link", "set", "lo", "up"]);
        // no duplicate-address detection: addresses here are unique by construction, and
        // tentative addresses would stall IPv6 for the first seconds
        self.exec_ok(
            &name,
            &[
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
            ],
        );
        name
    }

    /// Runs a command inside a namespace.
    pub fn exec(&self, ns: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .output()
            .expect("running ip netns exec")
    }

    /// Runs a command inside a namespace and insists it succeeds.
    pub fn exec_ok(&self, ns: &str, args: &[&str]) -> String {
        let out = self.exec(ns, args);
        assert!(
            out.status.success(),
            "in {ns}: {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts a background process inside a namespace; it is killed on drop.
    pub fn spawn(&mut self, ns: &str, args: &[&str]) {
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning in namespace");
        self.children.push(child);
    }

    /// A veth pair between two namespaces.
    pub fn veth(&self, a_ns: &str, a_if: &str, b_ns: &str, b_if: &str) {
        run(&[
            "ip", "link", "add", a_if, "netns", a_ns, "type", "veth", "peer", "name", b_if, "netns", b_ns,
        ]);
        self.exec_ok(a_ns, &["ip", "link", "set", a_if, "up"]);
        self.exec_ok(b_ns, &["ip", "link", "set", b_if, "up"]);
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in self.created.iter().rev() {
            kill_processes_in(ns);
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("running command");
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
