//! The netexec server. Every server stops by itself after `exit_after`.

use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};
use socket2::{Domain, Protocol, Socket, Type};

pub struct Options {
    pub name: String,
    pub http_port: Option<u16>,
    pub udp_port: Option<u16>,
    pub exit_after: Duration,
}

fn bind(addr: SocketAddr, ty: Type, proto: Protocol) -> Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), ty, Some(proto))?;
    s.set_reuse_address(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.bind(&addr.into()).with_context(|| format!("binding {addr}"))?;
    if ty == Type::STREAM {
        s.listen(128)?;
    }
    Ok(s)
}

/// Answers one request line of either protocol.
fn answer(name: &str, request: &str, peer: SocketAddr) -> String {
    let peer = match peer {
        SocketAddr::V6(v6) if v6.ip().to_ipv4_mapped().is_some() => {
            SocketAddr::new(v6.ip().to_ipv4_mapped().unwrap().into(), v6.port())
        }
        other => other,
    };
    let (path, query) = request.split_once('?').unwrap_or((request, ""));
    match path.trim_start_matches('/') {
        "" | "hostname" => name.to_owned(),
        "clientip" => peer.to_string(),
        "echo" => query
            .split('&')
            .find_map(|kv| kv.strip_prefix("msg="))
            .unwrap_or("")
            .to_owned(),
        other if other.starts_with("echo ") => other["echo ".len()..].to_owned(),
        _ => "unknown request".to_owned(),
    }
}

fn serve_http_connection(name: &str, stream: TcpStream) {
    let Ok(peer) = stream.peer_addr() else { return };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    super::http::serve(stream, |request_line| {
        let path = request_line.split_whitespace().nth(1).unwrap_or("/");
        let body = answer(name, path, peer);
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n{body}",
            body.len()
        )
    });
}

pub fn run(opts: Options) -> Result<()> {
    let exit_after = opts.exit_after;
    thread::spawn(move || {
        thread::sleep(exit_after);
        std::process::exit(0);
    });
    let mut handles = Vec::new();
    if let Some(port) = opts.http_port {
        for addr in [
            SocketAddr::from(([0, 0, 0, 0], port)),
            SocketAddr::from(([0u16; 8], port)),
        ] {
            let Ok(sock) = bind(addr, Type::STREAM, Protocol::TCP) else {
                continue;
            };
            let listener: TcpListener = sock.into();
            let name = opts.name.clone();
            handles.push(thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    let name = name.clone();
                    thread::spawn(move || serve_http_connection(&name, stream));
                }
            }));
        }
    }
    if let Some(port) = opts.udp_port {
        for addr in [
            SocketAddr::from(([0, 0, 0, 0], port)),
            SocketAddr::from(([0u16; 8], port)),
        ] {
            let Ok(sock) = bind(addr, Type::DGRAM, Protocol::UDP) else {
                continue;
            };
            let socket: UdpSocket = sock.into();
            let name = opts.name.clone();
            handles.push(thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while let Ok((n, peer)) = socket.recv_from(&mut buf) {
                    let req = String::from_utf8_lossy(&buf[..n]).trim().to_owned();
                    let _ = socket.send_to(answer(&name, &req, peer).as_bytes(), peer);
                }
            }));
        }
    }
    anyhow::ensure!(
        !handles.is_empty(),
        "nothing to serve: give --http-port and/or --udp-port"
    );
    eprintln!("netexec {} serving", opts.name);
    for h in handles {
        let _ = h.join();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::answer;

    #[test]
    fn answers() {
        let peer = "10.0.0.9:5555".parse().unwrap();
        assert_eq!(answer("pod1", "/hostname", peer), "pod1");
        assert_eq!(answer("pod1", "/clientip", peer), "10.0.0.9:5555");
        assert_eq!(answer("pod1", "/echo?msg=hi", peer), "hi");
        assert_eq!(answer("pod1", "echo there", peer), "there");
        assert_eq!(
            answer("pod1", "clientip", "[::ffff:1.2.3.4]:7".parse().unwrap()),
            "1.2.3.4:7"
        );
    }
}
