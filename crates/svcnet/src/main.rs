//! `svcnet`: one command-line entry point for every part of the system.

fn main() -> std::process::ExitCode {
    // A reader that stops early (`svcnet ... | head`) closes the pipe; like other command-line
    // tools, end quietly with SIGPIPE's conventional status instead of a panic message.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default_hook(info);
    }));
    svcnet::arenas::limit_for_servers();
    svcnet::cli::run()
}
