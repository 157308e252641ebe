//! What a pod's processes see beyond their network namespace: their own mount, UTS (the pod's
//! hostname) and IPC namespaces, the pod's own `/etc/resolv.conf` and `/etc/hosts` bound over
//! the host's, and their user. The kubelet (and `lab exec`) start every container through
//! `svcnet lab sandbox ARGS -- COMMAND`, which sets this up as root and then becomes the
//! container's user and runs COMMAND. Not isolated: the filesystem otherwise (read-only to
//! an unprivileged user where the host's permissions say so), PIDs, cgroups and resources.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The files bound over the host's, inside a pod's sandbox directory.
pub const BOUND_FILES: [(&str, &str); 2] = [("resolv.conf", "/etc/resolv.conf"), ("hosts", "/etc/hosts")];

/// How one process is to be sandboxed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Isolation {
    /// The pod's hostname (its name, unless `spec.hostname` says otherwise).
    pub hostname: String,
    /// The pod's sandbox directory, holding [`BOUND_FILES`].
    pub dir: PathBuf,
    pub uid: u32,
    pub gid: u32,
}

impl Isolation {
    /// `svcnet lab sandbox …  -- argv`: the command line that runs `argv` isolated.
    pub fn wrap(&self, exe: &str, argv: &[String]) -> Vec<String> {
        let mut out = vec![
            exe.to_owned(),
            "lab".into(),
            "sandbox".into(),
            "--hostname".into(),
            self.hostname.clone(),
            "--dir".into(),
            self.dir.to_string_lossy().into_owned(),
            "--uid".into(),
            self.uid.to_string(),
            "--gid".into(),
            self.gid.to_string(),
            "--".into(),
        ];
        out.extend(argv.iter().cloned());
        out
    }
}

impl Isolation {
    /// [`Isolation::wrap`] for a command whose standard streams are a terminal: it becomes a
    /// session leader with that terminal as its controlling terminal.
    pub fn wrap_on_terminal(&self, exe: &str, argv: &[String]) -> Vec<String> {
        let mut out = self.wrap(exe, argv);
        let separator = out.iter().position(|a| a == "--").expect("wrap adds a separator");
        out.insert(separator, "--tty".into());
        out
    }
}

/// A new pseudo-terminal: (master, slave). The slave goes to the command as its stdin,
/// stdout and stderr; the master is what the caller reads and writes.
pub fn open_terminal() -> std::io::Result<(std::fs::File, std::fs::File)> {
    use rustix::fs::{Mode, OFlags};
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let name = ptsname(&master, Vec::new())?;
    let slave = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok((std::fs::File::from(master), std::fs::File::from(slave)))
}

/// A pod's sandbox directory: `<state>/sandboxes/<uid>`.
pub fn sandbox_dir(state: &Path, pod_uid: &str) -> PathBuf {
    state.join("sandboxes").join(pod_uid)
}

/// Writes the pod's files (readable by its user, whoever that is).
pub fn write_files(dir: &Path, resolv_conf: &str, hosts: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    for (file, text) in [("resolv.conf", resolv_conf), ("hosts", hosts)] {
        let path = dir.join(file);
        std::fs::write(&path, text)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
    }
    Ok(())
}

/// `svcnet lab sandbox`: enters new mount, UTS and IPC namespaces, binds the pod's files,
/// sets the hostname, drops to `uid`/`gid` and execs `argv`; returns only on failure. Must run
/// single-threaded (user and group changes are per thread on Linux).
pub fn enter_and_exec(hostname: &str, dir: &Path, uid: u32, gid: u32, tty: bool, argv: &[OsString]) -> Result<()> {
    use rustix::mount::{MountPropagationFlags, mount_bind, mount_change};
    use rustix::thread::{Gid, Uid, UnshareFlags};
    let Some((program, args)) = argv.split_first() else {
        bail!("lab sandbox: no command given");
    };
    // mount, UTS and IPC only: the network namespace is the pod's already, and FILES (the
    // flag that makes this call unsafe) is not among them
    #[allow(deprecated)]
    rustix::thread::unshare(UnshareFlags::NEWNS | UnshareFlags::NEWUTS | UnshareFlags::NEWIPC)
        .context("new mount, UTS and IPC namespaces")?;
    // nothing mounted here may reach the host's mount namespace
    mount_change("/", MountPropagationFlags::REC | MountPropagationFlags::PRIVATE)
        .context("making the mounts private")?;
    for (file, target) in BOUND_FILES {
        let source = dir.join(file);
        mount_bind(&source, target).with_context(|| format!("binding {} over {target}", source.display()))?;
    }
    rustix::system::sethostname(hostname.as_bytes()).context("setting the hostname")?;
    if tty {
        // a session of its own, with its stdin (the terminal) as the controlling terminal
        rustix::process::setsid().context("a new session")?;
        rustix::process::ioctl_tiocsctty(std::io::stdin()).context("taking the terminal")?;
    }
    if uid != 0 || gid != 0 {
        rustix::thread::set_thread_groups(&[]).context("dropping supplementary groups")?;
        rustix::thread::set_thread_gid(Gid::from_raw(gid)).context("setting the group")?;
        rustix::thread::set_thread_uid(Uid::from_raw(uid)).context("setting the user")?;
    }
    let error = std::process::Command::new(program).args(args).exec();
    Err(error).with_context(|| format!("running {}", program.to_string_lossy()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wrapped_command_carries_everything_after_a_separator() {
        let iso = Isolation {
            hostname: "web-0".into(),
            dir: "/run/svcnet-lab/x/sandboxes/u1".into(),
            uid: 65534,
            gid: 65534,
        };
        let argv = iso.wrap("/bin/svcnet", &["sh".into(), "-c".into(), "--uid 0".into()]);
        let sep = argv.iter().position(|a| a == "--").unwrap();
        assert_eq!(&argv[sep + 1..], ["sh", "-c", "--uid 0"]);
        assert_eq!(&argv[..3], ["/bin/svcnet", "lab", "sandbox"]);
        assert!(argv.windows(2).any(|w| w == ["--uid", "65534"]));
    }
}
