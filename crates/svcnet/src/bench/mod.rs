//! Benchmarks that print their figures as JSON, next to upstream's baseline measured in the
//! same run. They run only in network namespaces they create.

pub mod apiserver;
pub mod datapath;
pub mod datapath_lab;
pub mod dataplane;
pub mod lab;
pub mod process;
pub mod programming;
pub mod synthetic;

use std::time::Duration;

/// Percentile (0–100) of a sample, in milliseconds with microsecond precision.
pub fn percentile_ms(samples: &[Duration], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut v: Vec<Duration> = samples.to_vec();
    v.sort();
    let idx = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    round3(v[idx].as_secs_f64() * 1000.0)
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Peak resident set size of this process, in MiB.
/// The peak resident set of the largest child this process has waited for (the text
/// backend's `nft`), in MiB; 0 when there was none.
pub fn children_peak_rss_mib() -> f64 {
    use nix::sys::resource::{UsageWho, getrusage};
    // ru_maxrss is in KiB on Linux
    getrusage(UsageWho::RUSAGE_CHILDREN).map_or(0.0, |u| round3(u.max_rss() as f64 / 1024.0))
}

pub fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    round3(kib / 1024.0)
}

/// Runs measured side by side, in order: the one run itself when there is only one; else all
/// of them, the first as the baseline, and each other's ratio to it for every `(name, JSON
/// pointer)` of `figures` (null where either lacks the figure).
pub fn side_by_side(
    benchmark: &str,
    runs: Vec<(String, serde_json::Value)>,
    figures: &[(&str, &str)],
) -> anyhow::Result<serde_json::Value> {
    use serde_json::{Value, json};
    let Some(((first, base), others)) = runs.split_first() else {
        anyhow::bail!("nothing was measured");
    };
    if others.is_empty() {
        return Ok(base.clone());
    }
    let ratio = |run: &Value, pointer: &str| -> Value {
        let at = |v: &Value| v.pointer(pointer).and_then(Value::as_f64);
        match (at(run), at(base)) {
            (Some(a), Some(b)) if b > 0.0 => json!((a / b * 100.0).round() / 100.0),
            _ => Value::Null,
        }
    };
    let ratios: serde_json::Map<String, Value> = others
        .iter()
        .map(|(name, run)| {
            let of: serde_json::Map<String, Value> = figures
                .iter()
                .map(|(figure, pointer)| ((*figure).to_owned(), ratio(run, pointer)))
                .collect();
            (name.clone(), Value::Object(of))
        })
        .collect();
    let all: serde_json::Map<String, Value> = runs.iter().cloned().collect();
    Ok(json!({
        "benchmark": benchmark,
        "baseline": first,
        "runs": all,
        format!("ratios_to_{first}"): ratios,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn side_by_side_gives_ratios_to_the_first_run() {
        let runs = vec![
            ("a".to_owned(), json!({ "t": 2.0, "m": { "p": 10.0 } })),
            ("b".to_owned(), json!({ "t": 3.0, "m": { "p": 5.0 } })),
        ];
        let out = side_by_side("x", runs, &[("t", "/t"), ("p", "/m/p"), ("none", "/q")]).unwrap();
        assert_eq!(out["baseline"], "a");
        assert_eq!(out["ratios_to_a"]["b"], json!({ "t": 1.5, "p": 0.5, "none": null }));
        assert_eq!(out["runs"]["b"]["t"], 3.0);
        let one = side_by_side("x", vec![("a".to_owned(), json!({ "t": 1 }))], &[]).unwrap();
        assert_eq!(one, json!({ "t": 1 }));
    }
}
