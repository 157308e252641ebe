//! What a pod's processes see beyond their network namespace.
//!
//! Each pod has PID, IPC and UTS namespaces of its own, held by its init: `svcnet lab
//! sandbox-init` (started by the kubelet with the pod) enters new ones, sets the pod's
//! hostname and starts `svcnet lab sandbox-reaper` as PID 1 of the pod, which reaps orphans
//! until the kubelet ends the pod (then every process left in the pod goes with it). Its PID
//! is in the sandbox directory ([`INIT_PID_FILE`]). As with upstream's `shareProcessNamespace:
//! true`, the pod's containers see each other's processes.
//!
//! Every container starts through `svcnet lab sandbox ARGS -- COMMAND`: as root it joins the
//! pod's namespaces, enters a mount namespace of its own holding the container's root
//! filesystem (see [`rootfs`]: the host's under a private writable layer, with the pod's
//! volumes, `/etc/resolv.conf` and `/etc/hosts`), then starts `svcnet lab sandbox-exec`,
//! which (inside the pod's PID namespace) mounts a `/proc` of the pod's processes only,
//! becomes the container's user and runs COMMAND. The first stage waits for it, passes on the
//! signals it gets and exits as it did. `kubectl exec` and `lab exec` join a running
//! container's mount namespace instead ([`Entry::Join`]). Not isolated: what the host's
//! files let the container's user read, cgroups and resources.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::rootfs;

/// The file in a pod's sandbox directory holding its init's PID (in the host's namespace).
pub const INIT_PID_FILE: &str = "init.pid";

/// The files bound over the host's, inside a pod's sandbox directory.
pub const BOUND_FILES: [(&str, &str); 2] = [("resolv.conf", "/etc/resolv.conf"), ("hosts", "/etc/hosts")];

/// How one process is to be sandboxed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Isolation {
    /// The pod's sandbox directory, holding [`BOUND_FILES`] and the containers' directories.
    pub dir: PathBuf,
    /// The container the process belongs to.
    pub container: String,
    /// Whether it starts the container (a new root) or joins the running one (`exec`).
    pub entry: Entry,
    pub uid: u32,
    pub gid: u32,
    /// The working directory in the container.
    pub workdir: String,
}

/// How a sandboxed process meets its container's root filesystem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// The container's own process: builds the container's root ([`rootfs::build`]).
    Start,
    /// Another process in a running container (`kubectl exec`): joins its mount namespace.
    Join,
}

impl Isolation {
    /// `svcnet lab sandbox …  -- argv`: the command line that runs `argv` isolated.
    pub fn wrap(&self, exe: &str, argv: &[String]) -> Vec<String> {
        let mut out = vec![
            exe.to_owned(),
            "lab".into(),
            "sandbox".into(),
            "--dir".into(),
            self.dir.to_string_lossy().into_owned(),
            "--container-dir".into(),
            rootfs::container_dir(&self.dir, &self.container)
                .to_string_lossy()
                .into_owned(),
            "--workdir".into(),
            self.workdir.clone(),
            "--uid".into(),
            self.uid.to_string(),
            "--gid".into(),
            self.gid.to_string(),
        ];
        if self.entry == Entry::Join {
            out.push("--join".into());
        }
        out.push("--".into());
        out.extend(argv.iter().cloned());
        out
    }

    /// [`Isolation::wrap`] for a command whose standard streams are a terminal: it becomes a
    /// session leader with that terminal as its controlling terminal.
    pub fn wrap_on_terminal(&self, exe: &str, argv: &[String]) -> Vec<String> {
        let mut out = self.wrap(exe, argv);
        let separator = out.iter().position(|a| a == "--").expect("wrap adds a separator");
        out.insert(separator, "--tty".into());
        out
    }
}

/// `svcnet lab sandbox-init …`: the command line of a pod's init, which holds its PID, IPC
/// and UTS namespaces (with the pod's `hostname`).
pub fn init_command(exe: &str, hostname: &str, dir: &Path) -> Vec<String> {
    vec![
        exe.to_owned(),
        "lab".into(),
        "sandbox-init".into(),
        "--hostname".into(),
        hostname.to_owned(),
        "--dir".into(),
        dir.to_string_lossy().into_owned(),
    ]
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

/// What `svcnet lab sandbox` is asked to run.
pub struct Sandboxed<'a> {
    /// The pod's sandbox directory and the container's directory in it.
    pub dir: &'a Path,
    pub container_dir: &'a Path,
    pub workdir: &'a str,
    pub uid: u32,
    pub gid: u32,
    pub tty: bool,
    pub entry: Entry,
    pub argv: &'a [OsString],
}

