//! `svcnet agnhost nginx`: the lab's stand-in for the `nginx` image: nginx's welcome page on
//! every path over HTTP (port 80 by default), so the Kubernetes docs' nginx examples answer
//! as they do in a cluster.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};

/// The page: titled as nginx's default page is (what the docs' examples look for), with
/// words of the lab's own.
pub const WELCOME: &str = "<!DOCTYPE html>
<html>
<head><title>Welcome to nginx!</title></head>
<body>
<h1>Welcome to nginx!</h1>
<p>The svcnet lab's stand-in for the nginx image answers every request with this page.</p>
</body>
</html>
";

fn serve(stream: TcpStream) {
    super::http::serve(stream, |request_line| {
        let head_only = request_line.starts_with("HEAD ");
        format!(
            "HTTP/1.1 200 OK\r\nServer: nginx (svcnet lab)\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{}",
            WELCOME.len(),
            if head_only { "" } else { WELCOME }
        )
    });
}

/// Serves on `port` (IPv4 and IPv6) until `exit_after`.
pub fn run(port: u16, exit_after: Duration) -> Result<()> {
    thread::spawn(move || {
        thread::sleep(exit_after);
        std::process::exit(0);
    });
    let listener = TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port)))
        .with_context(|| format!("listening on port {port}"))?;
    for stream in listener.incoming().flatten() {
        thread::spawn(move || serve(stream));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    #[test]
    fn every_path_gets_the_welcome_page() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            super::serve(stream);
        });
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        client
            .write_all(b"GET /anything HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        assert!(answer.contains("<h1>Welcome to nginx!</h1>"), "{answer}");
    }
}
