//! The client side: one request per line of output, or a long-lived connection that keeps
//! asking (to prove a connection survives proxy restarts and endpoint churn).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

pub struct Options {
    pub target: SocketAddr,
    pub udp: bool,
    pub request: String,
    pub count: u32,
    pub timeout: Duration,
    /// Keep one TCP connection and ask every `interval` for this long.
    pub hold: Option<Duration>,
    pub interval: Duration,
    /// Bind UDP to this local port (so repeated runs reuse one conntrack flow).
    pub local_port: Option<u16>,
    /// Print one JSON line of latency statistics over `count` new connections instead.
    pub stats: bool,
    /// Open the `count` TCP connections from consecutive local ports starting here, printing
    /// `PORT ANSWER` for each: the same flows again on every run, to see which endpoint each
    /// flow reaches (connections end with a reset, so a port is free again at once).
    pub source_ports: Option<u16>,
}

fn error_kind(e: &std::io::Error) -> &'static str {
    match e.kind() {
        ErrorKind::ConnectionRefused => "refused",
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => "reset",
        ErrorKind::TimedOut | ErrorKind::WouldBlock => "timeout",
        ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => "unreachable",
        _ => "other",
    }
}

fn http_exchange(stream: &mut TcpStream, request: &str) -> std::io::Result<String> {
    write!(stream, "GET {request} HTTP/1.1\r\nHost: svcnet\r\n\r\n")?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(ErrorKind::ConnectionReset.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= len {
                return Ok(body[..len].to_owned());
            }
        }
    }
}

fn tcp_once(opts: &Options) -> String {
    let result = TcpStream::connect_timeout(&opts.target, opts.timeout).and_then(|mut s| {
        s.set_read_timeout(Some(opts.timeout))?;
        http_exchange(&mut s, &opts.request)
    });
    match result {
        Ok(body) => body,
        Err(e) => format!("ERROR {}", error_kind(&e)),
    }
}

/// One request on a connection from local port `port`, closed with a reset.
fn tcp_from_port(opts: &Options, port: u16) -> String {
    use socket2::{Domain, Socket, Type};
    let local: SocketAddr = match opts.target {
        SocketAddr::V4(_) => ([0, 0, 0, 0], port).into(),
        SocketAddr::V6(_) => ([0u16; 8], port).into(),
    };
    let result = Socket::new(Domain::for_address(opts.target), Type::STREAM, None).and_then(|socket| {
        socket.set_reuse_address(true)?;
        socket.bind(&local.into())?;
        socket.connect_timeout(&opts.target.into(), opts.timeout)?;
        socket.set_linger(Some(Duration::ZERO))?;
        let mut stream: TcpStream = socket.into();
        stream.set_read_timeout(Some(opts.timeout))?;
        http_exchange(&mut stream, &opts.request)
    });
    match result {
        Ok(body) => body,
        Err(e) => format!("ERROR {}", error_kind(&e)),
    }
}

fn udp_once(opts: &Options) -> String {
    let local: SocketAddr = match opts.target {
        SocketAddr::V4(_) => ([0, 0, 0, 0], opts.local_port.unwrap_or(0)).into(),
        SocketAddr::V6(_) => ([0u16; 8], opts.local_port.unwrap_or(0)).into(),
    };
    let result = UdpSocket::bind(local).and_then(|s| {
        s.set_read_timeout(Some(opts.timeout))?;
        s.connect(opts.target)?;
        s.send(opts.request.trim_start_matches('/').as_bytes())?;
        let mut buf = [0u8; 2048];
        let n = s.recv(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    });
    match result {
        Ok(body) => body,
        Err(e) => format!("ERROR {}", error_kind(&e)),
    }
}

fn hold(opts: &Options, duration: Duration) -> String {
    let mut stream = match TcpStream::connect_timeout(&opts.target, opts.timeout) {
        Ok(s) => s,
        Err(e) => return format!("ERROR {}", error_kind(&e)),
    };
    let _ = stream.set_read_timeout(Some(opts.timeout));
    let start = Instant::now();
    let mut answers = 0u32;
    let mut first = None;
    while start.elapsed() < duration {
        match http_exchange(&mut stream, &opts.request) {
            Ok(body) => {
                answers += 1;
                if first.is_none() {
                    // at once, so a test can act on the endpoint this connection reached
                    println!("CONNECTED {body}");
                    let _ = std::io::Write::flush(&mut std::io::stdout());
                    first = Some(body);
                }
            }
            Err(e) => return format!("ERROR {} after {answers} answers", error_kind(&e)),
        }
        std::thread::sleep(opts.interval);
    }
    format!("OK {answers} answers from {}", first.unwrap_or_default())
}

/// `count` requests, each on a new connection: connect time (the first packet's round trip
/// through the rules), request time, and rate.
fn stats(opts: &Options) -> String {
    let mut connect = Vec::new();
    let mut total = Vec::new();
    let mut errors = 0u32;
    let start = Instant::now();
    for _ in 0..opts.count.max(1) {
        let t0 = Instant::now();
        match TcpStream::connect_timeout(&opts.target, opts.timeout) {
            Ok(mut s) => {
                connect.push(t0.elapsed());
                let _ = s.set_read_timeout(Some(opts.timeout));
                match http_exchange(&mut s, &opts.request) {
                    Ok(_) => total.push(t0.elapsed()),
                    Err(_) => errors += 1,
                }
                // close with a reset: thousands of TIME_WAIT sockets to one destination
                // would make the client's port search, not the rules, the thing measured
                let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
            }
            Err(_) => errors += 1,
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let pct = |v: &mut Vec<Duration>, p: f64| -> f64 {
        if v.is_empty() {
            return 0.0;
        }
        v.sort();
        let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
        // milliseconds to 0.1 µs: first-packet times are tens of µs
        (v[i].as_secs_f64() * 1e7).round() / 1e4
    };
    format!(
        "{{\"requests\":{},\"errors\":{errors},\"rate_per_s\":{:.1},\"connect_ms\":{{\"p50\":{},\"p90\":{},\"p99\":{}}},\"request_ms\":{{\"p50\":{},\"p90\":{},\"p99\":{}}}}}",
        total.len(),
        total.len() as f64 / elapsed,
        pct(&mut connect, 50.0),
        pct(&mut connect, 90.0),
        pct(&mut connect, 99.0),
        pct(&mut total, 50.0),
        pct(&mut total, 90.0),
        pct(&mut total, 99.0),
    )
}

pub fn run(opts: Options) {
    if opts.stats {
        println!("{}", stats(&opts));
        return;
    }
    if let Some(d) = opts.hold {
        println!("{}", hold(&opts, d));
        return;
    }
    if let Some(first) = opts.source_ports {
        for i in 0..opts.count.max(1) {
            let Some(port) = u16::try_from(u32::from(first) + i).ok() else {
                break;
            };
            println!("{port} {}", tcp_from_port(&opts, port));
        }
        return;
    }
    for _ in 0..opts.count.max(1) {
        let line = if opts.udp { udp_once(&opts) } else { tcp_once(&opts) };
        println!("{line}");
    }
}
