//! One command's session over a WebSocket, for `pods/exec` here and for the lab's kubelet
//! API (which upstream's kube-apiserver proxies `kubectl exec` to): the command is started by
//! the [`PodStreaming`](crate::exec::PodStreaming) hook and its streams are relayed over the channels
//! until it ends, when its exit status goes on the error channel. With `-t` the command gets a
//! terminal: what it writes comes out of the terminal on stdout, and resize messages set the
//! terminal's size.

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::exec::{self, ExecRequest, Incoming};

/// Ends the session with a normal closure (kubectl reads a close without a code as an error),
/// then waits a moment for the client's answering close: what it still sends is read, so the
/// connection ends cleanly instead of with a reset that could overtake the last messages.
pub(crate) async fn close(socket: &mut WebSocket) {
    let frame = CloseFrame {
        code: axum::extract::ws::close_code::NORMAL,
        reason: "".into(),
    };
    if socket.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    let drained = async {
        while let Some(Ok(message)) = socket.recv().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), drained).await;
}

pub(crate) async fn send(socket: &mut WebSocket, channel: u8, data: &[u8]) -> bool {
    socket
        .send(Message::Binary(Bytes::from(exec::frame(channel, data))))
        .await
        .is_ok()
}

/// Copies one of the command's output streams into frames of `channel`.
async fn pump(mut from: impl tokio::io::AsyncRead + Unpin, channel: u8, to: tokio::sync::mpsc::Sender<(u8, Vec<u8>)>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if to.send((channel, buf[..n].to_vec())).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Runs `request` in `container` of `pod` (the object) and relays it over `socket`.
pub async fn run(
    mut socket: WebSocket,
    hook: exec::SharedPodStreaming,
    pod: Value,
    container: String,
    request: ExecRequest,
) {
    let started = hook.start(&pod, &container, &request.command, request.tty);
    let (mut child, terminal) = match started {
        Ok(process) => (process.child, process.terminal),
        Err(e) => {
            let status = exec::start_failure(&format!("failed to exec in container: {e}"));
            send(&mut socket, exec::ERROR, status.to_string().as_bytes()).await;
            close(&mut socket).await;
            return;
        }
    };
    let mut stdin = child.stdin.take().filter(|_| request.stdin);
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    if let Some(out) = child.stdout.take() {
        tokio::spawn(pump(out, exec::STDOUT, tx.clone()));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(pump(err, exec::STDERR, tx.clone()));
    }
    // a terminal: its master side is read on a thread of its own (it ends with EIO once the
    // command and everything it started have closed the terminal)
    let mut terminal_input = None;
    let mut terminal_size = None;
    if let Some(master) = terminal {
        terminal_input = master.try_clone().ok().filter(|_| request.stdin);
        terminal_size = master.try_clone().ok();
        let tx = tx.clone();
        tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let mut master = master;
            let mut buf = vec![0u8; 32 * 1024];
            while let Ok(n) = master.read(&mut buf) {
                if n == 0 || tx.blocking_send((exec::STDOUT, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    loop {
        tokio::select! {
            output = rx.recv() => match output {
                Some((channel, data)) => {
                    let wanted = if channel == exec::STDOUT { request.stdout } else { request.stderr };
                    if wanted && !send(&mut socket, channel, &data).await {
                        let _ = child.start_kill();
                        return;
                    }
                }
                // both output streams ended
                None => break,
            },
            message = socket.recv() => match message {
                Some(Ok(Message::Binary(data))) => match exec::incoming(&data) {
                    Incoming::Stdin(bytes) => {
                        if let Some(input) = &mut stdin
                            && input.write_all(bytes).await.is_err()
                        {
                            stdin = None;
                        }
                        if let Some(term) = &mut terminal_input
                            && std::io::Write::write_all(term, bytes).is_err()
                        {
                            terminal_input = None;
                        }
                    }
                    Incoming::StdinClosed => stdin = None,
                    Incoming::Resize(size) => {
                        if let (Some(term), Some((width, height))) = (&terminal_size, exec::terminal_size(size)) {
                            let size = rustix::termios::Winsize { ws_row: height, ws_col: width, ws_xpixel: 0, ws_ypixel: 0 };
                            let _ = rustix::termios::tcsetwinsize(term, size);
                        }
                    }
                    Incoming::Other => {}
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    // the client is gone: so is its command
                    let _ = child.start_kill();
                    return;
                }
                Some(Ok(_)) => {}
            },
        }
    }
    drop(stdin);
    drop(terminal_input);
    let code = match child.wait().await {
        Ok(status) => status.code().unwrap_or(128 + 9),
        Err(_) => 1,
    };
    let status = exec::exit_status(&request.command, code);
    send(&mut socket, exec::ERROR, status.to_string().as_bytes()).await;
    close(&mut socket).await;
}
