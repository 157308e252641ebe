//! The little HTTP/1.1 the built-in servers speak: read a request's head (bodies are not
//! read; GET and HEAD are what is sent to them), answer it, and go on on the same connection
//! until the client closes it.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

/// Answers each request on `stream` with what `respond` makes of its request line (the whole
/// response, head and body).
pub fn serve(stream: TcpStream, mut respond: impl FnMut(&str) -> String) {
    let Ok(reader) = stream.try_clone() else { return };
    let mut reader = BufReader::new(reader);
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header == "\r\n" || header == "\n" {
                break;
            }
        }
        if writer.write_all(respond(&request_line).as_bytes()).is_err() {
            return;
        }
    }
}
