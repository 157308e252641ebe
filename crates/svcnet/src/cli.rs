//! Argument parsing and dispatch to the subcommands.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "svcnet",
    version,
    about = "Kubernetes Service networking: control plane, dataplane, node agent and lab"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Work with Service manifests offline.
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Test servers and clients standing in for upstream's agnhost image.
    #[command(subcommand)]
    Agnhost(AgnhostCommand),
    /// The Kubernetes-compatible API server (HTTPS, bearer token, embedded store, controllers).
    Apiserver {
        /// Where the store, credentials and kubeconfig live (created if missing).
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value = "127.0.0.1:6443")]
        listen: std::net::SocketAddr,
        /// Service CIDRs, one per IP family, the first being the primary.
        #[arg(long, default_value = "10.96.0.0/12", value_delimiter = ',')]
        service_cluster_ip_range: Vec<ipnet::IpNet>,
        #[arg(long, default_value = "30000-32767")]
        service_node_port_range: String,
    },
    /// The node agent: watches Services, EndpointSlices and this Node, and programs nftables.
    Proxy(ProxyArgs),
    /// Cluster DNS: watches Services and EndpointSlices and answers for the cluster domain
    /// per Kubernetes' DNS specification (the lab's kube-dns).
    Dns {
        /// [default: $KUBECONFIG or ~/.kube/config, or the in-cluster account]
        #[arg(long)]
        kubeconfig: Option<std::path::PathBuf>,
        #[arg(long, default_value = "0.0.0.0:53")]
        listen: std::net::SocketAddr,
        #[arg(long, default_value = "cluster.local")]
        cluster_domain: String,
        /// Stop after this many seconds.
        #[arg(long, default_value_t = 7 * 24 * 3600)]
        exit_after_secs: u64,
    },
    /// Inspect the dataplane.
    #[command(subcommand)]
    Dataplane(DataplaneCommand),
    /// Why FROM does or does not reach TO: the Service and its endpoints as the API has
    /// them, the path through the node's rules to the verdict, and the kernel's state.
    Explain(ExplainArgs),
    /// Benchmarks; each prints JSON (needs root; runs in its own network namespaces).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// A multi-node cluster on this machine, in network namespaces (needs root).
    #[command(subcommand)]
    Lab(LabCommand),
}

#[derive(clap::Args)]
struct ExplainArgs {
    /// The client: `pod/NAME` (or `NAME`), `node/NAME`, `external` (the lab's external host)
    /// or an address.
    from: String,
    /// The destination: `svc/NAME[:PORT]` (a port name or number) or `ADDRESS:PORT`.
    to: String,
    /// The namespace of a pod or service named in FROM or TO.
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// A lab by name (its API server, nodes, CIDRs and external host).
    #[arg(long, conflicts_with = "kubeconfig")]
    lab: Option<String>,
    /// Any cluster's kubeconfig (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// The node an outside client's packet enters (default: the node it is sent to).
    #[arg(long)]
    node: Option<String>,
    /// Without --lab: the network namespace holding that node's rules (default: this one).
    #[arg(long)]
    netns: Option<String>,
    /// tcp, udp or sctp (default: the service port's, or tcp).
    #[arg(long)]
    protocol: Option<String>,
    /// Without --lab: the proxy's --cluster-cidr.
    #[arg(long, value_delimiter = ',', default_value = "10.244.0.0/16")]
    cluster_cidr: Vec<ipnet::IpNet>,
    /// Without --lab: the proxy's --service-cidr.
    #[arg(long, value_delimiter = ',', default_value = "10.96.0.0/12")]
    service_cidr: Vec<ipnet::IpNet>,
    /// Without --lab: the proxy's --nodeport-addresses.
    #[arg(long, value_delimiter = ',')]
    nodeport_addresses: Vec<ipnet::IpNet>,
    /// Without --lab: the proxy masquerades all traffic to cluster IPs.
    #[arg(long)]
    masquerade_all: bool,
    /// Also send one real connection from FROM (labs only) and trace it with nftables'
    /// trace facility (needs `nft`), to compare the kernel's path with the walk.
    #[arg(long)]
    probe: bool,
    /// `text` or `json`.
    #[arg(short = 'o', long, default_value = "text")]
    output: String,
}

