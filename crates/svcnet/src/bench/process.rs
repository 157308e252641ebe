//! What a process used, read from `/proc`: peak and current resident memory, CPU time.

/// VmHWM and VmRSS of a process, in MiB (0 when it cannot be read).
pub fn memory_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |kib| (kib / 1024.0 * 10.0).round() / 10.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// User plus system CPU seconds a process has used (0 when it cannot be read).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    cpu_seconds_of(&stat, rustix::param::clock_ticks_per_second())
}

/// From a `/proc/PID/stat` line: fields 14 and 15 (utime, stime) after the command name,
/// which is in parentheses and may itself contain spaces.
fn cpu_seconds_of(stat: &str, ticks_per_second: u64) -> f64 {
    let Some((_, after_name)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // after the name: state is field 3, so utime (14) and stime (15) are at 11 and 12
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let seconds = (ticks(11) + ticks(12)) as f64 / ticks_per_second.max(1) as f64;
    (seconds * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_after_a_name_with_spaces() {
        let stat = "4242 (svcnet proxy) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0 100 0 0";
        assert_eq!(cpu_seconds_of(stat, 100), 3.0);
        assert_eq!(cpu_seconds_of("garbage", 100), 0.0);
    }

    #[test]
    fn this_process_has_memory_and_time() {
        let pid = std::process::id();
        assert!(memory_mib(pid).0 > 0.0);
        assert!(cpu_seconds(pid) >= 0.0);
    }
}
