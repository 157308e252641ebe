//! Running `ip` (and friends) for the lab, with errors that say which command failed and why.

use std::process::Command;

use anyhow::{Context, Result, bail};

/// Runs a command and returns its standard output; a non-zero exit is an error carrying the
/// command line and its standard error.
pub fn run(args: &[&str]) -> Result<String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .with_context(|| format!("running {}", args[0]))?;
    if !out.status.success() {
        bail!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Sets a net sysctl (`net.ipv4.ip_forward=1`) inside a network namespace: written to
/// `/proc/sys` by a thread that entered it (net sysctls belong to the writer's namespace).
pub fn sysctl_in(netns: &str, setting: &str) -> Result<()> {
    let (key, value) = setting.split_once('=').context("a sysctl is key=value")?;
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    std::thread::scope(|s| {
        s.spawn(|| -> Result<()> {
            crate::netns::enter(netns).with_context(|| format!("entering {netns}"))?;
            std::fs::write(&path, value).with_context(|| format!("in {netns}: setting {setting}"))
        })
        .join()
        .unwrap_or_else(|_| bail!("sysctl thread panicked"))
    })
}

/// Checks that nf_tables answers inside a network namespace (over netlink, as the node
/// agents will use it), so a missing kernel module is named at once.
pub fn check_nftables_in(netns: &str) -> Result<()> {
    use svcnet_dataplane::netlink::{consts::NFT_MSG_GETTABLE, socket::NfSocket};
    let mut socket = NfSocket::open(Some(&std::path::Path::new("/run/netns").join(netns)))
        .with_context(|| format!("opening a netlink socket in {netns}"))?;
    socket
        .dump(NFT_MSG_GETTABLE, 0, &|_| {})
        .with_context(|| format!("listing nftables tables in {netns}"))?;
    Ok(())
}

/// Runs a command inside a network namespace.
pub fn run_in(netns: &str, args: &[&str]) -> Result<String> {
    let mut full = vec!["ip", "netns", "exec", netns];
    full.extend_from_slice(args);
    run(&full)
}

/// The network namespaces whose names start with `prefix`.
pub fn namespaces_with_prefix(prefix: &str) -> Vec<String> {
    let Ok(out) = run(&["ip", "netns", "list"]) else {
        return Vec::new();
    };
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

/// Kills every process in a namespace, then deletes it. Errors are ignored: this is cleanup.
pub fn remove_namespace(netns: &str) {
    if let Ok(pids) = run(&["ip", "netns", "pids", netns]) {
        for pid in pids.split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
    }
    let _ = run(&["ip", "netns", "del", netns]);
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Fails with what to do unless the tools the lab runs are installed.
pub fn require_tools() -> Result<()> {
    // nftables and conntrack are reached over netlink; only `ip` builds the topology
    let missing: Vec<&str> = ["ip"]
        .into_iter()
        .filter(|tool| {
            !Command::new(tool).arg("-V").output().is_ok_and(|o| o.status.success())
                && !Command::new(tool)
                    .arg("--version")
                    .output()
                    .is_ok_and(|o| o.status.success())
        })
        .collect();
    if !missing.is_empty() {
        bail!(
            "the lab needs {} (Debian package iproute2); `cargo xtask prereqs` installs it",
            missing.join(", ")
        );
    }
    Ok(())
}
