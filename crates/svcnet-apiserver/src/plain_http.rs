//! Plain HTTP sent to the TLS port gets what Go's server answers: `400 Bad Request` with
//! "Client sent an HTTP request to an HTTPS server.", instead of raw TLS alert bytes. An
//! acceptor placed before the TLS handshake peeks at the first byte: a TLS handshake record
//! starts with 0x16; anything else is answered in plain text and the connection closed.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use axum_server::accept::Accept;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The first byte of a TLS record carrying a handshake.
const TLS_HANDSHAKE: u8 = 0x16;
/// How long a client may wait before sending its first byte.
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(10);
pub const ANSWER: &[u8] = b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

#[derive(Clone, Copy, Debug, Default)]
pub struct RefusePlainHttp;

impl<S: Send + 'static> Accept<TcpStream, S> for RefusePlainHttp {
    type Stream = TcpStream;
    type Service = S;
    type Future = Pin<Box<dyn Future<Output = io::Result<(TcpStream, S)>> + Send>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        Box::pin(async move {
            let mut first = [0u8; 1];
            let peeked = tokio::time::timeout(FIRST_BYTE_TIMEOUT, stream.peek(&mut first))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no first byte"))??;
            if peeked == 1 && first[0] != TLS_HANDSHAKE {
                let mut stream = stream;
                let _ = stream.write_all(ANSWER).await;
                let _ = stream.shutdown().await;
                return Err(io::Error::new(io::ErrorKind::InvalidData, "plain HTTP on the TLS port"));
            }
            Ok((stream, service))
        })
    }
}
