//! A container's root filesystem: the host's, seen through an overlay whose writable layer is
//! the container's own (a tmpfs in its mount namespace, gone when the container ends), with
//! fresh `/tmp` and `/run`, the host's `/dev` and `/sys`, the pod's volumes bound at their
//! mount paths and the pod's `/etc/resolv.conf` and `/etc/hosts` bound over the host's.
//!
//! So a container may write anywhere (as its user may) without changing the host, and mount
//! paths that do not exist on the host are created in its own layer. Paths inside the new
//! root are resolved after `pivot_root`, so a symbolic link in it (`/var/run` → `/run`) can
//! never lead a mount or a directory onto the host's tree.
//!
//! [`build`] runs in the container's first sandbox stage, as root, in a fresh private mount
//! namespace. A container's directory (`<sandbox>/containers/<name>`) holds its plan
//! ([`MOUNTS_FILE`]) and, while it runs, [`ROOT_PID_FILE`]: the PID of the process holding
//! that mount namespace, which `kubectl exec` joins.

use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// The plan of a container's volume mounts, in its directory.
pub const MOUNTS_FILE: &str = "mounts.json";
/// The PID (host's view) of the process holding a running container's mount namespace.
pub const ROOT_PID_FILE: &str = "root.pid";
/// Where the host's tree stays reachable while the new root is furnished.
const HOST: &str = "/.svcnet-host";
/// The largest the container's writable layer may grow.
const LAYER_SIZE: &std::ffi::CStr = c"size=1g";

/// One volume mount of a container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeMount {
    /// On the host: the volume's directory (or a file or directory under it, for a subPath).
    pub source: PathBuf,
    /// Absolute path in the container.
    pub target: String,
    pub read_only: bool,
}

/// A container's directory in its pod's sandbox directory.
pub fn container_dir(sandbox: &Path, container: &str) -> PathBuf {
    sandbox.join("containers").join(container)
}

/// Prepares `dir` (a container's directory) for a start with `mounts`: private to root, the
/// plan written, no PID of an earlier run left.
pub fn prepare(dir: &Path, mounts: &[VolumeMount]) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir.join("layer"))?;
    let _ = std::fs::remove_file(dir.join(ROOT_PID_FILE));
    let plan = serde_json::to_vec(mounts)?;
    svcnet_apiserver::credentials::write_file(&dir.join(MOUNTS_FILE), &plan, 0o600)?;
    Ok(())
}

