//! Namespaces, sysctls and commands for the lab (natively, no `ip`), with errors that say
//! what failed and why.

use std::process::Command;

use anyhow::{Context, Result, bail};

/// Runs a command and returns its standard output; a non-zero exit is an error carrying the
/// command line and its standard error.
pub fn run(args: &[&str]) -> Result<String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .with_context(|| format!("running {}", args[0]))?;
    checked(&args.join(" "), out)
}

/// The standard output of a finished command, or an error naming it with its standard error.
fn checked(what: &str, out: std::process::Output) -> Result<String> {
    if !out.status.success() {
        bail!("`{what}` failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Sets a net sysctl (`net.ipv4.ip_forward=1`) inside a network namespace: written to
/// `/proc/sys` by a thread that entered it (net sysctls belong to the writer's namespace).
pub fn sysctl_in(netns: &str, setting: &str) -> Result<()> {
    let (key, value) = setting.split_once('=').context("a sysctl is key=value")?;
    crate::netns::set_sysctl(netns, &key.replace('.', "/"), value)
        .with_context(|| format!("in {netns}: setting {setting}"))
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

/// Runs a command inside a network namespace and returns its standard output; a non-zero
/// exit is an error carrying the command line and its standard error.
pub fn run_in(netns: &str, args: &[&str]) -> Result<String> {
    let mut command = Command::new(args[0]);
    command
        .args(&args[1..])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child =
        crate::netns::spawn_in(netns, &mut command).with_context(|| format!("running {} in {netns}", args[0]))?;
    checked(&format!("{} (in {netns})", args.join(" ")), child.wait_with_output()?)
}

/// Creates a named network namespace.
pub fn add_namespace(netns: &str) -> Result<()> {
    crate::netns::create(netns).with_context(|| format!("creating network namespace {netns}"))
}

/// The network namespaces whose names start with `prefix`.
pub fn namespaces_with_prefix(prefix: &str) -> Vec<String> {
    crate::netns::list()
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// Kills every process in a namespace, then deletes it; says whether it is gone (a failure is
/// logged with its reason: this is cleanup, it goes on).
pub fn remove_namespace(netns: &str) -> bool {
    crate::netns::kill_all_in(netns);
    match crate::netns::delete(netns) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(netns, error = %e, "cannot remove the network namespace");
            false
        }
    }
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}
