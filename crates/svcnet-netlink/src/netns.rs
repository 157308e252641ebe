//! Network namespaces owned by one run (a test, a benchmark, a lab): created under a unique
//! per-run prefix, removed with every process started in them when dropped (also on failure
//! or panic). Namespaces an earlier run of the same kind left behind, whose process is gone,
//! are removed at start. Nothing is ever added to the caller's own namespace.
//! [`enter`] moves a thread into a namespace (for probes, dialers and benchmarks).
//!
//! Namespaces are named as `ip netns` names them (a file under `/run/netns` that keeps the
//! namespace alive), and [`create`], [`delete`], [`list`], [`pids`] and [`spawn_in`] do what
//! `ip netns add|del|list|pids|exec` do, without the program.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Where named namespaces are kept.
pub const NETNS_DIR: &str = "/run/netns";

fn path_of(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Runs `f` on a thread of its own inside the named namespace (which it leaves by ending).
pub fn in_netns<T: Send>(name: &str, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    crate::socket::in_netns(&path_of(name), f)
}

/// Creates a named network namespace, as `ip netns add` does: a new namespace, kept alive by
/// a bind mount of it on `/run/netns/NAME`.
pub fn create(name: &str) -> io::Result<()> {
    std::fs::create_dir_all(NETNS_DIR)?;
    make_dir_a_shared_mount()?;
    let path = path_of(name);
    std::fs::OpenOptions::new().write(true).create_new(true).open(&path)?;
    let made = std::thread::scope(|s| {
        s.spawn(|| -> io::Result<()> {
            // a new network namespace for this thread only; no other state is unshared
            #[allow(deprecated)]
            rustix::thread::unshare(rustix::thread::UnshareFlags::NEWNET)?;
            rustix::mount::mount_bind("/proc/thread-self/ns/net", &path)?;
            Ok(())
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("namespace thread panicked")))
    });
    if made.is_err() {
        let _ = std::fs::remove_file(&path);
    }
    made
}

/// Makes `/run/netns` a shared mount of its own, as `ip netns add` does before its first
/// namespace, while it holds no namespace. Otherwise the first `ip netns add` after ours binds
/// the directory over itself: our mounts are copied above and stay below, where deleting by
/// path cannot reach them, and the namespaces could never be removed.
fn make_dir_a_shared_mount() -> io::Result<()> {
    use rustix::mount::{MountPropagationFlags, mount_bind_recursive, mount_change};
    let shared = MountPropagationFlags::SHARED | MountPropagationFlags::REC;
    match mount_change(NETNS_DIR, shared) {
        Ok(()) => Ok(()),
        // not a mount point yet; make it one only while it is empty (else leave it as it is)
        Err(rustix::io::Errno::INVAL) if std::fs::read_dir(NETNS_DIR)?.next().is_none() => {
            mount_bind_recursive(NETNS_DIR, NETNS_DIR)?;
            Ok(mount_change(NETNS_DIR, shared)?)
        }
        Err(rustix::io::Errno::INVAL) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Deletes a named namespace (it lives on while processes or sockets still use it).
pub fn delete(name: &str) -> io::Result<()> {
    let path = path_of(name);
    rustix::mount::unmount(&path, rustix::mount::UnmountFlags::DETACH)?;
    std::fs::remove_file(&path)
}

/// The named namespaces.
pub fn list() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// The processes inside a named namespace.
pub fn pids(name: &str) -> Vec<i32> {
    let Ok(ns) = std::fs::metadata(path_of(name)) else {
        return Vec::new();
    };
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}/ns/net")).is_ok_and(|m| m.dev() == ns.dev() && m.ino() == ns.ino())
        })
        .collect()
}

/// Writes a sysctl (`net/ipv4/ip_forward`, under `/proc/sys`) inside a named namespace.
pub fn set_sysctl(name: &str, key: &str, value: &str) -> io::Result<()> {
    in_netns(name, || std::fs::write(Path::new("/proc/sys").join(key), value))
}

