//! The `svcnet lab` verbs: `up`, `down`, `status`, `exec`, `external` and `node`.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::ListParams;

use super::control_plane::{self, ControlPlane};
use super::daemon::{self, DaemonOptions, Ready, client_for, read_ready};
use super::plan::{LabPlan, check_name, state_dir};
use super::shell::is_root;
use super::{demo, supervisor, topology};
use clap::ValueEnum;

fn pid_path(state: &Path) -> std::path::PathBuf {
    state.join("pid")
}

/// The daemon's pid, if it is still running.
fn running_daemon(state: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pid_path(state)).ok()?.trim().parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let cmdline = String::from_utf8_lossy(&cmdline);
    (cmdline.contains("lab") && cmdline.contains("daemon")).then_some(pid)
}

fn require_root() -> Result<()> {
    if !is_root() {
        bail!("the lab needs root: it creates network namespaces and nftables rules (run it with sudo)");
    }
    Ok(())
}

fn log_tail(state: &Path) -> String {
    let log = std::fs::read_to_string(state.join("lab.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

pub struct UpOptions {
    pub name: String,
    pub nodes: usize,
    /// The nodes' zones, in turn (none: no zone labels).
    pub zones: Vec<String>,
    pub ip_family: super::plan::IpFamily,
    pub demo: bool,
    pub daemon: DaemonOptions,
}

/// Holds the exclusive right to start lab `name` (a lock file beside its state directory),
/// so two `lab up` of one name at the same moment cannot clean up each other's lab: the
/// second is told the name is taken. Released when dropped (the lock goes with the file
/// descriptor, also when the process dies).
struct StartLock {
    _file: std::fs::File,
}

/// Beside the lab's state directory, so it outlives a `down` that removes the directory.
fn lock_path(name: &str) -> std::path::PathBuf {
    let state = state_dir(name);
    state.with_file_name(format!("{name}.lock"))
}

impl StartLock {
    fn take(name: &str) -> Result<Self> {
        let state = state_dir(name);
        let parent = state.parent().context("the lab state directory has a parent")?;
        std::fs::create_dir_all(parent)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(lock_path(name))?;
        if rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            bail!("lab {name:?} is being started by another `svcnet lab up`; the name is taken");
        }
        Ok(StartLock { _file: file })
    }

    /// Removes lab `name`'s lock file unless an `up` holds it.
    fn remove_if_free(name: &str) {
        if let Ok(lock) = Self::take(name) {
            let _ = std::fs::remove_file(lock_path(name));
            drop(lock);
        }
    }
}

/// Kills the processes a crashed daemon of this lab left running: node agents and upstream's
/// control plane (their pid files are in `state`).
fn kill_leftovers(state: &Path) {
    supervisor::kill_leftovers(&supervisor::pid_dir(state), state);
    supervisor::kill_leftovers(&control_plane::upstream::pid_dir(state), state);
}

/// Fails with a clear message when the API server's address cannot be bound.
fn check_api_address(api: SocketAddr) -> Result<()> {
    match std::net::TcpListener::bind(api) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            bail!("the API server's address {api} is in use: pick another with --api-listen")
        }
        Err(e) => Err(e).with_context(|| format!("cannot listen on {api} for the API server")),
    }
}

