//! glibc's malloc arenas for the long-running servers. glibc gives each thread that
//! allocates under contention an arena of its own (up to eight per core) and keeps what is
//! freed in each: while 50,000 Services loaded (`bench programming`), the lab daemon with
//! its API server peaked at 2.2 GiB with glibc's default, 1.0 GiB with two arenas and
//! 0.7 GiB with one, loading as fast; the node agent (one busy thread) at 178, 176 and
//! 170 MiB. glibc reads `MALLOC_ARENA_MAX` only when a process starts, and this project
//! forbids `unsafe` (so no `mallopt`), so a server started without it sets it and executes
//! itself again: the same process (PID, arguments), now with two arenas. A value already in
//! the environment is left as it is.

use std::os::unix::process::CommandExt;
use std::process::Command;

/// The arena limit the servers run with.
pub const SERVER_ARENAS: &str = "2";

/// The subcommands that run for long and hold many objects.
fn is_server(args: &[String]) -> bool {
    match args.get(1).map(String::as_str) {
        Some("apiserver" | "proxy") => true,
        Some("lab") => args.get(2).is_some_and(|a| a == "daemon"),
        _ => false,
    }
}

/// Executes this process again with `MALLOC_ARENA_MAX` set, when it is a server started
/// without it; returns (changing nothing) otherwise or when that fails.
pub fn limit_for_servers() {
    let args: Vec<String> = std::env::args().collect();
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() || !is_server(&args) {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let error = Command::new(exe)
        .arg0(&args[0])
        .args(&args[1..])
        .env("MALLOC_ARENA_MAX", SERVER_ARENAS)
        .exec();
    eprintln!("svcnet: could not execute itself with MALLOC_ARENA_MAX={SERVER_ARENAS} ({error}); going on without");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_servers_are_limited() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(is_server(&args(&["svcnet", "proxy", "--node-name", "n"])));
        assert!(is_server(&args(&["svcnet", "apiserver"])));
        assert!(is_server(&args(&["svcnet", "lab", "daemon", "--name", "x"])));
        assert!(!is_server(&args(&["svcnet", "lab", "up"])));
        assert!(!is_server(&args(&["svcnet", "explain", "a", "b"])));
        assert!(!is_server(&args(&["svcnet"])));
    }
}
