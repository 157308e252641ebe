//! `svcnet explain --probe`, in a lab: one real connection from the client's namespace,
//! traced in the node's namespace with nftables' trace facility (`meta nftrace set 1` in a
//! table of explain's own, removed afterwards; `nft monitor trace` reports each rule that
//! matched), and compared with the rule walk: the chains the kernel's matching rules were in,
//! in order, and the endpoint conntrack shows it chose, must be one of the walk's paths.

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use svcnet_core::service::model::Protocol;
use svcnet_dataplane::eval::{Evaluation, Fate};
use svcnet_dataplane::netlink::{Netlink, conntrack};

use crate::netns;

/// Explain's own table in the node's namespace, present only while a probe runs.
const TRACE_TABLE: &str = "svcnet-explain-trace";

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    /// `answered`, `refused` or `timed out`.
    pub connection: String,
    /// The endpoint conntrack shows the connection was DNATed to.
    pub endpoint: Option<SocketAddr>,
    /// The kernel's path: each matching rule's chain, in order.
    pub kernel_chains: Vec<String>,
    /// The walk has a path with these chains and this ending.
    pub agrees: bool,
    pub detail: String,
}

/// Removes the trace table when the probe ends, however it ends.
struct TraceTable<'a>(&'a str, &'static str);

impl Drop for TraceTable<'_> {
    fn drop(&mut self) {
        let _ = nft(self.0, &format!("delete table {} {TRACE_TABLE}\n", self.1));
    }
}

