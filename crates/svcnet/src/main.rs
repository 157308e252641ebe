//! `svcnet`: one command-line entry point for every part of the system.

mod agnhost;
mod cli;
mod service_check;

fn main() -> std::process::ExitCode {
    cli::run()
}
