//! `svcnet bench dataplane`: how fast rules reach the kernel, for each backend side by side.
//! Full sync of a synthetic model (compile and apply each measured, and the total), then incremental syncs of one
//! endpoint change, one service add and one service delete, reported as p50/p99; peak RSS
//! of each backend's run; and upstream kube-proxy's layout timed by the baseline script in
//! the same run, with ratios.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{Value, json};
use svcnet_dataplane::backend::{Backend, BackendKind};
use svcnet_dataplane::model::ServicePort;
use svcnet_dataplane::syncer::Syncer;

use super::{peak_rss_mib, percentile_ms, round3, synthetic};
use crate::netns::Namespaces;

pub struct Options {
    pub services: u32,
    pub endpoints_per_service: u32,
    pub iterations: u32,
    pub backends: Vec<BackendKind>,
    /// The baseline script; `None` skips it.
    pub baseline: Option<PathBuf>,
    /// When not 0, each backend is also measured with every endpoint zone-hinted and this
    /// many Maglev services, and the ratios to the plain run are reported.
    pub maglev_services: u32,
}

/// What the synthetic model carries besides plain services.
#[derive(Clone, Copy)]
struct Variant {
    maglev: u32,
    hinted: bool,
}

/// Where the baseline script is by default: `shared/bench` beside the repository.
pub fn default_baseline() -> Option<PathBuf> {
    let here = std::env::current_dir().ok()?;
    here.ancestors()
        .map(|d| d.join("../shared/bench/kube-proxy-layout.py"))
        .find(|p| p.exists())
}

struct Timed {
    total: Vec<Duration>,
}

impl Timed {
    fn new() -> Self {
        Timed { total: vec![] }
    }

    fn json(&self) -> Value {
        json!({
            "p50_ms": percentile_ms(&self.total, 50.0),
            "p99_ms": percentile_ms(&self.total, 99.0),
        })
    }
}