#[derive(clap::Args)]
struct ProxyArgs {
    /// Kubeconfig to use (default: in-cluster configuration or $KUBECONFIG).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// This node's name (default: the config's hostnameOverride, else the hostname).
    #[arg(long)]
    node_name: Option<String>,
    /// A KubeProxyConfiguration file (kubeproxy.config.k8s.io v1alpha1/v1alpha2); the
    /// settings it gives override the flags.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Program this network namespace instead of the agent's own.
    #[arg(long)]
    netns: Option<String>,
    /// Pod CIDRs (traffic from them is in-cluster).
    #[arg(long, value_delimiter = ',')]
    cluster_cidr: Vec<ipnet::IpNet>,
    /// Service CIDRs (unallocated addresses there are dropped).
    #[arg(long, value_delimiter = ',')]
    service_cidr: Vec<ipnet::IpNet>,
    /// Masquerade all traffic to cluster IPs.
    #[arg(long)]
    masquerade_all: bool,
    /// CIDRs whose node addresses serve NodePorts (default: all).
    #[arg(long, value_delimiter = ',')]
    nodeport_addresses: Vec<ipnet::IpNet>,
    /// Buckets of each Maglev table (Services annotated `svcnet.io/load-balancing: maglev`):
    /// a prime; more buckets move fewer extra connections when an endpoint changes.
    #[arg(long, default_value_t = svcnet_dataplane::maglev::TABLE_SIZE, value_parser = maglev_table_size)]
    maglev_table_size: u32,
    #[arg(long, default_value_t = 1000)]
    min_sync_period_ms: u64,
    #[arg(long, default_value_t = 30000)]
    sync_period_ms: u64,
    /// Where /healthz, /livez and /metrics are served.
    #[arg(long, default_value = "127.0.0.1:10256")]
    status_bind_address: std::net::SocketAddr,
    /// How rules reach the kernel: netlink (no external program) or nft-text (pipes
    /// scripts to `nft -f -`, a debugging aid).
    #[arg(long, default_value = "netlink")]
    backend: svcnet_dataplane::backend::BackendKind,
}

#[derive(Subcommand)]
enum DataplaneCommand {
    /// Print, as an `nft -f` script, the rules `svcnet proxy` with the same flags would program
    /// on this node now (lists Services, EndpointSlices and the Node once; changes nothing).
    Dump(ProxyArgs),
}

/// A container's command and who it runs as, for the sandbox's two stages.
#[derive(clap::Args, Debug)]
struct SandboxedCommand {
    #[arg(long)]
    uid: u32,
    #[arg(long)]
    gid: u32,
    /// Its standard streams are a terminal to take as controlling terminal.
    #[arg(long)]
    tty: bool,
    /// It joins a running container (its root and /proc are there) instead of starting one.
    #[arg(long)]
    join: bool,
    #[arg(last = true, required = true)]
    command: Vec<std::ffi::OsString>,
}

