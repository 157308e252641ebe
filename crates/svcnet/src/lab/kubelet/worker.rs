//! One pod's life on its node: sandbox, container processes, restarts, readiness probes,
//! status reports, and termination (SIGTERM to each container's process group, SIGKILL
//! after the grace period, then the sandbox goes).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::Patch;
use tokio::sync::watch;
use tokio::time::Instant;

use anyhow::Context;

use super::NodeContext;
use super::console;
use super::container::{CannotRun, argv};
use super::dns_config;
use super::isolation::{self, Entry, Isolation};
use super::mounting::{self, MadeVolumes};
use super::probe::{self, Plan};
use super::sandbox;
use super::status::{ContainerRun, PodRun, RunState, pod_status};

const TICK: Duration = Duration::from_millis(200);
/// How long a failed pull shows `ErrImagePull` before `ImagePullBackOff`.
const PULL_BACKOFF: Duration = Duration::from_secs(2);
/// Restart back-off: doubles from this, up to [`MAX_BACKOFF`] (upstream: 10 s to 5 min;
/// shorter here, a lab wants to see restarts).
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often volumes are tried again while they cannot be made (upstream backs off from
/// 500 ms), and how often configMap, secret and projected volumes are brought up to date.
const MOUNT_RETRY: Duration = Duration::from_secs(2);
const VOLUME_RESYNC: Duration = Duration::from_secs(10);

/// A name for a new generation of a volume's files, as upstream's atomic writer names them.
fn volume_stamp() -> String {
    let t = Timestamp::now();
    format!("{}.{:09}", t.strftime("%Y_%m_%d_%H_%M_%S"), t.subsec_nanosecond())
}

struct Readiness {
    plan: Plan,
    next_at: Instant,
    successes: u32,
    failures: u32,
}

struct Running {
    spec: Container,
    argv: Option<Vec<String>>,
    run: ContainerRun,
    child: Option<tokio::process::Child>,
    restart_at: Option<Instant>,
    readiness: Option<Readiness>,
}

fn now() -> Timestamp {
    svcnet_apiserver::objects::now_timestamp()
}

fn pod_key(pod: &Pod) -> (String, String) {
    (
        pod.metadata.namespace.clone().unwrap_or_else(|| "default".into()),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

/// Why and how a pod stops.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stop {
    /// Between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// The pod is being deleted: remove it from the API once it stopped.
    pub remove: bool,
}

/// Signals a stop.
pub type StopSignal = watch::Receiver<Option<Stop>>;

pub async fn run(ctx: Arc<NodeContext>, pod: Pod, mut stop: StopSignal) {
    let (namespace, name) = pod_key(&pod);
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let netns = ctx.plan.pod_netns(&uid);
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let started = now();
    let Some(ip) = ctx.ips.lock().expect("pool").allocate() else {
        tracing::error!(pod = %name, "the node's pod CIDR is full");
        return;
    };
    let sandbox_dir = isolation::sandbox_dir(&ctx.state, &uid);
    let ipv6 = ctx.node.pod_ipv6(ip);
    let sandbox_result = match create_sandbox(&ctx.node.netns, &netns, ip, ipv6, &name).await {
        Ok(()) => write_sandbox_files(&ctx, &pod, &sandbox_dir, ip, ipv6),
        Err(e) => Err(e),
    };
    // the pod's init holds its PID, IPC and UTS namespaces, which every container joins
    let mut init = match &sandbox_result {
        Ok(()) => match start_init(&ctx, &pod, &sandbox_dir, &netns).await {
            Ok(child) => Some(child),
            Err(e) => {
                tracing::error!(pod = %name, error = %format!("{e:#}"), "the pod's init did not start");
                None
            }
        },
        Err(_) => None,
    };
    let spec = pod.spec.clone().unwrap_or_default();
    // the cluster DNS reads the API from its pod's namespace, through a relay there
    let relay = match &sandbox_result {
        Ok(()) if spec.containers.iter().any(super::container::is_cluster_dns) => {
            match crate::lab::api_relay::bind(&netns, ctx.api) {
                Ok(listener) => Some(tokio::spawn(crate::lab::api_relay::serve(listener, ctx.api))),
                Err(e) => {
                    tracing::error!(pod = %name, error = %e, "cannot relay the API server into the DNS pod");
                    None
                }
            }
        }
        _ => None,
    };
    let policy = spec.restart_policy.clone().unwrap_or_else(|| "Always".into());
    let mut pod_ips: Vec<IpAddr> = std::iter::once(IpAddr::V4(ip)).chain(ipv6.map(IpAddr::V6)).collect();
    let mut containers: Vec<Running> = spec
        .containers
        .iter()
        .map(|c| {
            let command = if super::container::is_cluster_dns(c) {
                Ok(super::container::cluster_dns_argv(
                    &ctx.exe,
                    &ctx.dns_kubeconfig,
                    &ctx.dns.domain,
                ))
            } else {
                argv(c, &name, &ctx.exe)
            };
            let waiting = |reason: &str, message: String| RunState::Waiting {
                reason: reason.into(),
                message,
            };
            let (argv, state) = match command {
                Ok(v) => (Some(v), waiting("ContainerCreating", String::new())),
                Err(CannotRun::Config(message)) => (None, waiting("CreateContainerConfigError", message)),
                Err(CannotRun::Pull(message)) => (None, waiting("ErrImagePull", message)),
            };
            Running {
                spec: c.clone(),
                argv,
                run: ContainerRun {
                    name: c.name.clone(),
                    image: c.image.clone().unwrap_or_default(),
                    state,
                    restarts: 0,
                    ready: false,
                    will_restart: policy != "Never",
                    last_termination: None,
                },
                child: None,
                restart_at: Some(Instant::now()),
                readiness: None,
            }
        })
        .collect();
    if let Err(e) = sandbox_result {
        let message = format!("{e:#}");
        tracing::error!(pod = %name, %message, "cannot create the pod's network");
        for c in &mut containers {
            c.run.state = RunState::Waiting {
                reason: "CreatePodSandboxError".into(),
                message: message.clone(),
            };
            c.restart_at = None;
        }
        pod_ips.clear();
    }
    let node = Some(ctx.node.name.as_str());
    for c in containers.iter_mut().filter(|c| c.argv.is_none()) {
        match &c.run.state {
            RunState::Waiting { reason, message } if reason == "ErrImagePull" => {
                // as upstream's kubelet reports a failed pull, then backs off
                let image = &c.run.image;
                let pulling = format!("Pulling image \"{image}\"");
                crate::lab::events::record(&ctx.client, &pod, "Pulling", &pulling, "kubelet", node).await;
                let failed = format!("Failed to pull image \"{image}\": {message}");
                crate::lab::events::warn(&ctx.client, &pod, "Failed", &failed, "kubelet", node).await;
                crate::lab::events::warn(&ctx.client, &pod, "Failed", "Error: ErrImagePull", "kubelet", node).await;
                c.restart_at = Some(Instant::now() + PULL_BACKOFF);
            }
            RunState::Waiting { message, .. } => {
                let event = format!("Error: {message}");
                crate::lab::events::warn(&ctx.client, &pod, "Failed", &event, "kubelet", node).await;
            }
            _ => {}
        }
    }
    let mut sent: Option<PodStatus> = None;
    let mut backoff: BTreeMap<String, Duration> = BTreeMap::new();
    let mut volumes = MadeVolumes::default();
    let mut next_volume_sync = Instant::now();
    let mut last_mount_failure: Option<String> = None;
    let stopping = loop {
        let now_instant = Instant::now();
        // volumes: made before any container starts, then kept up to date
        if !pod_ips.is_empty() && next_volume_sync <= now_instant {
            let first = !volumes.complete(&pod);
            match volumes.sync(&ctx.client, &pod, &sandbox_dir, &volume_stamp()).await {
                Ok(notes) => {
                    if first {
                        for note in notes {
                            tracing::warn!(pod = %name, "{note}");
                        }
                    }
                    last_mount_failure = None;
                    next_volume_sync = now_instant + VOLUME_RESYNC;
                }
                Err(failure) => {
                    let message = failure.message();
                    // once per reason, as upstream's events are aggregated
                    if first && last_mount_failure.as_deref() != Some(message.as_str()) {
                        let node = Some(ctx.node.name.as_str());
                        crate::lab::events::warn(&ctx.client, &pod, "FailedMount", &message, "kubelet", node).await;
                    }
                    tracing::warn!(pod = %name, %message, "volumes not ready");
                    last_mount_failure = Some(message);
                    next_volume_sync = now_instant + if first { MOUNT_RETRY } else { VOLUME_RESYNC };
                }
            }
        }
        let volumes_ready = volumes.complete(&pod);
        for c in &mut containers {
            // a pull that failed: back off, and stay there (the lab pulls nothing)
            if c.argv.is_none()
                && c.restart_at.is_some_and(|at| at <= now_instant)
                && matches!(&c.run.state, RunState::Waiting { reason, .. } if reason == "ErrImagePull")
            {
                c.restart_at = None;
                let backing_off = format!("Back-off pulling image \"{}\"", c.run.image);
                c.run.state = RunState::Waiting {
                    reason: "ImagePullBackOff".into(),
                    message: backing_off.clone(),
                };
                let node = Some(ctx.node.name.as_str());
                crate::lab::events::record(&ctx.client, &pod, "BackOff", &backing_off, "kubelet", node).await;
                crate::lab::events::warn(&ctx.client, &pod, "Failed", "Error: ImagePullBackOff", "kubelet", node).await;
            }
            // exits
            if let Some(child) = &mut c.child
                && let Ok(Some(status)) = child.try_wait()
            {
                let code = status.code().unwrap_or(128 + 9);
                let started_at = match c.run.state {
                    RunState::Running { started_at } => started_at,
                    _ => now(),
                };
                c.child = None;
                c.run.ready = false;
                c.readiness = None;
                let restart = match policy.as_str() {
                    "Never" => false,
                    "OnFailure" => code != 0,
                    _ => true,
                };
                c.run.will_restart = restart;
                let terminated = RunState::Terminated {
                    exit_code: code,
                    started_at,
                    finished_at: now(),
                };
                if restart {
                    let delay = backoff.get(&c.run.name).copied().unwrap_or(FIRST_BACKOFF);
                    backoff.insert(c.run.name.clone(), (delay * 2).min(MAX_BACKOFF));
                    c.restart_at = Some(now_instant + delay);
                    // waiting out the back-off, as upstream's kubelet shows it
                    c.run.last_termination = Some(terminated);
                    c.run.state = RunState::Waiting {
                        reason: "CrashLoopBackOff".into(),
                        message: format!(
                            "back-off {}s restarting failed container={} pod={name}_{namespace}({uid})",
                            delay.as_secs(),
                            c.run.name
                        ),
                    };
                    let message = format!(
                        "Back-off restarting failed container {} in pod {name}_{namespace}({uid})",
                        c.run.name
                    );
                    crate::lab::events::warn(&ctx.client, &pod, "BackOff", &message, "kubelet", Some(&ctx.node.name))
                        .await;
                } else {
                    c.run.state = terminated;
                }
                tracing::info!(pod = %name, container = %c.run.name, code, restart, "container exited");
            }
            // starts and restarts
            if !pod_ips.is_empty()
                && volumes_ready
                && c.child.is_none()
                && c.restart_at.is_some_and(|at| at <= now_instant)
                && let Some(words) = &c.argv
            {
                c.restart_at = None;
                let first = c.run.restarts == 0 && c.run.last_termination.is_none();
                let who = run_as(&ctx.exe, &c.spec, spec.security_context.as_ref());
                let container_dir = super::rootfs::container_dir(&sandbox_dir, &c.run.name);
                let host_ip = ctx.ip().to_string();
                let configured = match mounting::container_mounts(&pod, &c.spec, &sandbox_dir)
                    .map(|mut mounts| {
                        if super::container::is_cluster_dns(&c.spec) {
                            mounts.extend(mounting::credentials_mounts(&ctx.dns_kubeconfig));
                        }
                        mounts
                    })
                    .and_then(|m| super::rootfs::prepare(&container_dir, &m).map_err(|e| format!("{e:#}")))
                {
                    Ok(()) => mounting::container_env(&ctx.client, &pod, &c.spec, &ip.to_string(), &host_ip).await,
                    Err(message) => Err(message),
                };
                let env = match configured {
                    Ok(env) => env,
                    Err(message) => {
                        // reported once per reason, tried again shortly (a ConfigMap may come)
                        let repeated = matches!(&c.run.state, RunState::Waiting { message: m, .. } if *m == message);
                        if !repeated {
                            let event = format!("Error: {message}");
                            let node = Some(ctx.node.name.as_str());
                            crate::lab::events::warn(&ctx.client, &pod, "Failed", &event, "kubelet", node).await;
                        }
                        c.run.state = RunState::Waiting {
                            reason: "CreateContainerConfigError".into(),
                            message,
                        };
                        c.restart_at = Some(now_instant + MOUNT_RETRY);
                        continue;
                    }
                };
                let tty = c.spec.tty.unwrap_or(false);
                let mut full_env = super::environment::base(&dns_config::hostname(&pod), who.0, tty);
                full_env.extend(env);
                if let Err(e) = mounting::save_env(&container_dir, &full_env) {
                    tracing::warn!(pod = %name, error = %e, "cannot keep the container's environment for exec");
                }
                let words = super::environment::expand_words(words, &full_env);
                if !first {
                    // each run logs on its own; the one before stays for `logs --previous`
                    let log = crate::lab::hooks::LogFiles::path(&ctx.log_dir, &namespace, &name, &c.run.name);
                    let previous =
                        crate::lab::hooks::LogFiles::previous_path(&ctx.log_dir, &namespace, &name, &c.run.name);
                    let _ = std::fs::rename(log, previous);
                }
                let isolation = Isolation {
                    dir: sandbox_dir.clone(),
                    container: c.run.name.clone(),
                    entry: Entry::Start,
                    uid: who.0,
                    gid: who.1,
                    workdir: c
                        .spec
                        .working_dir
                        .clone()
                        .filter(|w| !w.is_empty())
                        .unwrap_or_else(|| "/".into()),
                };
                let isolated = match tty {
                    true => isolation.wrap_on_terminal(&ctx.exe, &words),
                    false => isolation.wrap(&ctx.exe, &words),
                };
                let key = (namespace.clone(), name.clone(), c.run.name.clone());
                match spawn(&ctx, key, &netns, &isolated, &c.spec, &full_env) {
                    Ok(child) => {
                        c.child = Some(child);
                        if !first {
                            c.run.restarts += 1;
                        }
                        let node = Some(ctx.node.name.as_str());
                        let image = c.run.image.clone();
                        let pulled = format!("Container image \"{image}\" already present on machine");
                        crate::lab::events::record(&ctx.client, &pod, "Pulled", &pulled, "kubelet", node).await;
                        let created = format!("Created container: {}", c.run.name);
                        crate::lab::events::record(&ctx.client, &pod, "Created", &created, "kubelet", node).await;
                        let message = format!("Started container {}", c.run.name);
                        crate::lab::events::record(
                            &ctx.client,
                            &pod,
                            "Started",
                            &message,
                            "kubelet",
                            Some(&ctx.node.name),
                        )
                        .await;
                        c.run.state = RunState::Running { started_at: now() };
                        c.run.will_restart = policy != "Never";
                        // an exec probe runs in the container, as its user, as `kubectl exec` does
                        let in_container = Isolation {
                            entry: Entry::Join,
                            ..isolation.clone()
                        };
                        c.readiness = c.spec.readiness_probe.as_ref().and_then(|p| {
                            probe::plan(p, &c.spec, IpAddr::V4(ip))
                                .inspect_err(|e| tracing::warn!(pod = %name, error = %e, "readiness probe ignored"))
                                .ok()
                                .map(|mut plan| {
                                    if let probe::Action::Exec(command) = &mut plan.action {
                                        *command = in_container.wrap(&ctx.exe, command);
                                    }
                                    plan
                                })
                                .map(|plan| Readiness {
                                    next_at: now_instant + Duration::from_secs(plan.initial_delay),
                                    plan,
                                    successes: 0,
                                    failures: 0,
                                })
                        });
                        c.run.ready = c.readiness.is_none();
                    }
                    Err(e) => {
                        let message = format!("{e:#}");
                        let event = format!("Error: failed to start container \"{}\": {message}", c.run.name);
                        crate::lab::events::warn(&ctx.client, &pod, "Failed", &event, "kubelet", Some(&ctx.node.name))
                            .await;
                        c.run.state = RunState::Waiting {
                            reason: "RunContainerError".into(),
                            message,
                        };
                        c.restart_at = Some(now_instant + MAX_BACKOFF);
                    }
                }
            }
            // readiness
            if let Some(r) = &mut c.readiness
                && r.next_at <= now_instant
            {
                let ok = probe::check(
                    &r.plan.action,
                    &ctx.node.netns,
                    &netns,
                    Duration::from_secs(r.plan.timeout),
                )
                .await;
                r.next_at = Instant::now() + Duration::from_secs(r.plan.period);
                if ok {
                    r.successes += 1;
                    r.failures = 0;
                    if r.successes >= r.plan.success_threshold {
                        c.run.ready = true;
                    }
                } else {
                    r.failures += 1;
                    r.successes = 0;
                    if r.failures >= r.plan.failure_threshold {
                        if c.run.ready || r.failures == r.plan.failure_threshold {
                            // once per fall, as upstream's kubelet reports a failing probe
                            let message = format!("Readiness probe failed: {} did not answer", c.run.name);
                            crate::lab::events::warn(
                                &ctx.client,
                                &pod,
                                "Unhealthy",
                                &message,
                                "kubelet",
                                Some(&ctx.node.name),
                            )
                            .await;
                        }
                        c.run.ready = false;
                    }
                }
            }
        }
        let runs: Vec<ContainerRun> = containers.iter().map(|c| c.run.clone()).collect();
        let host_ips: Vec<IpAddr> = std::iter::once(IpAddr::V4(ctx.ip()))
            .chain(ctx.node.ipv6.as_ref().map(|v| IpAddr::V6(v.ip)))
            .collect();
        let status = pod_status(&PodRun {
            pod_ips: &pod_ips,
            host_ips: &host_ips,
            start_time: started,
            containers: &runs,
            now: now(),
            previous: sent.as_ref(),
        });
        if sent.as_ref() != Some(&status) {
            let body = serde_json::json!({ "status": status });
            match api
                .patch_status(&name, &super::as_kubelet(), &Patch::Merge(&body))
                .await
            {
                Ok(_) => sent = Some(status),
                Err(kube::Error::Api(e)) if e.code == 404 => {
                    break Stop {
                        grace: Duration::ZERO,
                        remove: false,
                    };
                }
                Err(e) => tracing::warn!(pod = %name, error = %e, "cannot report pod status"),
            }
        }
        tokio::select! {
            changed = stop.changed() => {
                let now_stop = if changed.is_ok() { *stop.borrow() } else { None };
                break now_stop.unwrap_or(Stop { grace: Duration::ZERO, remove: false });
            }
            () = tokio::time::sleep(TICK) => {}
        }
    };
    if stopping.remove {
        for c in containers.iter().filter(|c| c.child.is_some()) {
            let message = format!("Stopping container {}", c.run.name);
            crate::lab::events::record(&ctx.client, &pod, "Killing", &message, "kubelet", Some(&ctx.node.name)).await;
        }
    }
    terminate(&mut containers, stopping.grace).await;
    // the init goes last, and whatever the containers left in the pod with it
    if let Some(init) = &mut init {
        let _ = init.start_kill();
        let _ = init.wait().await;
    }
    if let Some(relay) = relay {
        relay.abort();
    }
    let pod_ns = netns.clone();
    let _ = tokio::task::spawn_blocking(move || sandbox::remove(&pod_ns)).await;
    let _ = std::fs::remove_dir_all(&sandbox_dir);
    ctx.ips.lock().expect("pool").release(ip);
    tracing::info!(pod = %name, "pod stopped");
    ctx.consoles.remove_pod(&namespace, &name);
    // its output goes with it (a new pod of the same name starts afresh)
    for c in &containers {
        let _ = std::fs::remove_file(crate::lab::hooks::LogFiles::path(
            &ctx.log_dir,
            &namespace,
            &name,
            &c.run.name,
        ));
    }
    if stopping.remove {
        remove(&api, &name, &uid).await;
    }
}

/// Runs `operation` until it succeeds or has failed `attempts` times, waiting 200 ms after the
/// first failure and twice as long after each next one (at most 5 s); each failure but the last
/// is logged as `what` for `pod`.
async fn retrying<T, E: std::fmt::Display, F: std::future::Future<Output = Result<T, E>>>(
    attempts: u32,
    pod: &str,
    what: &str,
    mut operation: impl FnMut() -> F,
) -> Result<T, E> {
    let mut wait = Duration::from_millis(200);
    let mut attempt = 1;
    loop {
        match operation().await {
            Err(e) if attempt < attempts => {
                tracing::warn!(pod, attempt, error = %e, "{what}; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
                attempt += 1;
            }
            done => return done,
        }
    }
}

/// Writes the pod's resolv.conf and hosts file (see [`dns_config`]); a dual-stack pod's
/// hosts file names it under both addresses.
fn write_sandbox_files(
    ctx: &NodeContext,
    pod: &Pod,
    dir: &std::path::Path,
    ip: std::net::Ipv4Addr,
    ipv6: Option<std::net::Ipv6Addr>,
) -> anyhow::Result<()> {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let resolv = dns_config::resolv_conf(pod, &ctx.dns, &host);
    let ips: Vec<IpAddr> = std::iter::once(IpAddr::V4(ip)).chain(ipv6.map(IpAddr::V6)).collect();
    let hosts = dns_config::hosts(pod, &ips, &ctx.dns);
    isolation::write_files(dir, &resolv, &hosts).context("writing the pod's resolv.conf and hosts")
}

/// Creates the pod's network namespace and link. Tried 5 times (a kubelet retries sandboxes
/// too; under load a namespace or link operation can fail once).
/// Starts the pod's init (`svcnet lab sandbox-init`) and waits for it to name its PID. It runs
/// in the pod's network namespace, so whatever removes the lab's namespaces (`lab down`, also
/// after a crashed daemon) ends it with the pod's other processes.
async fn start_init(
    ctx: &NodeContext,
    pod: &Pod,
    dir: &std::path::Path,
    netns: &str,
) -> anyhow::Result<tokio::process::Child> {
    let init = isolation::init_command(&ctx.exe, &dns_config::hostname(pod), dir);
    let pid_file = dir.join(isolation::INIT_PID_FILE);
    let _ = std::fs::remove_file(&pid_file);
    let mut command = tokio::process::Command::new(&init[0]);
    command
        .args(&init[1..])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true);
    let mut child = crate::netns::spawn_async_in(netns, &mut command)?;
    for _ in 0..200 {
        if pid_file.exists() {
            return Ok(child);
        }
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("it exited ({status})");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    anyhow::bail!("it named no PID within 5 s")
}

async fn create_sandbox(
    node_netns: &str,
    pod_netns: &str,
    ip: std::net::Ipv4Addr,
    ipv6: Option<std::net::Ipv6Addr>,
    pod: &str,
) -> anyhow::Result<()> {
    retrying(5, pod, "cannot create the pod's network", || {
        let (node_ns, pod_ns) = (node_netns.to_owned(), pod_netns.to_owned());
        async move {
            tokio::task::spawn_blocking(move || sandbox::create(&node_ns, &pod_ns, ip, ipv6))
                .await
                .map_err(|e| anyhow::anyhow!("the sandbox task failed: {e}"))?
        }
    })
    .await
}

/// Removes a pod whose deletion was requested, now that nothing of it runs (grace 0, and
/// only this pod: a new one of the same name is left alone). Tried for about a minute: a
/// failed removal would leave the pod terminating for ever.
pub async fn remove(api: &Api<Pod>, name: &str, uid: &str) {
    let params = kube::api::DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(kube::api::Preconditions {
            uid: Some(uid.to_owned()),
            resource_version: None,
        }),
        ..Default::default()
    };
    let removed = retrying(16, name, "cannot remove the deleted pod", || async {
        match api.delete(name, &params).await {
            // gone already, or a new pod of the name: nothing of ours is left
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
            other => other.map(|_| ()),
        }
    })
    .await;
    if let Err(e) = removed {
        tracing::error!(pod = %name, error = %e, "giving up removing the deleted pod");
    }
}

/// Who a container runs as: its pod's choice, unprivileged by default. The built-in agnhost is
/// this binary; where no other user may run it (a checkout under a private home), it keeps the
/// lab's user, and says so.
fn run_as(
    exe: &str,
    container: &Container,
    pod: Option<&k8s_openapi::api::core::v1::PodSecurityContext>,
) -> (u32, u32) {
    let wanted = super::container::identity(container, pod);
    if wanted.0 != 0
        && super::container::is_built_in(container)
        && !super::container::runnable_by_anyone(std::path::Path::new(exe))
    {
        tracing::warn!(
            exe,
            "other users cannot run this binary here: the built-in agnhost runs as root"
        );
        return (0, 0);
    }
    wanted
}

/// Starts one container: `words` (wrapped by [`Isolation`], which takes the container's
/// user) in the pod's network namespace, its output to the container's log file (through its
/// console, when it has one).
fn spawn(
    ctx: &NodeContext,
    key: console::Key,
    netns: &str,
    words: &[String],
    spec: &Container,
    env: &[(String, String)],
) -> anyhow::Result<tokio::process::Child> {
    let (namespace, pod, container) = (&key.0, &key.1, &key.2);
    let log_path: PathBuf = crate::lab::hooks::LogFiles::path(&ctx.log_dir, namespace, pod, container);
    let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
    let (program, args) = anyhow::Context::context(words.split_first(), "a container needs a command")?;
    let streams = console::streams(spec, &log)?;
    let mut cmd = tokio::process::Command::new(program);
    // the container's environment only, nothing of the kubelet's
    cmd.args(args).env_clear().envs(env.iter().map(|(k, v)| (k, v)));
    if !streams.tty() {
        // on a terminal, the sandbox makes it a session (and group) leader instead
        cmd.process_group(0);
    }
    // never the kubelet's own directory (the checkout); the sandbox enters the container's
    cmd.current_dir("/");
    let console = streams.give_to(&mut cmd);
    let child = crate::netns::spawn_async_in(netns, &mut cmd)?;
    // our ends of its streams go with the command
    drop(cmd);
    console.started(&ctx.consoles, key, &log)?;
    Ok(child)
}

fn signal_group(group: Option<u32>, signal: rustix::process::Signal) {
    if let Some(pid) = group.and_then(|id| rustix::process::Pid::from_raw(id as i32)) {
        let _ = rustix::process::kill_process_group(pid, signal);
    }
}

/// SIGTERM now, SIGKILL for whatever still runs after `grace`.
async fn terminate(containers: &mut [Running], grace: Duration) {
    // each container leads its own process group, whose id is its pid
    let groups: Vec<Option<u32>> = containers
        .iter()
        .map(|c| c.child.as_ref().and_then(|ch| ch.id()))
        .collect();
    for group in &groups {
        signal_group(*group, rustix::process::Signal::TERM);
    }
    let deadline = Instant::now() + grace;
    for (c, group) in containers.iter_mut().zip(groups) {
        if let Some(child) = &mut c.child {
            if tokio::time::timeout_at(deadline, child.wait()).await.is_err() {
                signal_group(group, rustix::process::Signal::KILL);
                let _ = child.wait().await;
            }
            // the group may hold more than the main process
            signal_group(group, rustix::process::Signal::KILL);
        }
    }
}
