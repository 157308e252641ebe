//! `svcnet proxy --config FILE`: the fields of upstream's KubeProxyConfiguration
//! (`kubeproxy.config.k8s.io`, v1alpha1 and v1alpha2) that apply to this proxy. Parsing is
//! pure; unknown fields are errors (as upstream's strict decoding), upstream fields that do
//! not apply here are accepted and reported, so an existing kube-proxy config works as is.

use std::net::SocketAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum ConfigError {
    #[error("config: {0}")]
    Parse(String),
    #[error("config: {field}: {message}")]
    Invalid { field: String, message: String },
}

fn invalid(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

// upstream's fields are all declared so unknown ones are refused; some are accepted unused
#[allow(dead_code)]
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ModeSection {
    masquerade_all: Option<bool>,
    masquerade_bit: Option<u32>,
    sync_period: Option<String>,
    min_sync_period: Option<String>,
    // iptables-only, accepted and ignored
    localhost_nodeports: Option<bool>,
}

// upstream's fields are all declared so unknown ones are refused; some are accepted unused
#[allow(dead_code)]
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConntrackSection {
    max_per_core: Option<i64>,
    min: Option<i64>,
    tcp_established_timeout: Option<String>,
    tcp_close_wait_timeout: Option<String>,
    tcp_be_liberal: Option<bool>,
    udp_timeout: Option<String>,
    udp_stream_timeout: Option<String>,
}

// upstream's fields are all declared so unknown ones are refused; some are accepted unused
#[allow(dead_code)]
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClientConnection {
    kubeconfig: Option<String>,
    accept_content_types: Option<String>,
    content_type: Option<String>,
    qps: Option<f64>,
    burst: Option<i64>,
}

// upstream's fields are all declared so unknown ones are refused; some are accepted unused
#[allow(dead_code)]
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DetectLocal {
    bridge_interface: Option<String>,
    interface_name_prefix: Option<String>,
    #[serde(rename = "clusterCIDRs")]
    cluster_cidrs: Option<Vec<String>>,
}

// upstream's fields are all declared so unknown ones are refused; some are accepted unused
#[allow(dead_code)]
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawConfig {
    api_version: Option<String>,
    kind: Option<String>,
    mode: Option<String>,
    #[serde(rename = "clusterCIDR")]
    cluster_cidr: Option<String>,
    hostname_override: Option<String>,
    node_port_addresses: Option<Vec<String>>,
    healthz_bind_address: Option<String>,
    metrics_bind_address: Option<String>,
    bind_address: Option<String>,
    bind_address_hard_fail: Option<bool>,
    client_connection: Option<ClientConnection>,
    conntrack: Option<ConntrackSection>,
    nftables: Option<ModeSection>,
    iptables: Option<ModeSection>,
    // v1alpha2 moved these to the top level
    sync_period: Option<String>,
    min_sync_period: Option<String>,
    detect_local_mode: Option<String>,
    detect_local: Option<DetectLocal>,
    // accepted, not used by this proxy
    feature_gates: Option<serde_yaml_ng::Value>,
    logging: Option<serde_yaml_ng::Value>,
    ipvs: Option<serde_yaml_ng::Value>,
    winkernel: Option<serde_yaml_ng::Value>,
    linux: Option<serde_yaml_ng::Value>,
    oom_score_adj: Option<i64>,
    port_range: Option<String>,
    config_sync_period: Option<String>,
    show_hidden_metrics_for_version: Option<String>,
    enable_profiling: Option<bool>,
    ip_families: Option<Vec<String>>,
}

/// The settings a config file gives; `None` where it says nothing.
#[derive(Debug, Default, PartialEq)]
pub struct FileConfig {
    pub kubeconfig: Option<String>,
    pub hostname_override: Option<String>,
    pub cluster_cidrs: Option<Vec<IpNet>>,
    pub node_port_addresses: Option<Vec<IpNet>>,
    pub masquerade_all: Option<bool>,
    /// The mark (1 << masqueradeBit).
    pub masquerade_mark: Option<u32>,
    pub sync_period: Option<Duration>,
    pub min_sync_period: Option<Duration>,
    pub healthz_bind: Option<SocketAddr>,
    pub metrics_bind: Option<SocketAddr>,
    /// Per-namespace conntrack sysctls to set (name under net.netfilter, seconds).
    pub conntrack_timeouts: Vec<(&'static str, u64)>,
    /// Fields given that this proxy does not use.
    pub ignored: Vec<String>,
}

/// Go's `time.ParseDuration` for what configs use: sequences of number+unit (h, m, s, ms, us,
/// µs, ns), with decimals.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        if num_len == 0 {
            return None;
        }
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += value * seconds;
        rest = &rest[unit_len..];
    }
    Some(Duration::from_secs_f64(total))
}