#[derive(Subcommand)]
enum LabCommand {
    /// Start a lab: API server on loopback, K nodes and an external host, pods as processes.
    Up {
        #[arg(long, default_value = crate::lab::commands::DEFAULT_NAME)]
        name: String,
        #[arg(long, default_value_t = 2)]
        nodes: usize,
        /// Deploy the demo app and show ClusterIP and NodePort traffic.
        #[arg(long)]
        demo: bool,
        /// Where the API server listens (port 0: any free port).
        #[arg(long, default_value = "127.0.0.1:0")]
        api_listen: std::net::SocketAddr,
        /// svcnet's API server, or upstream's etcd, kube-apiserver and kube-controller-manager
        /// (built by `cargo xtask upstream`).
        #[arg(long, value_enum, default_value = "svcnet")]
        control_plane: crate::lab::control_plane::ControlPlane,
        /// Where upstream's binaries are [default: target/upstream/bin beside this binary].
        #[arg(long)]
        upstream_bin: Option<std::path::PathBuf>,
        /// The proxy on every node: `svcnet proxy`, or upstream's kube-proxy (nftables mode).
        #[arg(long, value_enum, default_value = "svcnet")]
        proxy: crate::lab::supervisor::NodeProxy,
        /// Zones the nodes are spread over, in turn (`a,b`: node-1 in a, node-2 in b, node-3
        /// in a...), as their `topology.kubernetes.io/zone` label.
        #[arg(long, value_delimiter = ',')]
        zones: Vec<String>,
        /// The proxies' nodePortAddresses: CIDRs whose node addresses serve NodePorts
        /// [default: every node address].
        #[arg(long, value_delimiter = ',')]
        nodeport_addresses: Vec<ipnet::IpNet>,
        /// Leave out the cluster DNS (kube-system/kube-dns).
        #[arg(long)]
        no_dns: bool,
        /// `dual`: IPv6 addresses, pod CIDRs and a Service range beside the IPv4 ones.
        #[arg(long, value_enum, default_value = "ipv4")]
        ip_family: crate::lab::plan::IpFamily,
    },
    /// Stop a lab and remove every namespace, process and file it made.
    Down {
        #[arg(long, default_value = crate::lab::commands::DEFAULT_NAME)]
        name: String,
    },
    /// Show a lab's nodes and pods.
    Status {
        #[arg(long, default_value = crate::lab::commands::DEFAULT_NAME)]
        name: String,
    },
    /// Run a command in a pod's network namespace.
    Exec {
        pod: String,
        #[arg(short = 'n', long = "namespace", default_value = "default")]
        namespace: String,
        #[arg(long, default_value = crate::lab::commands::DEFAULT_NAME)]
        name: String,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Run a command on the host outside the cluster.
    External {
        #[arg(long, default_value = crate::lab::commands::DEFAULT_NAME)]
        name: String,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Change a node's address (as a new DHCP lease would); its Node object follows.
    Node {
        /// The node (`node-1`, …).
        node: String,
        /// Its new address, a free host address of the lab's switch subnet 10.240.0.0/24.
        #[arg(long)]
        ip: std::net::Ipv4Addr,
        #[arg(long, default_value = crate::lab::commands::DEFAULT_NAME)]
        name: String,
    },
    /// Holds a pod's PID, IPC and UTS namespaces (the kubelet's helper, not for direct use).
    #[command(hide = true)]
    SandboxInit {
        #[arg(long)]
        hostname: String,
        #[arg(long)]
        dir: std::path::PathBuf,
    },
    /// A pod's PID 1, reaping its orphans (the kubelet's helper, not for direct use).
    #[command(hide = true)]
    SandboxReaper,
    /// The second stage of `sandbox`, inside the pod's PID namespace (not for direct use).
    #[command(hide = true)]
    SandboxExec {
        #[command(flatten)]
        run: SandboxedCommand,
    },
    /// Runs a pod's container process in its sandbox (the kubelet's helper, not for direct use).
    #[command(hide = true)]
    Sandbox {
        #[arg(long)]
        dir: std::path::PathBuf,
        /// The container's directory (its mounts, and the PID holding its root when running).
        #[arg(long)]
        container_dir: std::path::PathBuf,
        /// The working directory in the container.
        #[arg(long, default_value = "/")]
        workdir: String,
        #[command(flatten)]
        run: SandboxedCommand,
    },
    /// The background process `up` starts (not for direct use).
    #[command(hide = true)]
    Daemon {
        #[arg(long)]
        name: String,
        #[arg(long)]
        nodes: usize,
        #[arg(long)]
        api_listen: std::net::SocketAddr,
        #[arg(long, value_enum)]
        control_plane: crate::lab::control_plane::ControlPlane,
        #[arg(long)]
        upstream_bin: std::path::PathBuf,
        #[arg(long, value_enum)]
        proxy: crate::lab::supervisor::NodeProxy,
        #[arg(long, value_delimiter = ',')]
        zones: Vec<String>,
        #[arg(long, value_delimiter = ',')]
        nodeport_addresses: Vec<ipnet::IpNet>,
        #[arg(long)]
        no_dns: bool,
        #[arg(long, value_enum)]
        ip_family: crate::lab::plan::IpFamily,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Sync speed: full and incremental syncs, peak RSS, and the kube-proxy layout baseline.
    Dataplane {
        #[arg(long, default_value_t = 1000)]
        services: u32,
        #[arg(long, default_value_t = 10)]
        endpoints_per_service: u32,
        /// Incremental changes of each kind to time.
        #[arg(long, default_value_t = 50)]
        iterations: u32,
        /// Backends to measure, side by side (netlink, nft-text).
        #[arg(long, value_delimiter = ',', default_value = "nft-text,netlink")]
        backend: Vec<svcnet_dataplane::backend::BackendKind>,
        /// The baseline script (default: shared/bench/kube-proxy-layout.py beside the repository).
        #[arg(long)]
        baseline: Option<PathBuf>,
        /// Skip the baseline.
        #[arg(long)]
        no_baseline: bool,
        /// Also measure with every endpoint zone-hinted and this many Maglev services, and
        /// report the ratios to the plain run.
        #[arg(long, default_value_t = 0)]
        maglev_services: u32,
    },
    /// The API server under load: create rates, watch delivery, kubectl get, memory.
    Apiserver {
        #[arg(long, default_value_t = 10000)]
        services: u32,
        /// Endpoints in all, spread over one EndpointSlice per service.
        #[arg(long, default_value_t = 100000)]
        endpoints: u32,
        /// Watches on all Services open during the load (node agents).
        #[arg(long, default_value_t = 1)]
        watchers: u32,
        /// The servers measured, one after the other (`svcnet,upstream`: kube-apiserver with
        /// etcd beside ours).
        #[arg(long, value_enum, value_delimiter = ',', default_value = "svcnet")]
        servers: Vec<crate::bench::apiserver::ServerKind>,
        /// Where upstream's binaries are [default: target/upstream/bin beside this binary].
        #[arg(long)]
        upstream_bin: Option<std::path::PathBuf>,
    },
    /// Node agents end to end in a lab: load, convergence, programming latency on every
    /// node, each agent's memory and CPU.
    Programming {
        #[arg(long, default_value_t = 1000)]
        services: u32,
        #[arg(long, default_value_t = 1)]
        endpoints_per_service: u32,
        #[arg(long, default_value_t = 1)]
        nodes: usize,
        #[arg(long, default_value_t = 100)]
        samples: u32,
        /// The lab's control plane (`upstream`: kube-apiserver and kube-controller-manager).
        #[arg(long, value_enum, default_value = "svcnet")]
        control_plane: crate::lab::control_plane::ControlPlane,
        /// The proxies measured, one after the other (e.g. `svcnet,kube-proxy`).
        #[arg(long, value_enum, value_delimiter = ',', default_value = "svcnet")]
        proxies: Vec<crate::lab::supervisor::NodeProxy>,
        /// Where upstream's binaries are [default: target/upstream/bin beside this binary].
        #[arg(long)]
        upstream_bin: Option<std::path::PathBuf>,
    },
    /// Packet cost: connection rate and first-packet latency through a ClusterIP.
    Datapath {
        /// Services loaded for the "many services" case.
        #[arg(long, default_value_t = 20000)]
        services: u32,
        #[arg(long, default_value_t = 2000)]
        requests: u32,
        /// Measure these proxies in labs instead (`svcnet,kube-proxy`: side by side, each in a
        /// one-node lab of its own, Services loaded through the API).
        #[arg(long, value_enum, value_delimiter = ',')]
        proxies: Vec<crate::lab::supervisor::NodeProxy>,
        /// The labs' control plane (with --proxies).
        #[arg(long, value_enum, default_value = "svcnet")]
        control_plane: crate::lab::control_plane::ControlPlane,
        /// Where upstream's binaries are [default: target/upstream/bin beside this binary].
        #[arg(long)]
        upstream_bin: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
enum AgnhostCommand {
    /// Serve HTTP (/hostname, /clientip, /echo?msg=) and UDP (hostname, clientip, echo X).
    Netexec {
        /// The name `/hostname` answers (default: the machine's hostname).
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        http_port: Option<u16>,
        #[arg(long)]
        udp_port: Option<u16>,
        /// Stop after this many seconds.
        #[arg(long, default_value_t = 3600)]
        exit_after: u64,
    },
    /// The lab's nginx image: a welcome page on every path.
    Nginx {
        #[arg(long, default_value_t = 80)]
        port: u16,
        /// Stop after this many seconds.
        #[arg(long, default_value_t = 3600)]
        exit_after: u64,
    },
    /// One DNS query to the resolv.conf nameserver; prints the status and the records.
    Dig {
        name: String,
        #[arg(long = "type", default_value = "A")]
        record_type: String,
        /// Ask this server instead (ADDRESS:PORT).
        #[arg(long)]
        server: Option<std::net::SocketAddr>,
    },
    /// Ask a netexec server; prints one line per answer or `ERROR <kind>`.
    Client {
        /// ADDRESS:PORT to ask.
        target: std::net::SocketAddr,
        #[arg(long)]
        udp: bool,
        #[arg(long, default_value = "/hostname")]
        request: String,
        #[arg(long, default_value_t = 1)]
        count: u32,
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
        /// Keep one connection open this long, asking every --interval-ms.
        #[arg(long)]
        hold_ms: Option<u64>,
        #[arg(long, default_value_t = 50)]
        interval_ms: u64,
        /// Local UDP port to send from.
        #[arg(long)]
        local_port: Option<u16>,
        /// Print latency statistics (JSON) over --count new connections.
        #[arg(long)]
        stats: bool,
        /// Open the --count TCP connections from consecutive local ports starting here and
        /// print `PORT ANSWER` for each (the same flows on every run).
        #[arg(long)]
        source_ports: Option<u16>,
    },
}

#[derive(Subcommand)]
enum ServiceCommand {
    /// Default, allocate and validate Service manifests as the API server would, in order, on
    /// an empty cluster; print each stored Service (YAML) or the Status a client would get.
    Check {
        /// YAML or JSON files; `-` reads standard input. Multi-document YAML is accepted.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Service CIDRs, one per IP family, the first being the primary.
        #[arg(long, default_value = "10.96.0.0/12", value_delimiter = ',')]
        service_cluster_ip_range: Vec<ipnet::IpNet>,
        #[arg(long, default_value = "30000-32767")]
        service_node_port_range: String,
    },
}

/// Whether `args` (without the program name) is a valid `svcnet` command line; the error is
/// clap's message. For checking manifests that run svcnet.
pub fn check_args(args: &[&str]) -> Result<(), String> {
    Cli::try_parse_from(std::iter::once("svcnet").chain(args.iter().copied()))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    // structured logs on stderr; RUST_LOG overrides the level
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let result = match cli.command {
        Command::Service(ServiceCommand::Check {
            files,
            service_cluster_ip_range,
            service_node_port_range,
        }) => crate::service_check::run(&files, &service_cluster_ip_range, &service_node_port_range),
        Command::Agnhost(AgnhostCommand::Netexec {
            name,
            http_port,
            udp_port,
            exit_after,
        }) => crate::agnhost::netexec::run(crate::agnhost::netexec::Options {
            name: name.unwrap_or_else(hostname),
            http_port,
            udp_port,
            exit_after: std::time::Duration::from_secs(exit_after),
        })
        .map(|()| ExitCode::SUCCESS),
        Command::Apiserver {
            data_dir,
            listen,
            service_cluster_ip_range,
            service_node_port_range,
        } => run_apiserver(data_dir, listen, service_cluster_ip_range, &service_node_port_range),
        Command::Proxy(args) => {
            let (config, options) = proxy_options(args);
            run_proxy(config, options)
        }
        Command::Dns {
            kubeconfig,
            listen,
            cluster_domain,
            exit_after_secs,
        } => run_dns(crate::dns::Options {
            kubeconfig,
            listen,
            cluster_domain,
            exit_after: std::time::Duration::from_secs(exit_after_secs),
        }),
        Command::Explain(args) => explain(args),
        Command::Dataplane(DataplaneCommand::Dump(args)) => {
            let (config, options) = proxy_options(args);
            run_dump(config, options)
        }
        Command::Bench(BenchCommand::Dataplane {
            services,
            endpoints_per_service,
            iterations,
            backend,
            baseline,
            no_baseline,
            maglev_services,
        }) => {
            let baseline = if no_baseline {
                None
            } else {
                baseline.or_else(crate::bench::dataplane::default_baseline)
            };
            if !no_baseline && baseline.is_none() {
                eprintln!("svcnet: baseline script not found; give --baseline PATH or --no-baseline");
                return ExitCode::from(2);
            }
            crate::bench::dataplane::run(&crate::bench::dataplane::Options {
                services,
                endpoints_per_service,
                iterations,
                backends: backend,
                baseline,
                maglev_services,
            })
            .map(|v| {
                println!("{}", serde_json::to_string_pretty(&v).expect("JSON"));
                ExitCode::SUCCESS
            })
        }
        Command::Bench(BenchCommand::Apiserver {
            services,
            endpoints,
            watchers,
            servers,
            upstream_bin,
        }) => crate::bench::apiserver::run(&crate::bench::apiserver::Options {
            services,
            endpoints,
            watchers,
            servers,
            upstream_bin: upstream_bin.unwrap_or_else(crate::lab::control_plane::upstream::default_bin_dir),
        })
        .map(|v| {
            println!("{}", serde_json::to_string_pretty(&v).expect("JSON"));
            ExitCode::SUCCESS
        }),
        Command::Bench(BenchCommand::Programming {
            services,
            endpoints_per_service,
            nodes,
            samples,
            control_plane,
            proxies,
            upstream_bin,
        }) => crate::bench::programming::run(&crate::bench::programming::Options {
            services,
            endpoints_per_service,
            nodes,
            samples,
            control_plane,
            proxies,
            upstream_bin: upstream_bin.unwrap_or_else(crate::lab::control_plane::upstream::default_bin_dir),
        })
        .map(|v| {
            println!("{}", serde_json::to_string_pretty(&v).expect("JSON"));
            ExitCode::SUCCESS
        }),
        Command::Bench(BenchCommand::Datapath {
            services,
            requests,
            proxies,
            control_plane,
            upstream_bin,
        }) => {
            let result = if proxies.is_empty() {
                crate::bench::datapath::run(&crate::bench::datapath::Options { services, requests })
            } else {
                crate::bench::datapath_lab::run(&crate::bench::datapath_lab::Options {
                    services,
                    requests,
                    control_plane,
                    proxies,
                    upstream_bin: upstream_bin.unwrap_or_else(crate::lab::control_plane::upstream::default_bin_dir),
                })
            };
            result.map(|v| {
                println!("{}", serde_json::to_string_pretty(&v).expect("JSON"));
                ExitCode::SUCCESS
            })
        }
        Command::Lab(command) => run_lab(command),
        Command::Agnhost(AgnhostCommand::Nginx { port, exit_after }) => {
            crate::agnhost::nginx::run(port, std::time::Duration::from_secs(exit_after)).map(|()| ExitCode::SUCCESS)
        }
        Command::Agnhost(AgnhostCommand::Dig {
            name,
            record_type,
            server,
        }) => crate::agnhost::dig::run(&name, &record_type, server).map(|()| ExitCode::SUCCESS),
        Command::Agnhost(AgnhostCommand::Client {
            target,
            udp,
            request,
            count,
            timeout_ms,
            hold_ms,
            interval_ms,
            local_port,
            stats,
            source_ports,
        }) => {
            crate::agnhost::client::run(crate::agnhost::client::Options {
                target,
                udp,
                request,
                count,
                timeout: std::time::Duration::from_millis(timeout_ms),
                hold: hold_ms.map(std::time::Duration::from_millis),
                interval: std::time::Duration::from_millis(interval_ms),
                local_port,
                stats,
                source_ports,
            });
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("svcnet: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "netexec".to_owned())
}

fn run_dns(options: crate::dns::Options) -> anyhow::Result<ExitCode> {
    tokio::runtime::Runtime::new()?.block_on(crate::dns::run(options))?;
    Ok(ExitCode::SUCCESS)
}

fn run_apiserver(
    data_dir: PathBuf,
    listen: std::net::SocketAddr,
    service_cidrs: Vec<ipnet::IpNet>,
    node_ports: &str,
) -> anyhow::Result<ExitCode> {
    let config = svcnet_apiserver::Config {
        data_dir,
        listen,
        service_cidrs,
        node_ports: node_ports.parse()?,
        dialer: None,
        pod_logs: None,
        pod_streaming: None,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(svcnet_apiserver::run(config, |addr, kubeconfig| {
        println!("serving on https://{addr}");
        println!("kubeconfig: {}", kubeconfig.display());
    }))?;
    Ok(ExitCode::SUCCESS)
}

fn maglev_table_size(text: &str) -> Result<u32, String> {
    let size: u32 = text.parse().map_err(|e| format!("{e}"))?;
    svcnet_dataplane::maglev::check_table_size(size).map(|()| size)
}

fn proxy_options(a: ProxyArgs) -> (Option<PathBuf>, svcnet_agent::Options) {
    let options = svcnet_agent::Options {
        kubeconfig: a.kubeconfig,
        node_name: a.node_name.unwrap_or_default(),
        netns: a.netns,
        cluster_cidrs: a.cluster_cidr,
        service_cidrs: a.service_cidr,
        config: svcnet_dataplane::model::ProxyConfig {
            masquerade_all: a.masquerade_all,
            node_port_addresses: a.nodeport_addresses,
            maglev_table_size: a.maglev_table_size,
            ..Default::default()
        },
        min_sync_period_ms: a.min_sync_period_ms,
        sync_period_ms: a.sync_period_ms,
        status_bind: Some(a.status_bind_address),
        metrics_bind: None,
        conntrack_timeouts: Vec::new(),
        backend: a.backend,
    };
    (a.config, options)
}

/// Applies a KubeProxyConfiguration file (it wins over flags) and defaults the node name.
fn complete_options(config: Option<PathBuf>, options: &mut svcnet_agent::Options) -> anyhow::Result<()> {
    use anyhow::Context;
    if let Some(path) = config {
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let file = svcnet_agent::config::parse(&text).with_context(|| path.display().to_string())?;
        for field in &file.ignored {
            tracing::warn!(%field, "config field does not apply to svcnet and is ignored");
        }
        options.apply_file(&file);
    }
    if options.node_name.is_empty() {
        options.node_name = hostname();
    }
    Ok(())
}

fn run_dump(config: Option<PathBuf>, mut options: svcnet_agent::Options) -> anyhow::Result<ExitCode> {
    complete_options(config, &mut options)?;
    let runtime = tokio::runtime::Runtime::new()?;
    print!("{}", runtime.block_on(svcnet_agent::dump(&options))?);
    Ok(ExitCode::SUCCESS)
}

fn run_proxy(config: Option<PathBuf>, mut options: svcnet_agent::Options) -> anyhow::Result<ExitCode> {
    complete_options(config, &mut options)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let status = std::sync::Arc::new(std::sync::Mutex::new(Default::default()));
    runtime.block_on(svcnet_agent::run(options, status))?;
    Ok(ExitCode::SUCCESS)
}

fn run_lab(command: LabCommand) -> anyhow::Result<ExitCode> {
    use crate::lab::commands;
    use crate::lab::daemon::DaemonOptions;
    match command {
        LabCommand::Up {
            name,
            nodes,
            demo,
            api_listen,
            control_plane,
            upstream_bin,
            proxy,
            zones,
            nodeport_addresses,
            no_dns,
            ip_family,
        } => commands::up(&commands::UpOptions {
            name,
            nodes,
            zones,
            ip_family,
            demo,
            daemon: DaemonOptions {
                api: api_listen,
                control_plane,
                upstream_bin: upstream_bin.unwrap_or_else(crate::lab::control_plane::upstream::default_bin_dir),
                proxy,
                nodeport_addresses,
                cluster_dns: !no_dns,
            },
        }),
        LabCommand::Down { name } => commands::down(&name),
        LabCommand::Status { name } => commands::status(&name),
        LabCommand::Exec {
            pod,
            namespace,
            name,
            command,
        } => commands::exec(&name, &pod, &namespace, &command),
        LabCommand::External { name, command } => commands::external(&name, &command),
        LabCommand::Node { node, ip, name } => commands::node(&name, &node, ip),
        LabCommand::Sandbox {
            dir,
            container_dir,
            workdir,
            run,
        } => {
            use crate::lab::kubelet::isolation::{Entry, Sandboxed, enter};
            let code = enter(&Sandboxed {
                dir: &dir,
                container_dir: &container_dir,
                workdir: &workdir,
                uid: run.uid,
                gid: run.gid,
                tty: run.tty,
                entry: if run.join { Entry::Join } else { Entry::Start },
                argv: &run.command,
            })?;
            std::process::exit(code)
        }
        LabCommand::SandboxExec { run } => {
            crate::lab::kubelet::isolation::exec_in_pod(run.uid, run.gid, run.tty, run.join, &run.command)?;
            unreachable!("exec_in_pod returns only with an error")
        }
        LabCommand::SandboxInit { hostname, dir } => {
            crate::lab::kubelet::isolation::init_pod(&hostname, &dir).map(|()| ExitCode::SUCCESS)
        }
        LabCommand::SandboxReaper => crate::lab::kubelet::isolation::reap().map(|()| ExitCode::SUCCESS),
        LabCommand::Daemon {
            name,
            nodes,
            api_listen,
            control_plane,
            upstream_bin,
            proxy,
            zones,
            nodeport_addresses,
            no_dns,
            ip_family,
        } => commands::daemon(
            &name,
            nodes,
            &zones,
            ip_family,
            DaemonOptions {
                api: api_listen,
                control_plane,
                upstream_bin,
                proxy,
                nodeport_addresses,
                cluster_dns: !no_dns,
            },
        ),
    }
}

fn explain(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let protocol = match args.protocol.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => None,
        Some("tcp") => Some(svcnet_core::service::model::Protocol::Tcp),
        Some("udp") => Some(svcnet_core::service::model::Protocol::Udp),
        Some("sctp") => Some(svcnet_core::service::model::Protocol::Sctp),
        Some(other) => anyhow::bail!("--protocol {other}: say tcp, udp or sctp"),
    };
    let json = match args.output.as_str() {
        "text" => false,
        "json" => true,
        other => anyhow::bail!("-o {other}: say text or json"),
    };
    crate::explain::run(&crate::explain::Options {
        from: args.from,
        to: args.to,
        namespace: args.namespace,
        lab: args.lab,
        kubeconfig: args.kubeconfig,
        node: args.node,
        netns: args.netns,
        protocol,
        cluster_cidrs: args.cluster_cidr,
        service_cidrs: args.service_cidr,
        nodeport_addresses: args.nodeport_addresses,
        masquerade_all: args.masquerade_all,
        probe: args.probe,
        json,
    })
}
