//! Upstream's control plane for a lab: etcd, kube-apiserver and kube-controller-manager as
//! child processes of the lab daemon, all on loopback, their data, credentials, logs and pid
//! files under `<state>/upstream` (private). kube-apiserver authorizes with RBAC; the admin
//! (kubectl, the lab's kubelets and scheduler) is in `system:masters`, and every node's
//! `svcnet proxy` holds a token of the ServiceAccount that `deploy/svcnet-proxy.yaml` creates,
//! bound to that manifest's ClusterRole: the agent gets exactly what the manifest grants.
//! Upstream's kube-proxy (`lab up --proxy kube-proxy`) gets the identity kubeadm gives it: the
//! ServiceAccount `kube-system/kube-proxy` bound to `system:node-proxier`.
//!
//! The controller manager runs the controllers a Service lab needs: EndpointSlices (and their
//! mirroring), Endpoints, Deployments and ReplicaSets, namespaces, garbage collection and
//! ServiceAccounts (pods need their namespace's `default` account).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::PostParams;
use kube::{Api, Client};
use svcnet_apiserver::credentials;

use super::{Running, Settings, Started};
use crate::lab::daemon::client_for;

/// The manifest users apply to run `svcnet proxy` on their cluster.
const PROXY_MANIFEST: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/svcnet-proxy.yaml"));
/// Where the manifest puts the agent's ServiceAccount.
const PROXY_NAMESPACE: &str = "kube-system";
const PROXY_ACCOUNT: &str = "svcnet-proxy";
/// How long the agents' token is valid (a lab lives for hours, not weeks).
const PROXY_TOKEN_SECONDS: i64 = 7 * 24 * 3600;

/// The binaries, in the order they start.
pub const BINARIES: [&str; 3] = ["etcd", "kube-apiserver", "kube-controller-manager"];

/// The controllers the lab's Services need (upstream's names).
const CONTROLLERS: &str = "endpointslice-controller,endpointslice-mirroring-controller,\
endpoints-controller,deployment-controller,replicaset-controller,namespace-controller,\
garbage-collector-controller,serviceaccount-controller,serviceaccount-token-controller,\
root-ca-certificate-publisher-controller,clusterrole-aggregation-controller,service-cidr-controller";

/// Where `cargo xtask upstream` puts the binaries, seen from this executable
/// (`target/<profile>/svcnet` → `target/upstream/bin`).
pub fn default_bin_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("upstream/bin")))
        .unwrap_or_else(|| PathBuf::from("target/upstream/bin"))
}

/// The processes of a running upstream control plane.
pub struct Processes {
    children: Vec<(&'static str, tokio::process::Child)>,
    pid_dir: PathBuf,
    log_dir: PathBuf,
}

impl Processes {
    fn spawn(&mut self, name: &'static str, program: &Path, args: &[String]) -> Result<()> {
        let log = std::fs::File::create(self.log_dir.join(format!("{name}.log")))?;
        let child = tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        if let Some(pid) = child.id() {
            std::fs::create_dir_all(&self.pid_dir)?;
            std::fs::write(self.pid_dir.join(format!("{name}.pid")), pid.to_string())?;
        }
        self.children.push((name, child));
        Ok(())
    }

    /// The processes, by name and pid.
    pub fn pids(&self) -> Vec<(&'static str, u32)> {
        self.children
            .iter()
            .filter_map(|(name, child)| Some((*name, child.id()?)))
            .collect()
    }