/// `svcnet lab sandbox`: into the pod's namespaces (those of the init whose PID
/// [`INIT_PID_FILE`] in the sandbox directory holds), then into the container's root: a new
/// one ([`rootfs::build`]) or the running container's; then the command through `svcnet lab
/// sandbox-exec` as its user. Returns the exit status to leave with. Must run
/// single-threaded (namespace changes are per thread on Linux).
pub fn enter(run: &Sandboxed) -> Result<i32> {
    use rustix::mount::{MountPropagationFlags, mount_change};
    use rustix::thread::{LinkNameSpaceType, UnshareFlags, move_into_link_name_space};
    if run.argv.is_empty() {
        bail!("lab sandbox: no command given");
    }
    let init = std::fs::read_to_string(run.dir.join(INIT_PID_FILE)).with_context(|| {
        format!(
            "the pod's init ({}) is not running",
            run.dir.join(INIT_PID_FILE).display()
        )
    })?;
    let init = init.trim();
    // every namespace opened before any is entered: /proc is read in the host's
    let open = |pid: &str, kind: &str| {
        std::fs::File::open(format!("/proc/{pid}/ns/{kind}")).with_context(|| format!("the pod's {kind} namespace"))
    };
    let (ipc, uts, pid) = (open(init, "ipc")?, open(init, "uts")?, open(init, "pid")?);
    // read while the host's tree is still in view
    let mut env = super::mounting::saved_env(run.container_dir);
    if env.is_empty() {
        env = super::environment::base("", run.uid, false);
    }
    let container_mounts = match run.entry {
        Entry::Join => {
            let holder = rootfs::running_root(run.container_dir)?;
            Some(open(&holder.to_string(), "mnt")?)
        }
        Entry::Start => None,
    };
    // this program, found before the root changes (it is the host's path to it)
    let exe = std::env::current_exe().context("this program's path")?;
    move_into_link_name_space(
        std::os::fd::AsFd::as_fd(&ipc),
        Some(LinkNameSpaceType::InterProcessCommunication),
    )
    .context("joining the pod's IPC namespace")?;
    move_into_link_name_space(
        std::os::fd::AsFd::as_fd(&uts),
        Some(LinkNameSpaceType::HostNameAndNISDomainName),
    )
    .context("joining the pod's UTS namespace")?;
    move_into_link_name_space(std::os::fd::AsFd::as_fd(&pid), Some(LinkNameSpaceType::ProcessID))
        .context("joining the pod's PID namespace")?;
    let container_dir_fd = match container_mounts {
        Some(mounts) => {
            // the container's root and its /proc come with its mount namespace
            move_into_link_name_space(std::os::fd::AsFd::as_fd(&mounts), Some(LinkNameSpaceType::Mount))
                .context("joining the container's mount namespace")?;
            rustix::process::chdir(run.workdir).with_context(|| format!("the working directory {}", run.workdir))?;
            None
        }
        None => {
            // a mount namespace of its own (FILES, the flag that makes this call unsafe, is
            // not asked)
            #[allow(deprecated)]
            rustix::thread::unshare(UnshareFlags::NEWNS).context("a new mount namespace")?;
            // nothing mounted here may reach the host's mount namespace
            mount_change("/", MountPropagationFlags::REC | MountPropagationFlags::PRIVATE)
                .context("making the mounts private")?;
            let bound: Vec<(PathBuf, &str)> = BOUND_FILES
                .iter()
                .map(|(file, target)| (run.dir.join(file), *target))
                .collect();
            Some(rootfs::build(run.container_dir, &bound, run.workdir)?)
        }
    };
    let (uid, gid, tty, argv) = (run.uid, run.gid, run.tty, run.argv);
    // the command starts in the pod's PID namespace; this process waits for it
    let mut second = std::process::Command::new(exe);
    second.args([
        "lab",
        "sandbox-exec",
        "--uid",
        &uid.to_string(),
        "--gid",
        &gid.to_string(),
    ]);
    if tty {
        second.arg("--tty");
    }
    if run.entry == Entry::Join {
        second.arg("--join");
        // what joins a container gets its environment, as a runtime's exec does
        second.env_clear().envs(env.iter().map(|(k, v)| (k, v)));
        if tty {
            second.env("TERM", "xterm");
        }
    }
    second.arg("--").args(argv);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut child = tokio::process::Command::from(second)
            .spawn()
            .context("starting the command")?;
        let pid = child.id().and_then(|p| rustix::process::Pid::from_raw(p as i32));
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        let mut quit = signal(SignalKind::quit())?;
        loop {
            let forward = tokio::select! {
                status = child.wait() => {
                    let status = status?;
                    use std::os::unix::process::ExitStatusExt;
                    if let Some(dir) = &container_dir_fd {
                        // the container ends: `exec` may not join what is left of it
                        let _ = rustix::fs::unlinkat(dir, rootfs::ROOT_PID_FILE, rustix::fs::AtFlags::empty());
                    }
                    return Ok(status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(9)));
                }
                _ = term.recv() => rustix::process::Signal::TERM,
                _ = int.recv() => rustix::process::Signal::INT,
                _ = hup.recv() => rustix::process::Signal::HUP,
                _ = quit.recv() => rustix::process::Signal::QUIT,
            };
            if let Some(pid) = pid {
                let _ = rustix::process::kill_process(pid, forward);
            }
        }
    })
}

