//! One `kubectl attach` session over a WebSocket (`v5.channel.k8s.io`), for `pods/attach`
//! here and for the lab's kubelet API: what the container writes goes out on its channels,
//! the client's stdin goes to the container, resize messages size its terminal; when the
//! container's output ends (it exited), a Success Status goes on the error channel, as the
//! kubelet sends it.

use std::io::Write;

use axum::extract::ws::{Message, WebSocket};

use crate::exec::{self, Attached, ExecRequest, Incoming};
use crate::exec_session::{close, send};

/// Relays what `attach` gave over `socket` as `request` asks; a failure to attach (the
/// container is not running, has no stdin) goes on the error channel, where kubectl reads it.
pub async fn run(mut socket: WebSocket, attached: std::io::Result<Attached>, request: ExecRequest) {
    let attached = match attached {
        Ok(a) => a,
        Err(e) => {
            let status = exec::start_failure(&format!("unable to attach: {e}"));
            send(&mut socket, exec::ERROR, status.to_string().as_bytes()).await;
            close(&mut socket).await;
            return;
        }
    };
    let Attached {
        mut output,
        mut input,
        terminal,
    } = attached;
    loop {
        tokio::select! {
            out = output.recv() => match out {
                Some((channel, data)) => {
                    let wanted = if channel == exec::STDOUT { request.stdout } else { request.stderr };
                    if wanted && !send(&mut socket, channel, &data).await {
                        return;
                    }
                }
                None => break,
            },
            message = socket.recv() => match message {
                Some(Ok(Message::Binary(data))) => match exec::incoming(&data) {
                    Incoming::Stdin(bytes) => {
                        if let Some(to) = &mut input
                            && (to.write_all(bytes).is_err() || to.flush().is_err())
                        {
                            input = None;
                        }
                    }
                    Incoming::StdinClosed => input = None,
                    Incoming::Resize(size) => {
                        if let (Some(term), Some((width, height))) = (&terminal, exec::terminal_size(size)) {
                            let size = rustix::termios::Winsize { ws_row: height, ws_col: width, ws_xpixel: 0, ws_ypixel: 0 };
                            let _ = rustix::termios::tcsetwinsize(term, size);
                        }
                    }
                    Incoming::Other => {}
                },
                // the client detached: the container goes on
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
    let done = serde_json::json!({ "metadata": {}, "status": "Success" });
    send(&mut socket, exec::ERROR, done.to_string().as_bytes()).await;
    close(&mut socket).await;
}