/// Starts the daemon, waits until the cluster is ready, and deploys the demo if asked.
pub fn up(opts: &UpOptions) -> Result<ExitCode> {
    let plan = LabPlan::new(&opts.name, opts.nodes)?
        .with_zones(&opts.zones)?
        .with_ip_family(opts.ip_family);
    require_root()?;
    let _starting = StartLock::take(&opts.name)?;
    let state = state_dir(&opts.name);
    if running_daemon(&state).is_some() {
        bail!(
            "lab {:?} is already up; `svcnet lab status --name {0}` shows it, `svcnet lab down --name {0}` removes it",
            opts.name
        );
    }
    check_api_address(opts.daemon.api)?;
    if opts.daemon.proxy == supervisor::NodeProxy::KubeProxy {
        let kube_proxy = opts.daemon.upstream_bin.join("kube-proxy");
        if !kube_proxy.exists() {
            bail!(
                "{} is missing: build upstream's binaries with `cargo xtask upstream`, or name their directory with --upstream-bin",
                kube_proxy.display()
            );
        }
    }
    // a crashed lab of the same name leaves namespaces and files behind
    kill_leftovers(&state);
    let stale = topology::remove_all(&opts.name);
    if stale > 0 {
        eprintln!("removed {stale} namespaces a previous lab {:?} left behind", opts.name);
    }
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state).with_context(|| format!("creating {}", state.display()))?;
    let log = std::fs::File::create(state.join("lab.log"))?;
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "lab",
            "daemon",
            "--name",
            &opts.name,
            "--nodes",
            &opts.nodes.to_string(),
        ])
        .args(["--api-listen", &opts.daemon.api.to_string()])
        .args([
            "--ip-family",
            opts.ip_family.to_possible_value().expect("named").get_name(),
        ])
        .args(if opts.zones.is_empty() {
            vec![]
        } else {
            vec!["--zones".to_owned(), opts.zones.join(",")]
        })
        .args([
            "--control-plane",
            opts.daemon.control_plane.to_possible_value().expect("named").get_name(),
        ])
        .arg("--upstream-bin")
        .arg(&opts.daemon.upstream_bin)
        .args([
            "--proxy",
            opts.daemon.proxy.to_possible_value().expect("named").get_name(),
        ])
        .args(if opts.daemon.cluster_dns {
            None
        } else {
            Some("--no-dns")
        })
        .args(if opts.daemon.nodeport_addresses.is_empty() {
            vec![]
        } else {
            let cidrs: Vec<String> = opts.daemon.nodeport_addresses.iter().map(ToString::to_string).collect();
            vec!["--nodeport-addresses".to_owned(), cidrs.join(",")]
        })
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("starting the lab daemon")?;
    std::fs::write(pid_path(&state), child.id().to_string())?;
    // upstream's API server takes a while to bootstrap
    let patience = match opts.daemon.control_plane {
        ControlPlane::Svcnet => Duration::from_secs(60),
        ControlPlane::Upstream => Duration::from_secs(180),
    };
    let deadline = Instant::now() + patience;
    let ready = loop {
        if let Some(r) = read_ready(&state) {
            break r;
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "the lab daemon exited ({status}) before the lab was up:\n{}",
                log_tail(&state)
            );
        }
        if Instant::now() > deadline {
            bail!("the lab was not up within {patience:?}:\n{}", log_tail(&state));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    println!(
        "lab {:?} is up: {} nodes, API server {}",
        plan.name,
        plan.nodes.len(),
        ready.api_server
    );
    println!("  export KUBECONFIG={}", ready.kubeconfig.display());
    // kubectl caches discovery per address and port; a lab's port may have served another
    // API server (an earlier lab, the other control plane) whose kinds kubectl would remember
    println!(
        "  export KUBECACHEDIR={}",
        ready.kubeconfig.with_file_name("kubectl-cache").display()
    );
    for node in &plan.nodes {
        let zone = node.zone.as_ref().map(|z| format!("zone {z}; ")).unwrap_or_default();
        let (ips, pods) = match &node.ipv6 {
            Some(v6) => (
                format!("{} {}", node.ip, v6.ip),
                format!("{} {}", node.pod_cidr, v6.pod_cidr),
            ),
            None => (node.ip.to_string(), node.pod_cidr.to_string()),
        };
        println!("  {}: {ips} ({zone}pods {pods}; namespace {})", node.name, node.netns);
    }
    println!(
        "  external host: {}{} (namespace {})",
        plan.external_ip,
        plan.external_ipv6.map(|v6| format!(" {v6}")).unwrap_or_default(),
        plan.external_netns
    );
    if opts.demo {
        run_demo(&ready)?;
    }
    println!("\nremove it all with: {}", lab_command(&plan.name).verb("down"));
    Ok(ExitCode::SUCCESS)
}

