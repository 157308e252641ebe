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
    let missing: Vec<&str> = ["ip", "nft", "conntrack"]
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
            "the lab needs {} (Debian packages iproute2, nftables, conntrack); `cargo xtask prereqs` installs them",
            missing.join(", ")
        );
    }
    Ok(())
}