    /// The last lines `name` logged.
    fn log_tail(&self, name: &str) -> String {
        let log = std::fs::read_to_string(self.log_dir.join(format!("{name}.log"))).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Fails naming the first process that exited, with its last words.
    fn check_alive(&mut self) -> Result<()> {
        for (name, child) in &mut self.children {
            if let Some(status) = child.try_wait()? {
                let name = *name;
                bail!("{name} exited ({status}):\n{}", self.log_tail(name));
            }
        }
        Ok(())
    }

    pub async fn stopped(&mut self) -> String {
        loop {
            if let Err(e) = self.check_alive() {
                return format!("the upstream control plane stopped: {e:#}");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// SIGTERM to each, last started first; SIGKILL to any still running after 10 s.
    pub async fn stop(mut self) {
        while let Some((name, mut child)) = self.children.pop() {
            if let Some(pid) = child.id().and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            if tokio::time::timeout(Duration::from_secs(10), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
            let _ = std::fs::remove_file(self.pid_dir.join(format!("{name}.pid")));
        }
    }
}

/// A free TCP port on `ip` (the kernel's choice; nothing else of ours takes it meanwhile).
fn free_port(ip: std::net::IpAddr) -> Result<u16> {
    Ok(std::net::TcpListener::bind((ip, 0))?.local_addr()?.port())
}

/// The pid files of a lab's upstream processes (for `down` after a crashed daemon).
pub fn pid_dir(state: &Path) -> PathBuf {
    state.join("upstream/pids")
}

/// Fails naming the first of `names` missing from `bin`.
pub fn check_binaries(bin: &Path, names: &[&str]) -> Result<()> {
    for name in names {
        if !bin.join(name).exists() {
            bail!(
                "{} is missing: build upstream's binaries with `cargo xtask upstream`, or name their directory with --upstream-bin",
                bin.join(name).display()
            );
        }
    }
    Ok(())
}

/// A running etcd and kube-apiserver.
pub struct ApiServer {
    pub processes: Processes,
    /// The admin's (`system:masters`).
    pub kubeconfig: PathBuf,
    pub url: String,
    pub address: SocketAddr,
    /// Signs and verifies ServiceAccount tokens.
    pub service_account_key: PathBuf,
    pub ca: PathBuf,
}

/// Starts etcd and kube-apiserver (RBAC, a static admin token) with data, credentials and
/// logs in `dir` and pid files in `pids`, on `api` (port 0: a free one), for Services in
/// `service_cidr`; returns once kube-apiserver is ready. With `egress`, its connections to
/// the cluster (pods, Services, kubelets) go as that egress selector configuration says.
pub async fn start_api_server(
    bin: &Path,
    dir: &Path,
    pids: PathBuf,
    api: SocketAddr,
    service_cidr: &str,
    egress: Option<&Path>,
) -> Result<ApiServer> {
    check_binaries(bin, &BINARIES[..2])?;
    credentials::private_dir(dir)?;
    let ip = api.ip();
    let api = SocketAddr::new(
        ip,
        match api.port() {
            0 => free_port(ip)?,
            port => port,
        },
    );
    let url = format!("https://{api}");
    let hosts = [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    .iter()
    .map(|h| (*h).to_owned())
    .chain([ip.to_string(), first_service_ip(service_cidr)?])
    .collect::<Vec<_>>();
    let creds = credentials::ensure(dir, &url, &hosts)?;
    // kube-apiserver reaches the lab's kubelet API (logs, exec) on loopback, with a certificate
    // of the lab's CA, and checks the kubelet's (see `kubelet::api`)
    let (kubelet_client_cert, kubelet_client_key) =
        credentials::issue_mutual_tls(dir, "apiserver-kubelet-client", &[])?;
    let (sa_key, sa_pub) = credentials::service_account_key(dir)?;
    let tokens = dir.join("tokens.csv");
    credentials::write_file(
        &tokens,
        format!("{},admin,svcnet-lab-admin,system:masters\n", creds.token).as_bytes(),
        credentials::PRIVATE_FILE,
    )?;
    let path = |p: &Path| p.to_string_lossy().into_owned();
    let mut processes = Processes {
        children: Vec::new(),
        pid_dir: pids,
        log_dir: dir.to_owned(),
    };

    // etcd holds every object, Secrets included: it answers only clients with a certificate
    // of the lab's CA (kube-apiserver), never another local user on loopback
    let (etcd_cert, etcd_key) = credentials::issue_mutual_tls(dir, "etcd", &[ip.to_string(), "localhost".to_owned()])?;
    let (client_cert, client_key) = credentials::issue_mutual_tls(dir, "etcd-client", &[])?;
    let ca = dir.join("ca.crt");
    let etcd_url = format!("https://{ip}:{}", free_port(ip)?);
    let peer_url = format!("https://{ip}:{}", free_port(ip)?);
    processes.spawn(
        "etcd",
        &bin.join("etcd"),
        &[
            format!("--data-dir={}", path(&dir.join("etcd"))),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=default={peer_url}"),
            "--client-cert-auth".to_owned(),
            format!("--trusted-ca-file={}", path(&ca)),
            format!("--cert-file={}", path(&etcd_cert)),
            format!("--key-file={}", path(&etcd_key)),
            "--peer-client-cert-auth".to_owned(),
            format!("--peer-trusted-ca-file={}", path(&ca)),
            format!("--peer-cert-file={}", path(&etcd_cert)),
            format!("--peer-key-file={}", path(&etcd_key)),
            "--log-level=warn".to_owned(),
        ],
    )?;
    let egress = egress.map(|config| format!("--egress-selector-config-file={}", path(config)));
    processes.spawn(
        "kube-apiserver",
        &bin.join("kube-apiserver"),
        &[
            format!("--etcd-servers={etcd_url}"),
            format!("--etcd-cafile={}", path(&ca)),
            format!("--etcd-certfile={}", path(&client_cert)),
            format!("--etcd-keyfile={}", path(&client_key)),
            format!("--bind-address={ip}"),
            // the lab's API server is on loopback, which pods cannot reach and the endpoint
            // reconciler refuses: the `kubernetes` Service gets no endpoints
            format!("--advertise-address={ip}"),
            "--endpoint-reconciler-type=none".to_owned(),
            format!("--secure-port={}", api.port()),
            format!("--tls-cert-file={}", path(&dir.join("apiserver.crt"))),
            format!("--tls-private-key-file={}", path(&dir.join("apiserver.key"))),
            format!("--client-ca-file={}", path(&dir.join("ca.crt"))),
            format!("--token-auth-file={}", path(&tokens)),
            "--authorization-mode=RBAC".to_owned(),
            format!("--service-cluster-ip-range={service_cidr}"),
            "--service-account-issuer=https://kubernetes.default.svc".to_owned(),
            format!("--service-account-key-file={}", path(&sa_pub)),
            format!("--service-account-signing-key-file={}", path(&sa_key)),
            format!("--cert-dir={}", path(&dir.join("certs"))),
            format!("--kubelet-client-certificate={}", path(&kubelet_client_cert)),
            format!("--kubelet-client-key={}", path(&kubelet_client_key)),
            format!("--kubelet-certificate-authority={}", path(&dir.join("ca.crt"))),
            format!(
                "--kubelet-preferred-address-types={}",
                crate::lab::kubelet::api::ADDRESS_TYPE
            ),
        ]
        .into_iter()
        .chain(egress)
        .collect::<Vec<_>>(),
    )?;
    wait_ready(&creds.kubeconfig, api, &mut processes).await?;
    Ok(ApiServer {
        processes,
        kubeconfig: creds.kubeconfig,
        url,
        address: api,
        service_account_key: sa_key,
        ca,
    })
}

pub async fn start(settings: Settings<'_>) -> Result<Started> {
    let bin = &settings.upstream_bin;
    check_binaries(bin, &BINARIES)?;
    let dir = settings.state.join("upstream");
    let service_cidrs: Vec<String> = settings.plan.service_cidrs().iter().map(ToString::to_string).collect();
    let service_cidrs = service_cidrs.join(",");
    let ApiServer {
        mut processes,
        kubeconfig,
        url,
        address,
        service_account_key: sa_key,
        ca,
    } = {
        credentials::private_dir(&dir)?;
        let egress = crate::lab::egress::write_config(&dir)?;
        start_api_server(
            bin,
            &dir,
            pid_dir(settings.state),
            settings.api,
            &service_cidrs,
            Some(&egress),
        )
        .await?
    };
    let path = |p: &Path| p.to_string_lossy().into_owned();
    processes.spawn(
        "kube-controller-manager",
        &bin.join("kube-controller-manager"),
        &[
            format!("--kubeconfig={}", path(&kubeconfig)),
            format!("--controllers={CONTROLLERS}"),
            "--leader-elect=false".to_owned(),
            "--secure-port=0".to_owned(),
            format!("--service-account-private-key-file={}", path(&sa_key)),
            format!("--root-ca-file={}", path(&ca)),
            format!("--service-cluster-ip-range={service_cidrs}"),
        ],
    )?;
    let client = client_for(&kubeconfig).await?;
    wait_for_default_account(&client, &mut processes).await?;
    let proxy_kubeconfig = proxy_credentials(&client, &dir, &url).await?;
    let kube_proxy_kubeconfig = kube_proxy_credentials(&client, &dir, &url).await?;
    Ok(Started {
        kube_proxy_kubeconfig,
        api_server: url,
        address,
        kubeconfig,
        proxy_kubeconfig,
        running: Running::Upstream(processes),
    })
}

/// The first address of `service_cidr`: the `kubernetes` Service's.
fn first_service_ip(service_cidr: &str) -> Result<String> {
    // of the first range (the default family's) when several are given
    let first = service_cidr.split(',').next().unwrap_or_default();
    let net: ipnet::Ipv4Net = first.parse().context("an IPv4 service CIDR")?;
    Ok(std::net::Ipv4Addr::from(u32::from(net.network()) + 1).to_string())
}

/// Waits until kube-apiserver reports ready (it bootstraps RBAC roles and system namespaces):
/// first until it accepts connections (quietly), then `/readyz` every half second (each
/// not-yet-ready answer is logged by the client).
async fn wait_ready(kubeconfig: &Path, address: SocketAddr, processes: &mut Processes) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while tokio::net::TcpStream::connect(address).await.is_err() {
        processes.check_alive()?;
        if tokio::time::Instant::now() > deadline {
            bail!(
                "kube-apiserver did not listen within 120 s:\n{}",
                processes.log_tail("kube-apiserver")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let client = client_for(kubeconfig).await?;
    while tokio::time::Instant::now() < deadline {
        processes.check_alive()?;
        let request = http::Request::get("/readyz").body(Vec::new())?;
        if client.request_text(request).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!(
        "kube-apiserver was not ready within 120 s:\n{}",
        processes.log_tail("kube-apiserver")
    )
}

/// Pods cannot be created before their namespace's `default` ServiceAccount exists (upstream's
/// admission); the controller manager creates it.
async fn wait_for_default_account(client: &Client, processes: &mut Processes) -> Result<()> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    for _ in 0..600 {
        processes.check_alive()?;
        if accounts.get_opt("default").await.ok().flatten().is_some() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!(
        "the controller manager did not create the default ServiceAccount within 120 s:\n{}",
        processes.log_tail("kube-controller-manager")
    )
}

/// The objects of the proxy manifest that give the agent its identity and permissions.
fn manifest_rbac() -> Result<(ServiceAccount, ClusterRole, ClusterRoleBinding)> {
    use serde::Deserialize;
    let (mut account, mut role, mut binding) = (None, None, None);
    for document in serde_yaml_ng::Deserializer::from_str(PROXY_MANIFEST) {
        let value = serde_json::Value::deserialize(document)?;
        match value["kind"].as_str() {
            Some("ServiceAccount") => account = Some(serde_json::from_value(value)?),
            Some("ClusterRole") => role = Some(serde_json::from_value(value)?),
            Some("ClusterRoleBinding") => binding = Some(serde_json::from_value(value)?),
            _ => {}
        }
    }
    match (account, role, binding) {
        (Some(a), Some(r), Some(b)) => Ok((a, r, b)),
        _ => bail!("deploy/svcnet-proxy.yaml lacks its ServiceAccount, ClusterRole or ClusterRoleBinding"),
    }
}

async fn create<K>(api: Api<K>, object: &K) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    match api.create(&PostParams::default(), object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Applies the manifest's ServiceAccount, ClusterRole and binding, and writes the agents'
/// kubeconfig with a token of that account.
async fn proxy_credentials(client: &Client, dir: &Path, url: &str) -> Result<PathBuf> {
    let (account, role, binding) = manifest_rbac()?;
    let namespace = account
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| PROXY_NAMESPACE.to_owned());
    let name = account
        .metadata
        .name
        .clone()
        .unwrap_or_else(|| PROXY_ACCOUNT.to_owned());
    create(Api::namespaced(client.clone(), &namespace), &account)
        .await
        .context("creating the agent's ServiceAccount")?;
    create(Api::all(client.clone()), &role)
        .await
        .context("creating the agent's ClusterRole")?;
    create(Api::all(client.clone()), &binding)
        .await
        .context("binding the agent's ClusterRole")?;
    account_kubeconfig(client, &dir.join("proxy-kubeconfig"), url, &namespace, &name).await
}

/// kube-proxy's identity as kubeadm gives it: ServiceAccount `kube-system/kube-proxy` bound to
/// upstream's `system:node-proxier` role; writes its kubeconfig.
async fn kube_proxy_credentials(client: &Client, dir: &Path, url: &str) -> Result<PathBuf> {
    let account: ServiceAccount = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "kube-proxy", "namespace": "kube-system" },
    }))?;
    let binding: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "svcnet-lab:kube-proxy" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:node-proxier" },
        "subjects": [{ "kind": "ServiceAccount", "name": "kube-proxy", "namespace": "kube-system" }],
    }))?;
    create(Api::namespaced(client.clone(), "kube-system"), &account)
        .await
        .context("creating kube-proxy's ServiceAccount")?;
    create(Api::all(client.clone()), &binding)
        .await
        .context("binding kube-proxy's role")?;
    account_kubeconfig(
        client,
        &dir.join("kube-proxy-kubeconfig"),
        url,
        "kube-system",
        "kube-proxy",
    )
    .await
}

/// Asks for a token of ServiceAccount `namespace/name` and writes a kubeconfig with it to `path`.
async fn account_kubeconfig(client: &Client, path: &Path, url: &str, namespace: &str, name: &str) -> Result<PathBuf> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(PROXY_TOKEN_SECONDS),
            ..Default::default()
        }),
        ..Default::default()
    };
    let token = accounts
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .with_context(|| format!("asking for a token of {namespace}/{name}"))?
        .status
        .and_then(|s| s.token)
        .context("the token request was answered without a token")?;
    let user = format!("{namespace}:{name}");
    credentials::write_kubeconfig(path, url, &path.with_file_name("ca.crt"), &user, &token)?;
    Ok(path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::plan::SERVICE_CIDR;

    #[test]
    fn the_manifest_gives_the_agent_an_account_a_role_and_a_binding_between_them() {
        let (account, role, binding) = manifest_rbac().unwrap();
        assert_eq!(account.metadata.name.as_deref(), Some(PROXY_ACCOUNT));
        assert_eq!(binding.role_ref.name, role.metadata.name.clone().unwrap());
        let subject = &binding.subjects.as_ref().unwrap()[0];
        assert_eq!(
            (
                subject.kind.as_str(),
                subject.name.as_str(),
                subject.namespace.as_deref()
            ),
            ("ServiceAccount", PROXY_ACCOUNT, Some(PROXY_NAMESPACE))
        );
    }

    #[test]
    fn the_kubernetes_service_address_is_the_range_s_first() {
        assert_eq!(first_service_ip(SERVICE_CIDR).unwrap(), "10.96.0.1");
        assert_eq!(first_service_ip("10.96.0.0/16,fd00:96::/108").unwrap(), "10.96.0.1");
    }
}
