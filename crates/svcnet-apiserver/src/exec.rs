//! `pods/exec`: what a command in a container needs from whoever runs pods (the lab's
//! kubelets), and the pure parts of the protocol kubectl speaks: the request's parameters and
//! the WebSocket channel framing of `v5.channel.k8s.io` / `v4.channel.k8s.io` (each binary
//! message starts with its channel: 0 stdin, 1 stdout, 2 stderr, 3 the final Status, 4 terminal
//! resize; v5 adds 255, which closes the channel named by the next byte).

use std::sync::Arc;

use serde_json::{Value, json};

/// The subprotocols served, preferred first.
pub const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const ERROR: u8 = 3;
pub const RESIZE: u8 = 4;
pub const CLOSE: u8 = 255;

/// A started command: its standard streams (pipes, or with `tty` the master side of its
/// terminal) and its end.
pub struct Process {
    pub child: tokio::process::Child,
    /// The terminal's master side when a terminal was asked for (stdout and stderr both come
    /// out of it, and stdin goes into it).
    pub terminal: Option<std::fs::File>,
}

/// What the kubelet's streaming endpoints reach in pods: commands run in containers
/// (`exec`) and connections to the pod's ports (`port-forward`).
pub trait PodStreaming: Send + Sync {
    /// Starts `command` in `container` of `pod` (the stored object): with piped stdin, stdout
    /// and stderr, or on a new terminal when `tty`.
    fn start(&self, pod: &Value, container: &str, command: &[String], tty: bool) -> std::io::Result<Process>;

    /// The streams of `container`'s running process, from now on: what it writes and, when
    /// `stdin` is asked for and the container keeps its stdin open (`stdin: true`), where
    /// its input goes.
    fn attach(&self, pod: &Value, container: &str, stdin: bool) -> std::io::Result<Attached>;

    /// A connection to `port` on the pod's loopback, from inside its network namespace, as
    /// the kubelet opens one for `kubectl port-forward`.
    fn connect(&self, pod: &Value, port: u16) -> std::io::Result<std::net::TcpStream>;
}

/// A running container's streams, for `attach`.
pub struct Attached {
    /// What the container writes, by channel ([`STDOUT`] or [`STDERR`]); ends when it does.
    pub output: tokio::sync::mpsc::Receiver<(u8, Vec<u8>)>,
    /// Where the client's stdin goes (the container's stdin, or its terminal); dropping it
    /// ends this client's input (and with `stdinOnce`, the container's).
    pub input: Option<Box<dyn std::io::Write + Send>>,
    /// The container's terminal, for resizes, when it runs on one.
    pub terminal: Option<std::fs::File>,
}

/// A terminal size from a resize message (`{"Width":80,"Height":24}`).
pub fn terminal_size(message: &[u8]) -> Option<(u16, u16)> {
    let v: Value = serde_json::from_slice(message).ok()?;
    let dim = |k: &str| v.get(k)?.as_u64().and_then(|n| u16::try_from(n).ok());
    Some((dim("Width")?, dim("Height")?))
}

pub type SharedPodStreaming = Arc<dyn PodStreaming>;

/// What an exec request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecRequest {
    pub command: Vec<String>,
    pub container: Option<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

fn truthy(v: &str) -> bool {
    matches!(v, "true" | "1" | "True")
}

/// The query parameters that name the streams: the API's `pods/exec` says `stdin`, `stdout`
/// and `stderr`; the kubelet's `/exec`, which kube-apiserver proxies to, says `input`, `output`
/// and `error`. Both say `command`, `container` and `tty`.
pub struct Parameters {
    pub stdin: &'static str,
    pub stdout: &'static str,
    pub stderr: &'static str,
}

pub const API_PARAMETERS: Parameters = Parameters {
    stdin: "stdin",
    stdout: "stdout",
    stderr: "stderr",
};

pub const KUBELET_PARAMETERS: Parameters = Parameters {
    stdin: "input",
    stdout: "output",
    stderr: "error",
};

/// The request's query parameters (`command` repeats, one per word), named as `names` says; a
/// request without a command, or with none of stdin, stdout and stderr, is refused with
/// upstream's words.
pub fn parse_request(pairs: &[(String, String)], names: &Parameters) -> Result<ExecRequest, String> {
    let r = parse_streams(pairs, names)?;
    if r.command.is_empty() {
        return Err("you must specify at least 1 command".into());
    }
    Ok(r)
}

/// An attach request's parameters: the streams, and no command.
pub fn parse_attach(pairs: &[(String, String)], names: &Parameters) -> Result<ExecRequest, String> {
    parse_streams(pairs, names)
}

fn parse_streams(pairs: &[(String, String)], names: &Parameters) -> Result<ExecRequest, String> {
    let mut r = ExecRequest {
        command: vec![],
        container: None,
        stdin: false,
        stdout: false,
        stderr: false,
        tty: false,
    };
    for (k, v) in pairs {
        match k.as_str() {
            "command" => r.command.push(v.clone()),
            "container" => r.container = Some(v.clone()),
            "tty" => r.tty = truthy(v),
            k if k == names.stdin => r.stdin = truthy(v),
            k if k == names.stdout => r.stdout = truthy(v),
            k if k == names.stderr => r.stderr = truthy(v),
            _ => {}
        }
    }
    if !(r.stdin || r.stdout || r.stderr) {
        return Err("you must specify at least 1 of stdin, stdout, stderr".into());
    }
    Ok(r)
}

