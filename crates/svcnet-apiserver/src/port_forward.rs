//! `kubectl port-forward`'s session, for `pods/portforward` here and for the lab's kubelet
//! API (which upstream's kube-apiserver proxies it to). kubectl 1.37 tunnels a SPDY/3.1
//! connection through a WebSocket (`SPDY/3.1+portforward.k8s.io`): the WebSocket's binary
//! messages carry the SPDY byte stream. For each local connection kubectl opens two streams
//! with the same `requestID`: an error stream (kubectl closes its side at once and reads
//! what the server reports) and a data stream, whose bytes go to and from the pod's `port`.
//! As the kubelet does, the server opens that port on the pod's loopback, copies both ways,
//! and once the pod's side ends it ends the data stream and then the error stream.

use std::collections::HashMap;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::exec::SharedPodStreaming;
use crate::spdy::{self, FLAG_FIN, Frame};

/// The WebSocket subprotocol served.
pub const PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// What a forwarded connection gets from the client: bytes, or the end of its sending (FIN).
type ToPod = mpsc::Sender<Option<Vec<u8>>>;

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn data(stream_id: u32, flags: u8, data: Vec<u8>) -> Frame {
    Frame::Data { stream_id, flags, data }
}

/// One forwarded connection: opens `port` in `pod`, then copies until the pod's side ends or
/// the client resets the data stream.
async fn forward(
    hook: SharedPodStreaming,
    pod: Value,
    port: u16,
    streams: (u32, Option<u32>),
    out: mpsc::Sender<Frame>,
    mut from_client: mpsc::Receiver<Option<Vec<u8>>>,
) {
    let (data_id, error_id) = streams;
    let name = pod["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    let uid = pod["metadata"]["uid"].as_str().unwrap_or_default().to_owned();
    let connected = tokio::task::spawn_blocking(move || hook.connect(&pod, port)).await;
    let stream = match connected {
        Ok(Ok(s)) => s
            .set_nonblocking(true)
            .and_then(|()| tokio::net::TcpStream::from_std(s)),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(std::io::Error::other(e)),
    };
    let stream = match stream {
        Ok(s) => s,
        Err(e) => {
            // the kubelet's words, which kubectl prints
            let message = format!("error forwarding port {port} to pod {name}, uid {uid}: {e}");
            if let Some(error_id) = error_id {
                let _ = out.send(data(error_id, 0, message.into_bytes())).await;
                let _ = out.send(data(error_id, FLAG_FIN, vec![])).await;
            }
            let _ = out.send(data(data_id, FLAG_FIN, vec![])).await;
            return;
        }
    };
    let (mut from_pod, mut to_pod) = stream.into_split();
    // the client's bytes into the pod; true when the client reset the stream
    let mut client_side = tokio::spawn(async move {
        loop {
            match from_client.recv().await {
                Some(Some(bytes)) => {
                    if to_pod.write_all(&bytes).await.is_err() {
                        return false;
                    }
                }
                // the client is done sending: so is the pod's reader
                Some(None) => {
                    let _ = to_pod.shutdown().await;
                    return false;
                }
                None => return true,
            }
        }
    });
    let pod_out = out.clone();
    let pod_side = async move {
        let mut buf = vec![0u8; spdy::MAX_DATA];
        loop {
            match from_pod.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if pod_out.send(data(data_id, 0, buf[..n].to_vec())).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = pod_out.send(data(data_id, FLAG_FIN, vec![])).await;
    };
    tokio::pin!(pod_side);
    tokio::select! {
        () = &mut pod_side => {}
        reset = &mut client_side => {
            if !matches!(reset, Ok(true)) {
                (&mut pod_side).await;
            }
        }
    }
    client_side.abort();
    if let Some(error_id) = error_id {
        let _ = out.send(data(error_id, FLAG_FIN, vec![])).await;
    }
}

/// Serves one port-forward session over `socket` for `pod` (the object).
pub async fn run(socket: WebSocket, hook: SharedPodStreaming, pod: Value) {
    let (mut sink, mut incoming) = socket.split();
    let (out, mut outgoing) = mpsc::channel::<Frame>(64);
    let writer = tokio::spawn(async move {
        let mut framer = spdy::Writer::default();
        while let Some(frame) = outgoing.recv().await {
            let mut bytes = Vec::new();
            if framer.write(&frame, &mut bytes).is_err() || sink.send(Message::Binary(bytes.into())).await.is_err() {
                break;
            }
        }
        let close = CloseFrame {
            code: axum::extract::ws::close_code::NORMAL,
            reason: "".into(),
        };
        let _ = sink.send(Message::Close(Some(close))).await;
    });
    let mut reader = spdy::Reader::default();
    let mut buffer = Vec::new();
    // requestID -> the error stream opened for it
    let mut error_streams: HashMap<String, u32> = HashMap::new();
    let mut to_pods: HashMap<u32, ToPod> = HashMap::new();
    let mut forwards = Vec::new();
    'session: while let Some(Ok(message)) = incoming.next().await {
        match message {
            Message::Binary(bytes) => buffer.extend_from_slice(&bytes),
            Message::Close(_) => break,
            _ => continue,
        }
        loop {
            let frame = match reader.next(&mut buffer) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "port-forward: bad SPDY input");
                    let _ = out
                        .send(Frame::GoAway {
                            last_good_stream_id: 0,
                            status: 1,
                        })
                        .await;
                    break 'session;
                }
            };
            match frame {
                Frame::SynStream { stream_id, headers, .. } => {
                    let reply = Frame::SynReply {
                        stream_id,
                        flags: 0,
                        headers: vec![],
                    };
                    if out.send(reply).await.is_err() {
                        break 'session;
                    }
                    let request = header(&headers, "requestid").unwrap_or_default().to_owned();
                    let port = header(&headers, "port").and_then(|p| p.parse::<u16>().ok());
                    match (header(&headers, "streamtype"), port) {
                        (Some("error"), _) => {
                            error_streams.insert(request, stream_id);
                        }
                        (Some("data"), Some(port)) if port > 0 => {
                            let (tx, rx) = mpsc::channel(16);
                            to_pods.insert(stream_id, tx);
                            let streams = (stream_id, error_streams.remove(&request));
                            forwards.retain(|f: &tokio::task::JoinHandle<()>| !f.is_finished());
                            forwards.push(tokio::spawn(forward(
                                hook.clone(),
                                pod.clone(),
                                port,
                                streams,
                                out.clone(),
                                rx,
                            )));
                        }
                        _ => {
                            let refused = Frame::RstStream {
                                stream_id,
                                status: spdy::REFUSED_STREAM,
                            };
                            let _ = out.send(refused).await;
                        }
                    }
                }
                Frame::Data { stream_id, flags, data } => {
                    if let Some(to_pod) = to_pods.get(&stream_id) {
                        if !data.is_empty() && to_pod.send(Some(data)).await.is_err() {
                            to_pods.remove(&stream_id);
                        } else if flags & FLAG_FIN != 0 {
                            let _ = to_pod.send(None).await;
                            to_pods.remove(&stream_id);
                        }
                    }
                }
                Frame::RstStream { stream_id, .. } => {
                    to_pods.remove(&stream_id);
                }
                Frame::Ping(id) => {
                    if out.send(Frame::Ping(id)).await.is_err() {
                        break 'session;
                    }
                }
                Frame::GoAway { .. } => break 'session,
                Frame::SynReply { .. } | Frame::Skipped(_) => {}
            }
        }
    }
    // the client is gone: so are its connections
    for f in forwards {
        f.abort();
    }
    drop(out);
    let _ = writer.await;
}
