//! Benchmarks that print their figures as JSON, next to upstream's baseline measured in the
//! same run. They run only in network namespaces they create.

pub mod apiserver;
pub mod datapath;
pub mod dataplane;
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