/// `channel` + `data`: one outgoing message.
pub fn frame(channel: u8, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 1);
    out.push(channel);
    out.extend_from_slice(data);
    out
}

/// What an incoming message means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incoming<'a> {
    Stdin(&'a [u8]),
    /// The client closed its stdin (v5's close of channel 0).
    StdinClosed,
    /// The client's terminal changed size (JSON after the channel byte).
    Resize(&'a [u8]),
    Other,
}

pub fn incoming(message: &[u8]) -> Incoming<'_> {
    match message.split_first() {
        Some((&STDIN, data)) => Incoming::Stdin(data),
        Some((&CLOSE, [STDIN, ..])) => Incoming::StdinClosed,
        Some((&RESIZE, size)) => Incoming::Resize(size),
        _ => Incoming::Other,
    }
}

/// The Status sent on the error channel when the command ends: Success, or upstream's
/// NonZeroExitCode failure, which kubectl turns into its own exit code.
pub fn exit_status(command: &[String], code: i32) -> Value {
    if code == 0 {
        return json!({ "metadata": {}, "status": "Success" });
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
            command.join(" ")
        ),
        "reason": "NonZeroExitCode",
        "details": { "causes": [{ "reason": "ExitCode", "message": code.to_string() }] },
    })
}

/// The Status for a command that could not be started.
pub fn start_failure(message: &str) -> Value {
    json!({ "metadata": {}, "status": "Failure", "message": message, "reason": "InternalError", "code": 500 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn commands_repeat_and_a_stream_is_required() {
        let r = parse_request(
            &pairs(&[
                ("command", "sh"),
                ("command", "-c"),
                ("command", "echo hi"),
                ("container", "shell"),
                ("stdout", "true"),
            ]),
            &API_PARAMETERS,
        )
        .unwrap();
        assert_eq!(r.command, ["sh", "-c", "echo hi"]);
        assert_eq!(r.container.as_deref(), Some("shell"));
        assert!(r.stdout && !r.stdin && !r.tty);
        assert!(
            parse_request(&pairs(&[("stdout", "true")]), &API_PARAMETERS)
                .unwrap_err()
                .contains("1 command")
        );
        assert!(
            parse_request(&pairs(&[("command", "ls")]), &API_PARAMETERS)
                .unwrap_err()
                .contains("stdin, stdout, stderr")
        );
    }

    #[test]
    fn the_kubelet_names_the_streams_its_own_way() {
        let kubelet = pairs(&[("command", "ls"), ("input", "1"), ("output", "1"), ("tty", "1")]);
        let r = parse_request(&kubelet, &KUBELET_PARAMETERS).unwrap();
        assert!(r.stdin && r.stdout && !r.stderr && r.tty);
        // the API's names mean nothing to the kubelet, and the kubelet's nothing to the API
        assert!(parse_request(&pairs(&[("command", "ls"), ("stdout", "1")]), &KUBELET_PARAMETERS).is_err());
        assert!(parse_request(&kubelet, &API_PARAMETERS).is_err());
    }

    #[test]
    fn attach_takes_streams_and_no_command() {
        let r = parse_attach(
            &pairs(&[("stdin", "true"), ("stdout", "true"), ("tty", "true")]),
            &API_PARAMETERS,
        )
        .unwrap();
        assert!(r.stdin && r.stdout && r.tty && r.command.is_empty());
        assert!(parse_attach(&pairs(&[("tty", "true")]), &API_PARAMETERS).is_err());
        assert!(
            parse_attach(&pairs(&[("output", "1")]), &KUBELET_PARAMETERS)
                .unwrap()
                .stdout
        );
    }

    #[test]
    fn channels_frame_and_unframe() {
        assert_eq!(frame(STDOUT, b"hi"), b"\x01hi");
        assert_eq!(incoming(b"\x00abc"), Incoming::Stdin(b"abc"));
        assert_eq!(incoming(&[CLOSE, STDIN]), Incoming::StdinClosed);
        assert_eq!(incoming(b"\x04{\"Width\":80}"), Incoming::Resize(b"{\"Width\":80}"));
        assert_eq!(terminal_size(b"{\"Width\":120,\"Height\":40}"), Some((120, 40)));
        assert_eq!(terminal_size(b"{\"Width\":120}"), None);
        assert_eq!(incoming(b""), Incoming::Other);
    }

    #[test]
    fn exit_codes_become_upstream_s_status() {
        assert_eq!(exit_status(&["true".into()], 0)["status"], "Success");
        let failed = exit_status(&["sh".into(), "-c".into(), "exit 3".into()], 3);
        assert_eq!(failed["reason"], "NonZeroExitCode");
        assert_eq!(failed["details"]["causes"][0]["message"], "3");
        assert_eq!(
            failed["message"],
            "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3"
        );
    }
}
