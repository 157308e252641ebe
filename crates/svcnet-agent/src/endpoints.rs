//! The agent's HTTP endpoints, as upstream kube-proxy serves them: `/healthz` and `/livez`
//! (503 once updates have waited longer than twice the sync period) and Prometheus `/metrics`
//! in the text format, with upstream's metric names where they exist.

use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use svcnet_dataplane::sync_loop::SyncStatus;

#[derive(Clone)]
struct Shared {
    status: Arc<Mutex<SyncStatus>>,
    /// Updates may wait this long before the agent reports itself unhealthy.
    health_timeout_secs: u64,
    extra: Option<ExtraMetrics>,
}

/// Whether syncs keep up: nothing has waited longer than the health timeout.
pub fn healthy(status: &SyncStatus, now_unix: u64, timeout_secs: u64) -> bool {
    status
        .pending_since_unix
        .is_none_or(|since| now_unix.saturating_sub(since) <= timeout_secs)
}

async fn health(State(s): State<Shared>) -> Response {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let st = s.status.lock().expect("status lock").clone();
    let body = format!(
        "{{\"lastUpdated\": {}, \"currentTime\": {now}, \"pendingSince\": {}}}",
        st.last_success_unix.unwrap_or(0),
        st.pending_since_unix.map_or("null".to_owned(), |p| p.to_string())
    );
    let code = if healthy(&st, now, s.health_timeout_secs) {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, [("content-type", "application/json")], body).into_response()
}

/// The metrics in Prometheus' text exposition format.
pub fn render_metrics(st: &SyncStatus) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, lines: &[(String, String)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in lines {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let one = |v: String| vec![(String::new(), v)];
    metric(
        "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
        "gauge",
        "The last time proxy rules were successfully synced.",
        &one(st.last_success_unix.unwrap_or(0).to_string()),
    );
    metric(
        "kubeproxy_sync_proxy_rules_nftables_sync_failures_total",
        "counter",
        "Failed nftables transactions.",
        &one(st.failures.to_string()),
    );
    metric(
        "svcnet_proxy_sync_duration_seconds",
        "gauge",
        "Duration of the last sync.",
        &one(format!("{:.3}", st.last_duration_ms as f64 / 1000.0)),
    );
    metric(
        "svcnet_proxy_syncs_total",
        "counter",
        "Syncs that changed the kernel, by kind.",
        &[
            ("{kind=\"full\"}".to_owned(), st.full_syncs.to_string()),
            ("{kind=\"incremental\"}".to_owned(), st.incremental_syncs.to_string()),
        ],
    );
    metric(
        "svcnet_proxy_conntrack_cleanups_total",
        "counter",
        "Stale UDP conntrack filters applied.",
        &one(st.conntrack_cleanups.to_string()),
    );
    metric(
        "svcnet_proxy_service_ports",
        "gauge",
        "Service ports in the applied model.",
        &one(st.service_ports.to_string()),
    );
    metric(
        "svcnet_proxy_endpoints",
        "gauge",
        "Endpoints in the applied model.",
        &one(st.endpoints.to_string()),
    );
    metric(
        "svcnet_proxy_resync_checks_total",
        "counter",
        "Periodic checks of the incrementally maintained model against a rebuild from the watch caches.",
        &one(st.resync_checks.to_string()),
    );
    metric(
        "svcnet_proxy_resync_mismatches_total",
        "counter",
        "Checks that found the incremental model different from the rebuild (it is then replaced).",
        &one(st.resync_mismatches.to_string()),
    );
    metric(
        "svcnet_proxy_initial_sync_seconds",
        "gauge",
        "From the initial lists' arrival to the first sync that programmed them (a restart's takeover time; unchanged services are not counted as programming latency).",
        &one(st
            .initial_sync_ms
            .map_or("NaN".to_owned(), |ms| format!("{:.3}", ms as f64 / 1000.0))),
    );
    let h = &st.programming_latency;
    let mut lines = Vec::new();
    let mut cumulative = 0;
    for (i, bound) in svcnet_dataplane::sync_loop::PROGRAMMING_BUCKETS.iter().enumerate() {
        cumulative += h.counts.get(i).copied().unwrap_or(0);
        lines.push((format!("_bucket{{le=\"{bound}\"}}"), cumulative.to_string()));
    }
    lines.push(("_bucket{le=\"+Inf\"}".to_owned(), h.count.to_string()));
    lines.push(("_sum".to_owned(), format!("{:.6}", h.sum_micros as f64 / 1e6)));
    lines.push(("_count".to_owned(), h.count.to_string()));
    metric(
        "kubeproxy_network_programming_duration_seconds",
        "histogram",
        "In Cluster Network Programming Latency in seconds",
        &lines,
    );
    out
}

async fn metrics(State(s): State<Shared>) -> Response {
    let st = s.status.lock().expect("status lock").clone();
    let text = render_metrics(&st);
    let extra = match s.extra.clone() {
        // gathered off the async threads, then rendered a chunk at a time as the body is sent:
        // at 50,000 services the whole text would be tens of MiB
        Some(extra) => tokio::task::spawn_blocking(move || extra()).await.ok(),
        None => None,
    };
    let chunks = std::iter::once(text).chain(extra.into_iter().flatten());
    let body = axum::body::Body::from_stream(futures::stream::iter(
        chunks.map(|chunk| Ok::<_, std::convert::Infallible>(axum::body::Bytes::from(chunk))),
    ));
    ([("content-type", "text/plain; version=0.0.4")], body).into_response()
}

/// More metrics, gathered at scrape time (blocking is fine: it runs off the async threads)
/// and rendered a chunk at a time as the response is sent.
pub type ExtraMetrics = Arc<dyn Fn() -> Box<dyn Iterator<Item = String> + Send> + Send + Sync>;

/// Serves `/healthz`, `/livez` and `/metrics` on `addr` until the process ends.
pub async fn serve(
    addr: SocketAddr,
    status: Arc<Mutex<SyncStatus>>,
    health_timeout_secs: u64,
    extra: Option<ExtraMetrics>,
) -> std::io::Result<()> {
    let shared = Shared {
        status,
        health_timeout_secs,
        extra,
    };
    let app = Router::new()
        .route("/healthz", get(health))
        .route("/livez", get(health))
        .route("/metrics", get(metrics))
        .with_state(shared);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    // the bound address (the port may have been 0), for whoever scrapes
    tracing::info!(addr = %listener.local_addr()?, "serving health and metrics");
    axum::serve(listener, app).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_follows_waiting_updates() {
        let mut st = SyncStatus::default();
        assert!(healthy(&st, 1000, 60));
        st.pending_since_unix = Some(950);
        assert!(healthy(&st, 1000, 60));
        st.pending_since_unix = Some(900);
        assert!(!healthy(&st, 1000, 60));
    }

    #[test]
    fn metrics_use_upstream_names_and_text_format() {
        let st = SyncStatus {
            full_syncs: 1,
            incremental_syncs: 4,
            failures: 2,
            last_success_unix: Some(1_700_000_000),
            ..SyncStatus::default()
        };
        let text = render_metrics(&st);
        assert!(text.contains("# TYPE kubeproxy_sync_proxy_rules_last_timestamp_seconds gauge\nkubeproxy_sync_proxy_rules_last_timestamp_seconds 1700000000\n"), "{text}");
        assert!(text.contains("kubeproxy_sync_proxy_rules_nftables_sync_failures_total 2\n"));
        assert!(text.contains("svcnet_proxy_syncs_total{kind=\"incremental\"} 4\n"));
    }
}