/// The host's mount points to carry into a container's root: every one but `/` and those the
/// container gets otherwise (`/proc`, `/dev`, `/sys` whole; fresh `/tmp`, `/run`), parents
/// first. `mountinfo` is `/proc/self/mountinfo`.
pub fn carried_mounts(mountinfo: &str) -> Vec<String> {
    const OWN: [&str; 5] = ["/proc", "/dev", "/sys", "/tmp", "/run"];
    let mut out: Vec<String> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mount_path)
        .filter(|p| p != "/" && !OWN.iter().any(|own| Path::new(p).starts_with(own)))
        .collect();
    out.dedup();
    out
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mount_path(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `path` is absolute and names no `..`: a mount path the new root may hold.
pub fn is_clean_absolute(path: &str) -> bool {
    let p = Path::new(path);
    p.is_absolute()
        && p.components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

/// Builds the container's root from the plan in `dir` and enters it (`pivot_root`); the
/// pod's files (`bound`: file in the sandbox directory → path in the container) are bound
/// over the host's. Writes [`ROOT_PID_FILE`]; returns the container directory, opened, to
/// remove it by when the container ends.
pub fn build(dir: &Path, bound: &[(PathBuf, &str)], workdir: &str) -> Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    use rustix::mount::{MountFlags, mount, mount_bind, mount_bind_recursive};
    let mounts: Vec<VolumeMount> = match std::fs::read(dir.join(MOUNTS_FILE)) {
        Ok(bytes) => serde_json::from_slice(&bytes).context("reading the container's mounts")?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).context("reading the container's mounts"),
    };
    let dir_fd = rustix::fs::open(dir, OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .context("opening the container's directory")?;
    let carried = carried_mounts(&std::fs::read_to_string("/proc/self/mountinfo")?);
    // the writable layer: a tmpfs only this mount namespace sees
    let layer = dir.join("layer");
    mount(
        "tmpfs",
        &layer,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        Some(LAYER_SIZE),
    )
    .context("the container's writable layer")?;
    let (upper, work, root) = (layer.join("upper"), layer.join("work"), layer.join("root"));
    for d in [&upper, &work, &root] {
        std::fs::create_dir(d)?;
    }
    let options = format!("lowerdir=/,upperdir={},workdir={}", upper.display(), work.display());
    let options = std::ffi::CString::new(options).context("the layer's path")?;
    mount(
        "overlay",
        &root,
        "overlay",
        MountFlags::empty(),
        Some(options.as_c_str()),
    )
    .context("the container's root (overlay over the host's)")?;
    let inside = |p: &str| root.join(p.trim_start_matches('/'));
    for whole in ["/dev", "/sys"] {
        mount_bind_recursive(whole, inside(whole)).with_context(|| format!("binding {whole}"))?;
    }
    for point in &carried {
        // a host mount the container cannot use is left out, not fatal
        if let Err(e) = mount_bind(point, inside(point)) {
            tracing::debug!(mount = %point, error = %e, "host mount not carried into the container");
        }
    }
    mount(
        "tmpfs",
        inside("/tmp"),
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        Some(c"mode=1777"),
    )
    .context("the container's /tmp")?;
    mount(
        "tmpfs",
        inside("/run"),
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        Some(c"mode=0755"),
    )
    .context("the container's /run")?;
    std::fs::create_dir_all(inside(HOST))?;
    rustix::process::pivot_root(&root, inside(HOST)).context("entering the container's root")?;
    rustix::process::chdir("/")?;
    let host = |p: &Path| Path::new(HOST).join(p.strip_prefix("/").unwrap_or(p));
    for m in &mounts {
        if !is_clean_absolute(&m.target) {
            bail!("mount path {:?} must be absolute and without '..'", m.target);
        }
        let source = host(&m.source);
        bind_onto(&source, Path::new(&m.target), m.read_only)
            .with_context(|| format!("mounting {} at {}", m.source.display(), m.target))?;
    }
    for (file, target) in bound {
        bind_onto(&host(file), Path::new(target), false).with_context(|| format!("binding {target}"))?;
    }
    rustix::mount::unmount(HOST, rustix::mount::UnmountFlags::DETACH).context("leaving the host's tree")?;
    std::fs::remove_dir(HOST)?;
    if !is_clean_absolute(workdir) {
        bail!("working directory {workdir:?} must be absolute and without '..'");
    }
    // as container runtimes do, a missing working directory is made
    std::fs::create_dir_all(workdir).with_context(|| format!("the working directory {workdir}"))?;
    rustix::process::chdir(workdir)?;
    let pid = rustix::fs::openat(
        &dir_fd,
        ROOT_PID_FILE,
        OFlags::CREATE | OFlags::WRONLY | OFlags::TRUNC | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    rustix::io::write(&pid, std::process::id().to_string().as_bytes())?;
    Ok(dir_fd)
}

/// Binds `source` (a file or directory) at `target` in the current root, making the target
/// (and its parents) where missing or of the other type: a file for a file, a directory for
/// a directory. `read_only` remounts the bind read-only.
fn bind_onto(source: &Path, target: &Path, read_only: bool) -> Result<()> {
    use rustix::mount::{MountFlags, mount_bind, mount_remount};
    let is_dir = std::fs::metadata(source)
        .with_context(|| format!("{} is missing", source.display()))?
        .is_dir();
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() == is_dir && !m.file_type().is_symlink() => {}
        Ok(m) => {
            // a link (say /etc/resolv.conf → a resolver's file) or the other type: replaced
            // in the container's own layer, never followed
            if m.is_dir() {
                std::fs::remove_dir_all(target)?;
            } else {
                std::fs::remove_file(target)?;
            }
            make_point(target, is_dir)?;
        }
        Err(_) => make_point(target, is_dir)?,
    }
    mount_bind(source, target)?;
    if read_only {
        mount_remount(target, MountFlags::BIND | MountFlags::RDONLY, "")?;
    }
    Ok(())
}

fn make_point(target: &Path, is_dir: bool) -> std::io::Result<()> {
    if is_dir {
        std::fs::create_dir(target)
    } else {
        std::fs::File::create(target).map(drop)
    }
}

/// The PID holding running container `dir`'s mount namespace, checked to be that container's
/// first sandbox stage (not a process that took a stale PID's number).
pub fn running_root(dir: &Path) -> Result<u32> {
    let pid: u32 = std::fs::read_to_string(dir.join(ROOT_PID_FILE))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .context("the container is not running")?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let words: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let dir_bytes = dir.as_os_str().as_encoded_bytes();
    if !words
        .windows(2)
        .any(|w| w[0] == b"--container-dir" && w[1] == dir_bytes)
    {
        bail!("the container is not running");
    }
    Ok(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
23 22 0:21 / /proc rw shared:2 - proc proc rw
24 22 0:22 / /sys rw shared:3 - sysfs sysfs rw
25 24 0:23 / /sys/fs/cgroup rw - tmpfs tmpfs rw
26 22 0:5 / /dev rw - devtmpfs devtmpfs rw
27 22 0:30 / /home rw - ext4 /dev/vdb rw
28 27 0:31 / /home/a\\040b rw - tmpfs tmpfs rw
29 22 0:32 / /run rw - tmpfs tmpfs rw
30 29 0:4 net:[4026532] /run/netns/x rw - nsfs nsfs rw
31 22 0:33 / /tmp rw - tmpfs tmpfs rw
32 22 0:34 / /runner rw - tmpfs tmpfs rw
";

    #[test]
    fn host_mounts_carried_are_those_the_container_gets_no_other_way() {
        assert_eq!(carried_mounts(MOUNTINFO), ["/home", "/home/a b", "/runner"]);
    }

    #[test]
    fn mount_paths_must_be_absolute_and_stay_inside() {
        assert!(is_clean_absolute("/etc/config"));
        assert!(is_clean_absolute("/"));
        assert!(!is_clean_absolute("etc/config"));
        assert!(!is_clean_absolute("/data/../../etc"));
    }

    #[test]
    fn a_plan_round_trips_and_a_start_forgets_the_last_pid() {
        let dir = std::env::temp_dir().join(format!("svcnet-rootfs-{}", std::process::id()));
        let mounts = vec![VolumeMount {
            source: "/run/x/volumes/cache".into(),
            target: "/cache".into(),
            read_only: false,
        }];
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(ROOT_PID_FILE), "1").unwrap();
        prepare(&dir, &mounts).unwrap();
        assert!(!dir.join(ROOT_PID_FILE).exists());
        let read: Vec<VolumeMount> = serde_json::from_slice(&std::fs::read(dir.join(MOUNTS_FILE)).unwrap()).unwrap();
        assert_eq!(read, mounts);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(dir.join("layer")).unwrap().permissions().mode() & 0o777,
            0o700
        );
        // no such process holds it
        assert!(running_root(&dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