fn duration(field: &str, v: &Option<String>) -> Result<Option<Duration>, ConfigError> {
    v.as_deref()
        .map(|s| parse_duration(s).ok_or_else(|| invalid(field, format!("{s:?} is not a duration (e.g. 30s, 1m0s)"))))
        .transpose()
}

fn cidrs(field: &str, items: impl IntoIterator<Item = String>) -> Result<Vec<IpNet>, ConfigError> {
    items
        .into_iter()
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty())
        .map(|c| c.parse().map_err(|_| invalid(field, format!("{c:?} is not a CIDR"))))
        .collect()
}

fn bind(field: &str, v: &Option<String>) -> Result<Option<SocketAddr>, ConfigError> {
    match v.as_deref().filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| invalid(field, format!("{s:?} is not an address:port"))),
    }
}

/// Parses a KubeProxyConfiguration document.
pub fn parse(text: &str) -> Result<FileConfig, ConfigError> {
    let raw: RawConfig = serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
    if let Some(kind) = raw.kind.as_deref().filter(|k| *k != "KubeProxyConfiguration") {
        return Err(invalid("kind", format!("{kind:?}, expected KubeProxyConfiguration")));
    }
    if let Some(v) = raw.api_version.as_deref()
        && !v.starts_with("kubeproxy.config.k8s.io/")
    {
        return Err(invalid(
            "apiVersion",
            format!("{v:?}, expected kubeproxy.config.k8s.io/v1alpha1 or v1alpha2"),
        ));
    }
    if let Some(mode) = raw.mode.as_deref().filter(|m| !m.is_empty() && *m != "nftables") {
        return Err(invalid("mode", format!("{mode:?}: this proxy is nftables only")));
    }
    let section = raw.nftables.unwrap_or_default();
    let mut out = FileConfig {
        kubeconfig: raw
            .client_connection
            .as_ref()
            .and_then(|c| c.kubeconfig.clone())
            .filter(|k| !k.is_empty()),
        hostname_override: raw.hostname_override.filter(|h| !h.is_empty()),
        masquerade_all: section.masquerade_all,
        healthz_bind: bind("healthzBindAddress", &raw.healthz_bind_address)?,
        metrics_bind: bind("metricsBindAddress", &raw.metrics_bind_address)?,
        ..Default::default()
    };
    let mut all_cidrs: Vec<String> = raw
        .cluster_cidr
        .iter()
        .flat_map(|c| c.split(',').map(str::to_owned))
        .collect();
    all_cidrs.extend(
        raw.detect_local
            .as_ref()
            .and_then(|d| d.cluster_cidrs.clone())
            .unwrap_or_default(),
    );
    if !all_cidrs.is_empty() {
        out.cluster_cidrs = Some(cidrs("clusterCIDR", all_cidrs)?);
    }
    if let Some(list) = raw.node_port_addresses {
        // "primary" (upstream's keyword for the node's primary addresses) is every address here
        out.node_port_addresses = Some(cidrs("nodePortAddresses", list.into_iter().filter(|a| a != "primary"))?);
    }
    if let Some(bit) = section.masquerade_bit {
        if bit > 31 {
            return Err(invalid(
                "nftables.masqueradeBit",
                format!("{bit} must be within [0, 31]"),
            ));
        }
        out.masquerade_mark = Some(1 << bit);
    }
    out.sync_period =
        duration("syncPeriod", &raw.sync_period)?.or(duration("nftables.syncPeriod", &section.sync_period)?);
    out.min_sync_period = duration("minSyncPeriod", &raw.min_sync_period)?
        .or(duration("nftables.minSyncPeriod", &section.min_sync_period)?);
    if out.sync_period == Some(Duration::ZERO) {
        return Err(invalid("syncPeriod", "must be greater than 0"));
    }
    if let Some(ct) = raw.conntrack {
        for (field, sysctl, value) in [
            (
                "conntrack.tcpEstablishedTimeout",
                "nf_conntrack_tcp_timeout_established",
                &ct.tcp_established_timeout,
            ),
            (
                "conntrack.tcpCloseWaitTimeout",
                "nf_conntrack_tcp_timeout_close_wait",
                &ct.tcp_close_wait_timeout,
            ),
            ("conntrack.udpTimeout", "nf_conntrack_udp_timeout", &ct.udp_timeout),
            (
                "conntrack.udpStreamTimeout",
                "nf_conntrack_udp_timeout_stream",
                &ct.udp_stream_timeout,
            ),
        ] {
            if let Some(d) = duration(field, value)?.filter(|d| !d.is_zero()) {
                out.conntrack_timeouts.push((sysctl, d.as_secs().max(1)));
            }
        }
        if ct.max_per_core.is_some() || ct.min.is_some() {
            out.ignored
                .push("conntrack.maxPerCore/min (the table size is the host's, not set by svcnet)".into());
        }
    }
    if raw.iptables.is_some() {
        out.ignored.push("iptables (this proxy is nftables only)".into());
    }
    for (given, name) in [
        (raw.ipvs.is_some(), "ipvs"),
        (raw.winkernel.is_some(), "winkernel"),
        (raw.feature_gates.is_some(), "featureGates"),
        (raw.oom_score_adj.is_some(), "oomScoreAdj"),
        (raw.port_range.is_some(), "portRange"),
        (raw.bind_address.is_some(), "bindAddress"),
    ] {
        if given {
            out.ignored.push(name.into());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_go() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("1m0s"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("1h2m3.5s"), Some(Duration::from_secs_f64(3723.5)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("5 minutes"), None);
    }

    #[test]
    fn an_upstream_config_is_read() {
        let c = parse(
            "apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clusterCIDR: 10.244.0.0/16,fd00:244::/56
nodePortAddresses: [192.168.0.0/24, primary]
healthzBindAddress: 0.0.0.0:10256
metricsBindAddress: 127.0.0.1:10249
clientConnection: {kubeconfig: /var/lib/kube-proxy/kubeconfig.conf, qps: 5}
nftables: {masqueradeAll: true, masqueradeBit: 14, syncPeriod: 30s, minSyncPeriod: 1s}
conntrack: {maxPerCore: 32768, tcpEstablishedTimeout: 24h0m0s, udpTimeout: 30s}
iptables: {masqueradeAll: false}
",
        )
        .unwrap();
        assert_eq!(c.cluster_cidrs.as_ref().unwrap().len(), 2);
        assert_eq!(c.node_port_addresses, Some(vec!["192.168.0.0/24".parse().unwrap()]));
        assert_eq!(c.masquerade_all, Some(true));
        assert_eq!(c.masquerade_mark, Some(0x4000));
        assert_eq!(c.sync_period, Some(Duration::from_secs(30)));
        assert_eq!(c.min_sync_period, Some(Duration::from_secs(1)));
        assert_eq!(c.healthz_bind, Some("0.0.0.0:10256".parse().unwrap()));
        assert_eq!(c.kubeconfig.as_deref(), Some("/var/lib/kube-proxy/kubeconfig.conf"));
        assert_eq!(
            c.conntrack_timeouts,
            [
                ("nf_conntrack_tcp_timeout_established", 86400),
                ("nf_conntrack_udp_timeout", 30)
            ]
        );
        assert_eq!(c.ignored.len(), 2, "{:?}", c.ignored);
        // v1alpha2 puts the periods at the top level
        let v2 = parse("apiVersion: kubeproxy.config.k8s.io/v1alpha2\nkind: KubeProxyConfiguration\nsyncPeriod: 1m\nminSyncPeriod: 100ms\n").unwrap();
        assert_eq!(
            (v2.sync_period, v2.min_sync_period),
            (Some(Duration::from_secs(60)), Some(Duration::from_millis(100)))
        );
    }

    #[test]
    fn bad_configs_are_named() {
        let e = |text: &str| parse(text).unwrap_err().to_string();
        assert!(e("kind: KubeProxyConfiguration\nclusterCIDRs: 10.0.0.0/8\n").contains("unknown field `clusterCIDRs`"));
        assert_eq!(e("mode: ipvs\n"), "config: mode: \"ipvs\": this proxy is nftables only");
        assert_eq!(
            e("clusterCIDR: 10.0.0.0/33\n"),
            "config: clusterCIDR: \"10.0.0.0/33\" is not a CIDR"
        );
        assert_eq!(
            e("nftables: {syncPeriod: soon}\n"),
            "config: nftables.syncPeriod: \"soon\" is not a duration (e.g. 30s, 1m0s)"
        );
        assert_eq!(
            e("kind: Pod\n"),
            "config: kind: \"Pod\", expected KubeProxyConfiguration"
        );
    }
}