fn run_baseline(script: &Path, services: u32, endpoints: u32) -> Result<Value> {
    let out = Command::new("python3")
        .arg(script)
        .args([
            "--services",
            &services.to_string(),
            "--endpoints",
            &endpoints.to_string(),
        ])
        .output()
        .context("running the baseline script")?;
    anyhow::ensure!(
        out.status.success(),
        "baseline failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn syncer_port<B: Backend>(syncer: &Syncer<B>, id: &str) -> ServicePort {
    syncer.applied_model().expect("synced").ports[id].clone()
}

/// Resets the process's peak RSS, so each backend's run reports its own.
fn reset_peak_rss() {
    // "5" clears VmHWM (Documentation/filesystems/proc.rst); best effort
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

pub fn run(opts: &Options) -> Result<Value> {
    let mut backends = serde_json::Map::new();
    let plain = Variant {
        maglev: 0,
        hinted: false,
    };
    for kind in &opts.backends {
        reset_peak_rss();
        let mut result = run_backend(opts, *kind, plain)?;
        if opts.maglev_services > 0 {
            let featured = Variant {
                maglev: opts.maglev_services,
                hinted: true,
            };
            reset_peak_rss();
            let with = run_backend(opts, *kind, featured)?;
            let mut ratios = serde_json::Map::new();
            for op in ["endpoint_change", "service_add", "service_delete"] {
                for q in ["p50_ms", "p99_ms"] {
                    let (a, b) = (
                        result["incremental"][op][q].as_f64().unwrap_or(0.0),
                        with["incremental"][op][q].as_f64().unwrap_or(0.0),
                    );
                    ratios.insert(format!("{op}_{q}"), json!(round3(b / a.max(0.000_001))));
                }
            }
            result["with_hints_and_maglev"] = with;
            result["with_hints_and_maglev"]["ratio_to_plain"] = Value::Object(ratios);
        }
        backends.insert(kind.name().to_owned(), result);
    }
    let mut result = json!({
        "services": opts.services,
        "endpoints_per_service": opts.endpoints_per_service,
        "nodes_sharing_endpoints": synthetic::NODES,
        "backends": backends,
    });
    if let Some(script) = &opts.baseline {
        let baseline = run_baseline(script, opts.services, opts.endpoints_per_service)?;
        let full = baseline["full_apply_s"].as_f64().unwrap_or(0.0);
        let inc = baseline["incremental_one_service_s"].as_f64().unwrap_or(0.0);
        let mut ratios = serde_json::Map::new();
        for (name, r) in &backends_of(&result) {
            let total = r["full_sync_s"]["total"].as_f64().unwrap_or(f64::INFINITY);
            let p50 = r["incremental"]["endpoint_change"]["p50_ms"]
                .as_f64()
                .unwrap_or(f64::INFINITY);
            ratios.insert(
                name.clone(),
                json!({
                    "full_sync_speedup": round3(full / total),
                    "incremental_speedup_p50": round3(inc * 1000.0 / p50.max(0.001)),
                }),
            );
        }
        result["baseline"] = baseline;
        result["ratios_vs_baseline"] = Value::Object(ratios);
    }
    Ok(result)
}

fn backends_of(result: &Value) -> Vec<(String, Value)> {
    result["backends"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

/// A backend that records how long its last full replacement took (the kernel's and the
/// backend's share of a full sync, measured rather than derived).
struct TimedReplace<B> {
    inner: B,
    last_replace: std::sync::Arc<std::sync::Mutex<std::time::Duration>>,
}

impl<B: Backend> Backend for TimedReplace<B> {
    fn apply(&mut self, ops: &[svcnet_dataplane::diff::Op]) -> Result<(), svcnet_dataplane::backend::BackendError> {
        self.inner.apply(ops)
    }

    fn replace(
        &mut self,
        ruleset: &dyn svcnet_dataplane::ir::RulesetView,
    ) -> Result<(), svcnet_dataplane::backend::BackendError> {
        let t = Instant::now();
        let result = self.inner.replace(ruleset);
        *self.last_replace.lock().expect("timing") = t.elapsed();
        result
    }
}

fn run_backend(opts: &Options, kind: BackendKind, variant: Variant) -> Result<Value> {
    let mut nets = Namespaces::new("svb-");
    let node = nets.add("node");
    let last_replace = std::sync::Arc::new(std::sync::Mutex::new(std::time::Duration::ZERO));
    let backend: Box<dyn Backend + Send> = Box::new(TimedReplace {
        inner: kind.open(Some(&node))?,
        last_replace: last_replace.clone(),
    });
    let mut syncer = Syncer::new(backend);
    let clock = Instant::now();
    let now = |c: &Instant| c.elapsed().as_millis() as u64;

    // the compile step alone, for the breakdown (the syncer repeats it inside the full sync)
    let build = || {
        synthetic::model_with(
            opts.services,
            opts.endpoints_per_service,
            variant.maglev,
            variant.hinted,
        )
    };
    let model = build();
    let t0 = Instant::now();
    let compiled = svcnet_dataplane::incremental::CompiledModel::new(model);
    let compile_time = t0.elapsed();
    let stats = compiled.stats();
    drop(compiled);

    let model = build();
    // the standard changes go to plain services; Maglev ones are measured apart
    let is_maglev = |sp: &ServicePort| sp.load_balancing == svcnet_dataplane::model::LoadBalancing::Maglev;
    let ids: Vec<String> = model
        .ports
        .iter()
        .filter(|(_, p)| !is_maglev(p))
        .map(|(id, _)| id.clone())
        .collect();
    let maglev_ids: Vec<String> = model
        .ports
        .iter()
        .filter(|(_, p)| is_maglev(p))
        .map(|(id, _)| id.clone())
        .collect();
    let t1 = Instant::now();
    syncer.sync(model, now(&clock)).context("full sync")?;
    let full_total = t1.elapsed();
    let apply_time = *last_replace.lock().expect("timing");

    // changes arrive as the node agent sees them, one service port at a time; each is timed
    // from handing it to the syncer until nft returns
    let sync_timed = |syncer: &mut Syncer<Box<dyn Backend + Send>>,
                      id: String,
                      port: Option<ServicePort>,
                      timed: &mut Timed|
     -> Result<()> {
        let t = Instant::now();
        syncer.sync_ports([(id, port)], now(&clock))?;
        timed.total.push(t.elapsed());
        Ok(())
    };
    let (mut endpoint_change, mut service_add, mut service_delete) = (Timed::new(), Timed::new(), Timed::new());
    for k in 0..opts.iterations {
        let id = ids[(k as usize * 7919) % ids.len()].clone();
        let mut sp = syncer_port(&syncer, &id);
        sp.endpoints[0].ip =
            std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 200, (k / 250) as u8, (k % 250) as u8 + 1));
        sync_timed(&mut syncer, id, Some(sp), &mut endpoint_change)?;
        // shaped like the model's services, so an add does not also create a new shared chain
        let mut extra = synthetic::service(opts.services + k, opts.endpoints_per_service, 4_000_000 + k * 64);
        if variant.hinted {
            synthetic::hint(&mut extra);
        }
        let extra_id = extra.id();
        sync_timed(&mut syncer, extra_id.clone(), Some(extra), &mut service_add)?;
        sync_timed(&mut syncer, extra_id, None, &mut service_delete)?;
    }
    let mut maglev_change = Timed::new();
    for k in 0..opts.iterations.min(maglev_ids.len() as u32 * 4) {
        let id = maglev_ids[k as usize % maglev_ids.len()].clone();
        let mut sp = syncer_port(&syncer, &id);
        sp.endpoints[0].ip =
            std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 201, (k / 250) as u8, (k % 250) as u8 + 1));
        sync_timed(&mut syncer, id, Some(sp), &mut maglev_change)?;
    }

    let result = json!({
        "ruleset": stats,
        "full_sync_s": {
            "compile": round3(compile_time.as_secs_f64()),
            "apply": round3(apply_time.as_secs_f64()),
            "total": round3(full_total.as_secs_f64()),
        },
        "incremental": {
            "iterations": opts.iterations,
            "endpoint_change": endpoint_change.json(),
            "service_add": service_add.json(),
            "service_delete": service_delete.json(),
        },
        "maglev_endpoint_change": if maglev_ids.is_empty() { Value::Null } else { maglev_change.json() },
        "peak_rss_mib": peak_rss_mib(),
        // the text backend's work is largely nft's: its largest run so far in this process
        // (the same for the plain and the featured run), never counted in the figure above
        "nft_child_peak_rss_mib": if kind == BackendKind::NftText { json!(super::children_peak_rss_mib()) } else { Value::Null },
    });
    drop(syncer);
    drop(nets);
    Ok(result)
}