/// Kills every process inside a named namespace.
pub fn kill_all_in(name: &str) {
    for pid in pids(name) {
        if let Some(pid) = rustix::process::Pid::from_raw(pid) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}

/// Starts `command` inside a named namespace (as `ip netns exec` does): it is spawned from a
/// thread that entered the namespace, and a child is born where its parent thread is.
pub fn spawn_in(name: &str, command: &mut Command) -> io::Result<Child> {
    in_netns(name, || command.spawn())
}

/// `spawn_in` for tokio's processes; call it from inside a runtime.
pub fn spawn_async_in(name: &str, command: &mut tokio::process::Command) -> io::Result<tokio::process::Child> {
    let runtime = tokio::runtime::Handle::current();
    in_netns(name, || {
        let _inside = runtime.enter();
        command.spawn()
    })
}

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
    // the text backend and its conntrack cleaner run these; netlink needs neither
    for tool in ["nft", "conntrack"] {
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
    for name in list() {
        let Some(rest) = name.strip_prefix(kind) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or("");
        let alive = std::path::Path::new(&format!("/proc/{pid}")).exists();
        if !alive {
            kill_all_in(&name);
            let _ = delete(&name);
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
        create(&name).unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        self.created.push(name.clone());
        crate::rtnl::Rtnl::open_in(&name)
            .and_then(|mut r| r.set_up("lo"))
            .unwrap_or_else(|e| panic!("in {name}: {e}"));
        // no duplicate-address detection: addresses here are unique by construction, and
        // tentative addresses would stall IPv6 for the first seconds
        for key in ["all", "default"] {
            set_sysctl(&name, &format!("net/ipv6/conf/{key}/accept_dad"), "0")
                .unwrap_or_else(|e| panic!("in {name}: {e}"));
        }
        name
    }

    /// Runs a command inside a namespace.
    pub fn exec(&self, ns: &str, args: &[&str]) -> Output {
        let (program, rest) = args.split_first().expect("a command");
        in_netns(ns, || Command::new(program).args(rest).output())
            .unwrap_or_else(|e| panic!("running {program} in {ns}: {e}"))
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
        let (program, rest) = args.split_first().expect("a command");
        let mut command = Command::new(program);
        command
            .args(rest)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = spawn_in(ns, &mut command).unwrap_or_else(|e| panic!("spawning {program} in {ns}: {e}"));
        self.children.push(child);
    }

    /// A bridge `name`, up, in `ns`.
    pub fn bridge(&self, ns: &str, name: &str) {
        let made = crate::rtnl::Rtnl::open_in(ns).and_then(|mut r| {
            r.add_bridge(name)?;
            r.set_up(name)
        });
        made.unwrap_or_else(|e| panic!("bridge {name} in {ns}: {e}"));
    }

    /// Puts `port` (up) on the bridge `bridge` in `ns`.
    pub fn enslave(&self, ns: &str, port: &str, bridge: &str) {
        let made = crate::rtnl::Rtnl::open_in(ns).and_then(|mut r| {
            r.set_master(port, bridge)?;
            r.set_up(port)
        });
        made.unwrap_or_else(|e| panic!("{port} onto {bridge} in {ns}: {e}"));
    }

    /// `address` (`IP/PREFIX`) on `dev` in `ns`.
    pub fn address(&self, ns: &str, dev: &str, address: &str) {
        let net: ipnet::IpNet = address.parse().unwrap_or_else(|e| panic!("{address}: {e}"));
        crate::rtnl::Rtnl::open_in(ns)
            .and_then(|mut r| r.add_address(dev, net))
            .unwrap_or_else(|e| panic!("address {address} on {dev} in {ns}: {e}"));
    }

    /// A route in `ns` to `dst` (`default`, a prefix or an address) through `via` and/or on
    /// `dev`.
    pub fn route(&self, ns: &str, dst: &str, via: Option<&str>, dev: Option<&str>) {
        let via: Option<std::net::IpAddr> = via.map(|v| v.parse().unwrap_or_else(|e| panic!("{v}: {e}")));
        let dst: ipnet::IpNet = match dst {
            "default" if via.is_some_and(|v| v.is_ipv6()) => "::/0".parse().expect("a prefix"),
            "default" => "0.0.0.0/0".parse().expect("a prefix"),
            d if d.contains('/') => d.parse().unwrap_or_else(|e| panic!("{d}: {e}")),
            d => ipnet::IpNet::from(d.parse::<std::net::IpAddr>().unwrap_or_else(|e| panic!("{d}: {e}"))),
        };
        crate::rtnl::Rtnl::open_in(ns)
            .and_then(|mut r| r.add_route(dst, via, dev))
            .unwrap_or_else(|e| panic!("route {dst} in {ns}: {e}"));
    }

    /// Every address in `prefix` is local to `ns` (see [`crate::rtnl::Rtnl::add_local_route`]).
    pub fn local_route(&self, ns: &str, prefix: &str) {
        let net: ipnet::IpNet = prefix.parse().unwrap_or_else(|e| panic!("{prefix}: {e}"));
        crate::rtnl::Rtnl::open_in(ns)
            .and_then(|mut r| r.add_local_route(net, "lo"))
            .unwrap_or_else(|e| panic!("local route {prefix} in {ns}: {e}"));
    }

    /// Sets `key` (dotted, `net.ipv4.ip_forward`) to `value` inside `ns`.
    pub fn sysctl(&self, ns: &str, key: &str, value: &str) {
        set_sysctl(ns, &key.replace('.', "/"), value).unwrap_or_else(|e| panic!("{key}={value} in {ns}: {e}"));
    }

    /// A veth pair between two namespaces.
    pub fn veth(&self, a_ns: &str, a_if: &str, b_ns: &str, b_if: &str) {
        let made = (|| -> io::Result<()> {
            let mut a = crate::rtnl::Rtnl::open_in(a_ns)?;
            a.add_veth(a_if, b_if, b_ns)?;
            a.set_up(a_if)?;
            crate::rtnl::Rtnl::open_in(b_ns)?.set_up(b_if)
        })();
        made.unwrap_or_else(|e| panic!("veth {a_ns}/{a_if} - {b_ns}/{b_if}: {e}"));
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in self.created.iter().rev() {
            kill_all_in(ns);
            let _ = delete(ns);
        }
    }
}
