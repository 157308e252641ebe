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

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Service(ServiceCommand::Check {
            files,
            service_cluster_ip_range,
            service_node_port_range,
        }) => crate::service_check::run(&files, &service_cluster_ip_range, &service_node_port_range),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("svcnet: {e:#}");
            ExitCode::from(2)
        }
    }
}