/// `svcnet lab sandbox-exec`, inside the pod's PID namespace: dies with its parent, mounts the
/// pod's `/proc`, takes its terminal (with `tty`), becomes `uid`/`gid` and execs `argv`;
/// returns only on failure.
pub fn exec_in_pod(uid: u32, gid: u32, tty: bool, join: bool, argv: &[OsString]) -> Result<()> {
    use rustix::mount::{MountFlags, mount};
    use rustix::thread::{Gid, Uid};
    let Some((program, args)) = argv.split_first() else {
        bail!("lab sandbox-exec: no command given");
    };
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        .context("dying with the sandbox")?;
    if !join {
        mount(
            "proc",
            "/proc",
            "proc",
            MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
            None,
        )
        .context("mounting the pod's /proc")?;
    }
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

/// `svcnet lab sandbox-init`: new PID, IPC and UTS namespaces for a pod, its `hostname`, and
/// `svcnet lab sandbox-reaper` as the pod's PID 1, whose PID goes to [`INIT_PID_FILE`] in
/// `dir`; waits for it (it ends when this process is killed). Single-threaded.
pub fn init_pod(hostname: &str, dir: &Path) -> Result<()> {
    use rustix::thread::UnshareFlags;
    #[allow(deprecated)]
    rustix::thread::unshare(UnshareFlags::NEWPID | UnshareFlags::NEWIPC | UnshareFlags::NEWUTS)
        .context("new PID, IPC and UTS namespaces")?;
    rustix::system::sethostname(hostname.as_bytes()).context("setting the hostname")?;
    let exe = std::env::current_exe().context("this program's path")?;
    let mut reaper = std::process::Command::new(exe)
        .args(["lab", "sandbox-reaper"])
        .stdin(std::process::Stdio::null())
        .spawn()
        .context("starting the pod's init")?;
    let path = dir.join(INIT_PID_FILE);
    svcnet_apiserver::credentials::write_file(&path, reaper.id().to_string().as_bytes(), 0o644)
        .with_context(|| format!("writing {}", path.display()))?;
    let _ = reaper.wait();
    Ok(())
}

/// `svcnet lab sandbox-reaper`: the pod's PID 1, which reaps the orphans of the pod (PID 1
/// inherits them) and dies with the init that started it.
pub fn reap() -> Result<()> {
    use rustix::process::{WaitOptions, wait};
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        .context("dying with the pod's init")?;
    loop {
        match wait(WaitOptions::empty()) {
            Ok(_) => {}
            // no child yet: orphans come when processes of the pod leave theirs
            Err(_) => std::thread::sleep(std::time::Duration::from_secs(1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wrapped_command_carries_everything_after_a_separator() {
        let mut iso = Isolation {
            dir: "/run/svcnet-lab/x/sandboxes/u1".into(),
            container: "web".into(),
            entry: Entry::Start,
            uid: 65534,
            gid: 65534,
            workdir: "/".into(),
        };
        let argv = iso.wrap("/bin/svcnet", &["sh".into(), "-c".into(), "--uid 0".into()]);
        let sep = argv.iter().position(|a| a == "--").unwrap();
        assert_eq!(&argv[sep + 1..], ["sh", "-c", "--uid 0"]);
        assert_eq!(&argv[..3], ["/bin/svcnet", "lab", "sandbox"]);
        assert!(argv.windows(2).any(|w| w == ["--uid", "65534"]));
        assert!(
            argv.windows(2)
                .any(|w| w == ["--container-dir", "/run/svcnet-lab/x/sandboxes/u1/containers/web"])
        );
        assert!(!argv[..sep].contains(&"--join".to_owned()));
        iso.entry = Entry::Join;
        let joined = iso.wrap_on_terminal("/bin/svcnet", &["sh".into()]);
        let sep = joined.iter().position(|a| a == "--").unwrap();
        assert!(joined[..sep].contains(&"--join".to_owned()) && joined[..sep].contains(&"--tty".to_owned()));
    }
}