/// How to call this binary's lab commands from the user's shell: `svcnet` if that is us on
/// the PATH, else our path (relative to the working directory when inside it), plus the lab
/// name unless it is the default.
pub fn lab_command(name: &str) -> demo::LabCommand {
    let exe = std::env::current_exe().unwrap_or_default();
    let on_path = super::shell::run(&["sh", "-c", "command -v svcnet"])
        .ok()
        .and_then(|p| std::fs::canonicalize(p.trim()).ok())
        .is_some_and(|p| std::fs::canonicalize(&exe).is_ok_and(|e| e == p));
    let program = if on_path {
        "svcnet".to_owned()
    } else {
        let cwd = std::env::current_dir().unwrap_or_default();
        exe.strip_prefix(&cwd).unwrap_or(&exe).display().to_string()
    };
    demo::LabCommand {
        program,
        name_flag: if name == DEFAULT_NAME {
            String::new()
        } else {
            format!(" --name {name}")
        },
    }
}

/// The lab name commands use when none is given.
pub const DEFAULT_NAME: &str = "lab";

fn run_demo(ready: &Ready) -> Result<()> {
    let cli = lab_command(&ready.plan.name);
    let runtime = tokio::runtime::Runtime::new()?;
    let (cluster_ip, lb_ip, client_ns) = runtime.block_on(async {
        let client = client_for(&ready.kubeconfig).await?;
        demo::deploy(&client).await?;
        let ip = demo::wait_ready(&client, Duration::from_secs(60)).await?;
        let lb_ip = demo::wait_load_balancer(&client, Duration::from_secs(20)).await?;
        let pod = Api::<Pod>::namespaced(client, "default").get("client").await?;
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let client_pod = demo::DemoClient {
            netns: ready.plan.pod_netns(&uid),
            isolation: as_root_in_first_container(&state_dir(&ready.plan.name), &pod),
        };
        anyhow::Ok((ip, lb_ip, client_pod))
    })?;
    println!(
        "\ndemo deployed: deployment demo (3 agnhost netexec pods) behind three services: demo (ClusterIP {cluster_ip}:80, TCP and UDP), demo-nodeport (NodePort {} on every node) and demo-lb (LoadBalancer {lb_ip}:80); plus pod client",
        demo::NODE_PORT
    );
    println!("\nwhat each path answers (with /hostname, the pod that served it):");
    let mut failed = Vec::new();
    for (what, command, answer) in demo::check(ready, &client_ns, &cluster_ip, &lb_ip, &cli) {
        let must_fail = what.contains("must fail");
        let ok = answer.starts_with("ERROR") == must_fail;
        println!("  {what}: {answer}\n      try: {command}");
        if !ok {
            failed.push(what);
        }
    }
    let (exec, external) = (cli.verb("exec"), cli.verb("external"));
    println!("\nmore to try (kubectl: .venv/bin/kubectl, which `cargo xtask demo` installs, or your own):");
    println!("  kubectl get nodes,pods,svc,endpointslices -o wide");
    println!("  kubectl exec client -- curl -s http://demo/hostname   # kubectl exec, and a Service by its DNS name");
    println!("  {exec} client -- curl -s http://demo/clientip   # by name: the client pod's own address");
    println!("  {exec} client -- cat /etc/resolv.conf   # the cluster DNS (kube-system/kube-dns) and search path");
    println!(
        "  {external} -- curl -s http://{}:{}/clientip   # the node's address: outside clients are masqueraded",
        ready.plan.nodes[0].ip,
        demo::NODE_PORT
    );
    println!(
        "  ip netns exec {} nft list table ip svcnet   # the rules on node-1",
        ready.plan.nodes[0].netns
    );
    println!("  kubectl scale deployment demo --replicas=5; kubectl get endpointslices -w   # endpoints follow");
    println!("  kubectl describe service demo-lb   # which node announces the LoadBalancer address");
    println!(
        "  {} node-1 --ip 10.240.0.61; {external} -- curl -s http://10.240.0.61:{}/hostname   # a node's address changes: its NodePorts follow",
        cli.verb("node"),
        demo::NODE_PORT
    );
    if !failed.is_empty() {
        bail!("demo checks failed: {}", failed.join(", "));
    }
    Ok(())
}

