//! `cargo xtask upstream`: builds upstream's etcd, kube-apiserver, kube-controller-manager and
//! kube-proxy from their published Go modules (pinned in `upstream/go.mod` and `go.sum`), and
//! CoreDNS (pinned apart, in `upstream/coredns/`), into `target/upstream/bin`, with the Go module and build caches under `target/upstream` too,
//! and beside them `openapi-v2-proto` (ours, in `upstream/`), which encodes an OpenAPI v2
//! document with gnostic as kube-apiserver does, for the API server's tests.
//! Nothing of upstream is vendored or committed. A build is reused while the pinned versions
//! (`go.sum`) are unchanged; the first one takes minutes on two cores.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The packages built, and the name each binary gets.
const COMMANDS: &[(&str, &str)] = &[
    ("go.etcd.io/etcd/server/v3", "etcd"),
    ("k8s.io/kubernetes/cmd/kube-apiserver", "kube-apiserver"),
    (
        "k8s.io/kubernetes/cmd/kube-controller-manager",
        "kube-controller-manager",
    ),
    ("k8s.io/kubernetes/cmd/kube-proxy", "kube-proxy"),
    // ours: gnostic's encoding of an OpenAPI v2 document, the oracle for the API server's
    ("./openapi-v2-proto", "openapi-v2-proto"),
];

/// CoreDNS, built in its own module (`upstream/coredns`).
const COREDNS: (&str, &str) = ("github.com/coredns/coredns", "coredns");

/// Files of ours the build also depends on.
const SOURCES: &[&str] = &["go.sum", "openapi-v2-proto/main.go", "coredns/go.sum"];

/// A stable tag for the pinned versions and our sources (FNV-1a of [`SOURCES`]).
fn pins_tag(module: &Path) -> Result<String> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for source in SOURCES {
        let path = module.join(source);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        for b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    Ok(format!("{h:016x}"))
}

/// The source directory of Go module `path` at the version `upstream/go.mod` pins it to,
/// downloaded into the module cache under `target/upstream` when it is not there yet.
pub fn module_source(path: &str) -> Result<PathBuf> {
    let root = std::env::current_dir()?;
    let module = root.join("upstream");
    let go_mod = std::fs::read_to_string(module.join("go.mod")).context("reading upstream/go.mod")?;
    // a staging module is pinned by a replace line, the others by a require line
    let replace = format!("{path} => {path} ");
    let require = format!("{path} ");
    let version = go_mod
        .lines()
        .find_map(|l| l.trim().strip_prefix(&replace))
        .or_else(|| go_mod.lines().find_map(|l| l.trim().strip_prefix(&require)))
        .map(str::trim)
        .and_then(|v| v.split_whitespace().next())
        .with_context(|| format!("upstream/go.mod pins no version of {path}"))?;
    let output = Command::new("go")
        .args(["mod", "download", "-json", &format!("{path}@{version}")])
        .current_dir(&module)
        .env("GOMODCACHE", root.join("target/upstream/gomod"))
        .env("GOFLAGS", "-mod=readonly")
        .output()
        .context("running go (the Go toolchain reads upstream's API types)")?;
    if !output.status.success() {
        bail!(
            "go mod download {path}@{version} failed: {}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
    let info: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    info["Dir"]
        .as_str()
        .map(PathBuf::from)
        .with_context(|| format!("go mod download {path}@{version} named no directory"))
}

/// Builds (or reuses) the upstream binaries; returns their directory.
pub fn build() -> Result<PathBuf> {
    let root = std::env::current_dir()?;
    let module = root.join("upstream");
    let work = root.join("target/upstream");
    let bin = work.join("bin");
    let stamp = bin.join(".pins");
    let tag = pins_tag(&module)?;
    let built = COMMANDS
        .iter()
        .chain([&COREDNS])
        .all(|(_, name)| bin.join(name).exists());
    if built && std::fs::read_to_string(&stamp).is_ok_and(|t| t == tag) {
        eprintln!("xtask: upstream binaries in {} are current", bin.display());
        return Ok(bin);
    }
    std::fs::create_dir_all(&bin)?;
    let go = |dir: &Path, args: &[&str]| -> Result<()> {
        eprintln!("xtask: go {}", args.join(" "));
        let status = Command::new("go")
            .args(args)
            .current_dir(dir)
            .env("GOMODCACHE", work.join("gomod"))
            .env("GOCACHE", work.join("gocache"))
            .env("GOFLAGS", "-mod=readonly")
            .status()
            .context("running go (the Go toolchain is needed for the upstream binaries)")?;
        if !status.success() {
            bail!("go {} failed: {status}", args.join(" "));
        }
        Ok(())
    };
    let out = format!("{}/", bin.display());
    let mut args = vec!["build", "-o", out.as_str()];
    args.extend(COMMANDS.iter().map(|(package, _)| *package));
    go(&module, &args)?;
    go(&module.join("coredns"), &["build", "-o", out.as_str(), COREDNS.0])?;
    // a package path ending in a major version names its binary after the element before it
    let etcd = bin.join("server");
    if etcd.exists() {
        std::fs::rename(&etcd, bin.join("etcd"))?;
    }
    for (_, name) in COMMANDS.iter().chain([&COREDNS]) {
        if !bin.join(name).exists() {
            bail!("go build made no {name} in {}", bin.display());
        }
    }
    std::fs::write(&stamp, tag)?;
    // the build cache (about 12 GB) only speeds up a rebuild, which a pin change alone asks for
    go(&module, &["clean", "-cache"])?;
    eprintln!("xtask: upstream binaries built in {}", bin.display());
    Ok(bin)
}
