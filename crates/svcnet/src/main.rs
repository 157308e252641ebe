//! `svcnet`: one command-line entry point for every part of the system.

fn main() -> std::process::ExitCode {
    svcnet::cli::run()
}