/// Stops the daemon (SIGTERM, then SIGKILL after 20 s) and removes everything of the lab.
pub fn down(name: &str) -> Result<ExitCode> {
    check_name(name)?;
    require_root()?;
    let state = state_dir(name);
    if let Some(pid) = running_daemon(&state) {
        let pid = rustix::process::Pid::from_raw(pid).context("pid")?;
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while running_daemon(&state).is_some() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        if running_daemon(&state).is_some() {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
    kill_leftovers(&state);
    let removed = topology::remove_all(name);
    let _ = std::fs::remove_dir_all(&state);
    StartLock::remove_if_free(name);
    let stuck = super::shell::namespaces_with_prefix(&super::plan::netns_prefix(name));
    if !stuck.is_empty() {
        bail!(
            "lab {name:?} is stopped but these network namespaces could not be removed (see the warnings above): {}",
            stuck.join(" ")
        );
    }
    println!("lab {name:?} is down ({removed} leftover namespaces removed)");
    Ok(ExitCode::SUCCESS)
}

/// A running lab's description, or why there is none.
pub fn ready_lab(name: &str) -> Result<Ready> {
    check_name(name)?;
    let state = state_dir(name);
    if running_daemon(&state).is_none() {
        bail!("lab {name:?} is not up; start it with `svcnet lab up --name {name}`");
    }
    read_ready(&state).with_context(|| format!("lab {name:?} is starting; try again in a moment"))
}

/// The lab's nodes and pods.
pub fn status(name: &str) -> Result<ExitCode> {
    let ready = ready_lab(name)?;
    let control_plane = ready.control_plane.to_possible_value().expect("named");
    println!(
        "lab {name:?}: API server {} ({} control plane)",
        ready.api_server,
        control_plane.get_name()
    );
    println!("kubeconfig: {}", ready.kubeconfig.display());
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let client = client_for(&ready.kubeconfig).await?;
        let nodes = Api::<Node>::all(client.clone()).list(&ListParams::default()).await?;
        println!("\nNODE      ADDRESS        POD CIDR        NAMESPACE");
        for n in &ready.plan.nodes {
            let registered = nodes.items.iter().any(|o| o.metadata.name.as_deref() == Some(&n.name));
            let mark = if registered { "" } else { "  (not registered)" };
            println!(
                "{:<9} {:<14} {:<15} {}{mark}",
                n.name,
                n.ip,
                n.pod_cidr.to_string(),
                n.netns
            );
        }
        println!(
            "external  {:<14} {:<15} {}",
            ready.plan.external_ip, "-", ready.plan.external_netns
        );
        let pods = Api::<Pod>::all(client).list(&ListParams::default()).await?;
        println!("\nNAMESPACE  POD                  NODE      IP            PHASE      READY");
        for p in &pods.items {
            let status = p.status.clone().unwrap_or_default();
            let is_ready = status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            println!(
                "{:<10} {:<20} {:<9} {:<13} {:<10} {}",
                p.metadata.namespace.as_deref().unwrap_or(""),
                p.metadata.name.as_deref().unwrap_or(""),
                p.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or("<none>"),
                status.pod_ip.as_deref().unwrap_or("-"),
                status.phase.as_deref().unwrap_or("-"),
                is_ready
            );
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn run_inherited(netns: &str, command: &[String]) -> Result<ExitCode> {
    if command.is_empty() {
        bail!("give a command after --");
    }
    let mut child = crate::netns::spawn_in(netns, Command::new(&command[0]).args(&command[1..]))
        .with_context(|| format!("running {} in {netns}", command[0]))?;
    let status = child.wait()?;
    Ok(ExitCode::from(status.code().unwrap_or(1).clamp(0, 255) as u8))
}

/// Runs a command in a pod's network namespace.
pub fn exec(name: &str, pod: &str, namespace: &str, command: &[String]) -> Result<ExitCode> {
    require_root()?;
    let ready = ready_lab(name)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let found = runtime.block_on(async {
        let client = client_for(&ready.kubeconfig).await?;
        Api::<Pod>::namespaced(client, namespace)
            .get_opt(pod)
            .await
            .map_err(anyhow::Error::from)
    })?;
    let Some(found) = found else {
        bail!("pods \"{pod}\" not found in namespace {namespace:?}");
    };
    if found.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_none() {
        bail!("pod {pod:?} is not running yet");
    }
    let uid = found.metadata.uid.as_deref().unwrap_or("");
    let netns = ready.plan.pod_netns(uid);
    // as the pod's processes see the world: its hostname, resolv.conf and hosts file (as
    // root, as an administrator's `kubectl exec` into a root container would be)
    let dir = super::kubelet::isolation::sandbox_dir(&state_dir(name), uid);
    if !dir.is_dir() {
        return run_inherited(&netns, command);
    }
    let isolation = as_root_in_first_container(&state_dir(name), &found);
    let exe = std::env::current_exe()?.to_string_lossy().into_owned();
    run_inherited(&netns, &isolation.wrap(&exe, command))
}

/// Joining `pod`'s first container as root (as an administrator's `kubectl exec` into a
/// root container would be).
fn as_root_in_first_container(state: &std::path::Path, pod: &Pod) -> super::kubelet::isolation::Isolation {
    let uid = pod.metadata.uid.as_deref().unwrap_or("");
    let first = pod.spec.as_ref().and_then(|s| s.containers.first());
    super::kubelet::isolation::Isolation {
        dir: super::kubelet::isolation::sandbox_dir(state, uid),
        container: first.map(|c| c.name.clone()).unwrap_or_default(),
        entry: super::kubelet::isolation::Entry::Join,
        uid: 0,
        gid: 0,
        workdir: first
            .and_then(|c| c.working_dir.clone())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into()),
    }
}

/// `svcnet lab node NODE --ip ADDR`: changes a node's address and waits until its Node
/// object reports it.
pub fn node(name: &str, node: &str, ip: std::net::Ipv4Addr) -> Result<ExitCode> {
    require_root()?;
    let mut ready = ready_lab(name)?;
    let old = ready.plan.nodes.iter().find(|n| n.name == node).map(|n| n.ip);
    let started = Instant::now();
    ready.plan = super::node_address::change(&ready.plan, node, ip)?;
    // the lab's other commands read addresses from here
    let state = state_dir(name);
    let staging = state.join("ready.json.new");
    std::fs::write(&staging, serde_json::to_vec_pretty(&ready)?)?;
    std::fs::rename(&staging, daemon::ready_path(&state))?;
    let runtime = tokio::runtime::Runtime::new()?;
    let reported = runtime.block_on(async {
        let client = client_for(&ready.kubeconfig).await?;
        let nodes = Api::<Node>::all(client);
        let want = ip.to_string();
        while started.elapsed() < Duration::from_secs(10) {
            let object = nodes.get(node).await?;
            let addresses = object.status.and_then(|s| s.addresses).unwrap_or_default();
            if addresses.iter().any(|a| a.type_ == "InternalIP" && a.address == want) {
                return anyhow::Ok(true);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::Ok(false)
    })?;
    let old = old.map_or_else(|| "?".to_owned(), |o| o.to_string());
    if !reported {
        bail!("{node} now has the address {ip} (was {old}), but its Node object did not report it within 10 s");
    }
    println!(
        "{node}: {old} -> {ip}; Node.status.addresses reported it after {} ms",
        started.elapsed().as_millis()
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs a command on the external host.
pub fn external(name: &str, command: &[String]) -> Result<ExitCode> {
    require_root()?;
    let ready = ready_lab(name)?;
    run_inherited(&ready.plan.external_netns, command)
}

/// `svcnet lab daemon`: what `up` starts in the background.
pub fn daemon(
    name: &str,
    nodes: usize,
    zones: &[String],
    ip_family: super::plan::IpFamily,
    options: DaemonOptions,
) -> Result<ExitCode> {
    let plan = LabPlan::new(name, nodes)?.with_zones(zones)?.with_ip_family(ip_family);
    require_root()?;
    let state = state_dir(name);
    std::fs::create_dir_all(&state)?;
    daemon::run(plan, &state, options)?;
    Ok(ExitCode::SUCCESS)
}