fn nft(netns: &str, script: &str) -> Result<()> {
    let mut command = Command::new("nft");
    command
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = netns::spawn_in(netns, &mut command).context("--probe runs `nft` (nftables' command)")?;
    std::io::Write::write_all(child.stdin.as_mut().context("nft's stdin")?, script.as_bytes())?;
    drop(child.stdin.take());
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("nft: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

pub fn run(
    client_netns: &str,
    node_netns: &str,
    source: IpAddr,
    to: SocketAddr,
    protocol: Protocol,
    walk: &Evaluation,
) -> Result<Probe> {
    if protocol != Protocol::Tcp {
        bail!("--probe sends TCP only");
    }
    let family = if to.is_ipv4() { "ip" } else { "ip6" };
    let (dst, port) = (to.ip(), to.port());
    let traced = format!("{family} saddr {source} {family} daddr {dst} tcp dport {port} meta nftrace set 1");
    nft(
        node_netns,
        &format!(
            "table {family} {TRACE_TABLE} {{
  chain prerouting {{ type filter hook prerouting priority -500; {traced}; }}
  chain output {{ type filter hook output priority -500; {traced}; }}
}}
"
        ),
    )?;
    let _table = TraceTable(node_netns, family);
    let mut monitor = Command::new("timeout");
    monitor
        .args(["5", "nft", "monitor", "trace"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut monitor = netns::spawn_in(node_netns, &mut monitor).context("starting `nft monitor trace`")?;
    std::thread::sleep(Duration::from_millis(300));

    let connection = netns::in_netns(client_netns, move || {
        let socket = socket2::Socket::new(socket2::Domain::for_address(to), socket2::Type::STREAM, None)?;
        Ok(match socket.connect_timeout(&to.into(), Duration::from_secs(2)) {
            Ok(()) => {
                let port = socket.local_addr()?.as_socket().map_or(0, |a| a.port());
                ("answered", port)
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => ("refused", 0),
            Err(_) => ("timed out", 0),
        })
    })?;
    std::thread::sleep(Duration::from_millis(300));
    // TERM to `timeout`, which passes it on to nft (a KILL would leave nft running)
    let _ = Command::new("kill").args(["-TERM", &monitor.id().to_string()]).status();
    let mut text = String::new();
    if let Some(mut out) = monitor.stdout.take() {
        let _ = out.read_to_string(&mut text);
    }
    let _ = monitor.wait();

    let kernel_chains = first_packet_chains(&text);
    let endpoint = if connection.1 != 0 {
        let mut nl = Netlink::in_netns(node_netns)?;
        conntrack::list(nl.socket())?
            .into_iter()
            .find(|e| e.orig_src == source && e.orig_sport == connection.1 && e.orig_dst == dst && e.orig_dport == port)
            .filter(|e| e.reply_src != dst)
            .map(|e| SocketAddr::new(e.reply_src, 0))
    } else {
        None
    };
    let ending_fits = |b: &svcnet_dataplane::eval::Branch| match connection.0 {
        "answered" => match (endpoint, b.dnat) {
            (Some(seen), Some(walked)) => seen.ip() == walked.ip(),
            (None, None) => matches!(b.fate, Fate::Delivered | Fate::Forwarded),
            _ => false,
        },
        // refused by a REJECT rule, or by whatever the packet reached
        "refused" => b.fate != Fate::Dropped,
        // dropped, or sent where nothing answers
        _ => b.fate != Fate::Rejected,
    };
    let walked_chains = |b: &svcnet_dataplane::eval::Branch| -> Vec<String> {
        b.steps.iter().filter(|s| s.matched).map(|s| s.chain.clone()).collect()
    };
    let agrees = walk
        .branches
        .iter()
        .any(|b| ending_fits(b) && walked_chains(b) == kernel_chains);
    let detail = if agrees {
        "the kernel's path is one of the walk's".to_owned()
    } else {
        let walked: Vec<String> = walk.branches.iter().map(|b| walked_chains(b).join(" > ")).collect();
        format!(
            "the kernel went {} but the walk has {}",
            kernel_chains.join(" > "),
            walked.join(" | ")
        )
    };
    Ok(Probe {
        connection: connection.0.to_owned(),
        endpoint,
        kernel_chains,
        agrees,
        detail,
    })
}

/// The chains of the rules that matched the first traced packet in our `svcnet` table, in
/// order. `nft monitor trace` prints a line per matching rule:
/// `trace id ID ip svcnet CHAIN rule ... (verdict ...)`.
fn first_packet_chains(text: &str) -> Vec<String> {
    let mut first_id = None;
    let mut chains = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let ["trace", "id", id, _family, table, chain, kind, ..] = words.as_slice() else {
            continue;
        };
        if *first_id.get_or_insert(id.to_string()) != *id {
            continue;
        }
        if *table == "svcnet" && *kind == "rule" {
            // a later packet of the connection may get the same id: it starts again at the
            // first packet's first chain
            if chains.len() > 1 && chains.first().is_some_and(|c: &String| c == chain) {
                break;
            }
            chains.push((*chain).to_owned());
        }
    }
    chains
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_packets_matching_rules_in_our_table() {
        let text = "trace id 1a ip svcnet-explain-trace prerouting rule ip saddr 10.0.0.1 meta nftrace set 1 (verdict continue)
trace id 1a ip svcnet count-prerouting packet: iif \"eth0\" ip saddr 10.0.0.1
trace id 1a ip svcnet count-prerouting rule ct direction original ip daddr . meta l4proto . th dport @service-traffic (verdict continue)
trace id 1a ip svcnet count-prerouting verdict continue
trace id 1a ip svcnet nat-prerouting rule jump services (verdict jump services)
trace id 1a ip svcnet services rule ip daddr . meta l4proto . th dport vmap @service-ips (verdict goto lb-c-2)
trace id 2b ip svcnet count-prerouting rule ct direction original (verdict continue)
trace id 1a ip svcnet count-prerouting rule ct direction original ip daddr . meta l4proto . th dport @service-traffic (verdict continue)
trace id 1a ip svcnet filter-forward rule jump service-endpoints-check (verdict jump service-endpoints-check)
";
        assert_eq!(
            first_packet_chains(text),
            ["count-prerouting", "nat-prerouting", "services"]
        );
    }
}
