//! SPDY/3.1 framing, the server's side of what `kubectl port-forward` speaks (tunnelled
//! inside a WebSocket, `SPDY/3.1+portforward.k8s.io`). No maintained crate under a licence
//! this project can take does it, so it is written here: frames are read from a byte buffer
//! as they arrive and written into one; header blocks are zlib streams primed with the
//! dictionary SPDY/3 defines, one stream per direction for the whole connection.
//!
//! Only what a server of kubectl needs: SYN_STREAM, SYN_REPLY, RST_STREAM, PING, GOAWAY and
//! DATA are understood; SETTINGS, HEADERS, WINDOW_UPDATE and unknown control frames are
//! skipped. Sizes are bounded: a frame's length is 24 bits by construction, and a header
//! block may not inflate beyond [`MAX_HEADER_BLOCK`].

use std::sync::LazyLock;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The flag that ends a stream's direction, on DATA, SYN_STREAM and SYN_REPLY alike.
pub const FLAG_FIN: u8 = 0x01;
/// Largest inflated header block accepted (kubectl's are a few dozen bytes).
pub const MAX_HEADER_BLOCK: usize = 64 * 1024;
/// Largest DATA payload written in one frame.
pub const MAX_DATA: usize = 32 * 1024;

const VERSION: u16 = 3;
const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;

/// RST_STREAM's status for a stream the server will not take.
pub const REFUSED_STREAM: u32 = 3;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpdyError {
    #[error("SPDY version {0} is not spoken here (3 is)")]
    Version(u16),
    #[error("a {0} frame is too short")]
    Short(&'static str),
    #[error("header block: {0}")]
    Headers(String),
}

/// One frame, as far as a port-forwarding server cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        flags: u8,
        headers: Vec<(String, String)>,
    },
    SynReply {
        stream_id: u32,
        flags: u8,
        headers: Vec<(String, String)>,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Ping(u32),
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Data {
        stream_id: u32,
        flags: u8,
        data: Vec<u8>,
    },
    /// A control frame of a type this server does not act on (SETTINGS, WINDOW_UPDATE, ...).
    Skipped(u16),
}

/// The dictionary SPDY/3 primes header compression with: 65 header names, each after its
/// length as four big-endian bytes, then a run of common values (status codes and texts,
/// dates, content types).
static DICTIONARY: LazyLock<Vec<u8>> = LazyLock::new(|| {
    const NAMES: [&str; 65] = [
        "options",
        "head",
        "post",
        "put",
        "delete",
        "trace",
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "accept-ranges",
        "age",
        "allow",
        "authorization",
        "cache-control",
        "connection",
        "content-base",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-md5",
        "content-range",
        "content-type",
        "date",
        "etag",
        "expect",
        "expires",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "pragma",
        "proxy-authenticate",
        "proxy-authorization",
        "range",
        "referer",
        "retry-after",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "vary",
        "via",
        "warning",
        "www-authenticate",
        "method",
        "get",
        "status",
        "200 OK",
        "version",
        "HTTP/1.1",
        "url",
        "public",
        "set-cookie",
        "keep-alive",
        "origin",
    ];
    const VALUES: &str = concat!(
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
        "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request",
        "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented",
        "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
        "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,",
        "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=",
        "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
    );
    let mut dictionary = Vec::with_capacity(1423);
    for name in NAMES {
        dictionary.extend_from_slice(&(name.len() as u32).to_be_bytes());
        dictionary.extend_from_slice(name.as_bytes());
    }
    dictionary.extend_from_slice(VALUES.as_bytes());
    dictionary
});

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Reads frames from the bytes of one connection, in order.
pub struct Reader {
    inflate: Decompress,
}

impl Default for Reader {
    fn default() -> Self {
        Self {
            inflate: Decompress::new(true),
        }
    }
}

impl Reader {
    /// The next whole frame at the front of `buffer`, removed from it; `None` until one has
    /// fully arrived.
    pub fn next(&mut self, buffer: &mut Vec<u8>) -> Result<Option<Frame>, SpdyError> {
        if buffer.len() < 8 {
            return Ok(None);
        }
        let length = (u32_at(buffer, 4) & 0x00ff_ffff) as usize;
        if buffer.len() < 8 + length {
            return Ok(None);
        }
        let frame: Vec<u8> = buffer.drain(..8 + length).collect();
        let flags = frame[4];
        let body = &frame[8..];
        if frame[0] & 0x80 == 0 {
            return Ok(Some(Frame::Data {
                stream_id: u32_at(&frame, 0) & 0x7fff_ffff,
                flags,
                data: body.to_vec(),
            }));
        }
        let version = u16::from_be_bytes([frame[0], frame[1]]) & 0x7fff;
        if version != VERSION {
            return Err(SpdyError::Version(version));
        }
        let kind = u16::from_be_bytes([frame[2], frame[3]]);
        let need = |n: usize, name: &'static str| {
            if body.len() < n {
                Err(SpdyError::Short(name))
            } else {
                Ok(())
            }
        };
        Ok(Some(match kind {
            SYN_STREAM => {
                need(10, "SYN_STREAM")?;
                Frame::SynStream {
                    stream_id: u32_at(body, 0) & 0x7fff_ffff,
                    flags,
                    headers: self.headers(&body[10..])?,
                }
            }
            SYN_REPLY => {
                need(4, "SYN_REPLY")?;
                Frame::SynReply {
                    stream_id: u32_at(body, 0) & 0x7fff_ffff,
                    flags,
                    headers: self.headers(&body[4..])?,
                }
            }
            RST_STREAM => {
                need(8, "RST_STREAM")?;
                Frame::RstStream {
                    stream_id: u32_at(body, 0) & 0x7fff_ffff,
                    status: u32_at(body, 4),
                }
            }
            PING => {
                need(4, "PING")?;
                Frame::Ping(u32_at(body, 0))
            }
            GOAWAY => {
                need(8, "GOAWAY")?;
                Frame::GoAway {
                    last_good_stream_id: u32_at(body, 0) & 0x7fff_ffff,
                    status: u32_at(body, 4),
                }
            }
            other => Frame::Skipped(other),
        }))
    }

    /// Inflates one header block (continuing the connection's zlib stream) and splits it
    /// into pairs; a value with several parts keeps its NUL separators.
    fn headers(&mut self, compressed: &[u8]) -> Result<Vec<(String, String)>, SpdyError> {
        let mut plain = Vec::with_capacity(256);
        let mut input = compressed;
        loop {
            if plain.len() == plain.capacity() {
                if plain.len() >= MAX_HEADER_BLOCK {
                    return Err(SpdyError::Headers("larger than 64 KiB".into()));
                }
                plain.reserve(plain.len());
            }
            let (before, written) = (self.inflate.total_in(), plain.len());
            let primed = match self.inflate.decompress_vec(input, &mut plain, FlushDecompress::Sync) {
                Ok(Status::StreamEnd) => return Err(SpdyError::Headers("the zlib stream ended".into())),
                Ok(_) => false,
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(&DICTIONARY)
                        .map_err(|e| SpdyError::Headers(e.to_string()))?;
                    true
                }
                Err(e) => return Err(SpdyError::Headers(e.to_string())),
            };
            let used = (self.inflate.total_in() - before) as usize;
            input = &input[used..];
            if input.is_empty() && plain.len() < plain.capacity() {
                break;
            }
            if !primed && used == 0 && plain.len() == written && plain.len() < plain.capacity() {
                return Err(SpdyError::Headers("the zlib stream stalled".into()));
            }
        }
        parse_pairs(&plain)
    }
}

fn parse_pairs(block: &[u8]) -> Result<Vec<(String, String)>, SpdyError> {
    let short = || SpdyError::Headers("truncated".into());
    let mut at = 0;
    let mut take = |n: usize| -> Result<&[u8], SpdyError> {
        let part = block.get(at..at + n).ok_or_else(short)?;
        at += n;
        Ok(part)
    };
    let count = u32_at(take(4)?, 0) as usize;
    let mut pairs = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let n = u32_at(take(4)?, 0) as usize;
        let name = String::from_utf8_lossy(take(n)?).into_owned();
        let n = u32_at(take(4)?, 0) as usize;
        let value = String::from_utf8_lossy(take(n)?).into_owned();
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// Writes frames for one connection, in order.
pub struct Writer {
    deflate: Compress,
    primed: bool,
}

impl Default for Writer {
    fn default() -> Self {
        Self {
            deflate: Compress::new(Compression::default(), true),
            primed: false,
        }
    }
}

fn control(kind: u16, flags: u8, body: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&((u32::from(flags) << 24) | body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
}

impl Writer {
    /// Appends `frame` to `out`. DATA longer than 24 bits of length is the caller's to split
    /// (see [`MAX_DATA`]).
    pub fn write(&mut self, frame: &Frame, out: &mut Vec<u8>) -> Result<(), SpdyError> {
        match frame {
            Frame::SynStream {
                stream_id,
                flags,
                headers,
            } => {
                let mut body = Vec::new();
                body.extend_from_slice(&stream_id.to_be_bytes());
                body.extend_from_slice(&[0; 6]);
                body.extend(self.header_block(headers)?);
                control(SYN_STREAM, *flags, &body, out);
            }
            Frame::SynReply {
                stream_id,
                flags,
                headers,
            } => {
                let mut body = stream_id.to_be_bytes().to_vec();
                body.extend(self.header_block(headers)?);
                control(SYN_REPLY, *flags, &body, out);
            }
            Frame::RstStream { stream_id, status } => {
                let mut body = stream_id.to_be_bytes().to_vec();
                body.extend_from_slice(&status.to_be_bytes());
                control(RST_STREAM, 0, &body, out);
            }
            Frame::Ping(id) => control(PING, 0, &id.to_be_bytes(), out),
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                let mut body = last_good_stream_id.to_be_bytes().to_vec();
                body.extend_from_slice(&status.to_be_bytes());
                control(GOAWAY, 0, &body, out);
            }
            Frame::Data { stream_id, flags, data } => {
                out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
                out.extend_from_slice(&((u32::from(*flags) << 24) | (data.len() as u32 & 0x00ff_ffff)).to_be_bytes());
                out.extend_from_slice(data);
            }
            Frame::Skipped(_) => {}
        }
        Ok(())
    }

    fn header_block(&mut self, headers: &[(String, String)]) -> Result<Vec<u8>, SpdyError> {
        let mut plain = (headers.len() as u32).to_be_bytes().to_vec();
        for (name, value) in headers {
            plain.extend_from_slice(&(name.len() as u32).to_be_bytes());
            plain.extend_from_slice(name.to_ascii_lowercase().as_bytes());
            plain.extend_from_slice(&(value.len() as u32).to_be_bytes());
            plain.extend_from_slice(value.as_bytes());
        }
        if !self.primed {
            self.deflate
                .set_dictionary(&DICTIONARY)
                .map_err(|e| SpdyError::Headers(e.to_string()))?;
            self.primed = true;
        }
        let mut compressed = Vec::with_capacity(plain.len() + 64);
        let mut input = &plain[..];
        loop {
            let before = self.deflate.total_in();
            let status = self
                .deflate
                .compress_vec(input, &mut compressed, FlushCompress::Sync)
                .map_err(|e| SpdyError::Headers(e.to_string()))?;
            input = &input[(self.deflate.total_in() - before) as usize..];
            // done once everything went in and the flush had room to finish
            if input.is_empty() && compressed.len() < compressed.capacity() && status == Status::Ok {
                return Ok(compressed);
            }
            compressed.reserve(compressed.capacity().max(64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_dictionary_is_spdy_3_s() {
        assert_eq!(DICTIONARY.len(), 1423);
        // its Adler-32, the DICTID every SPDY/3 header stream's zlib header names
        let (mut a, mut b) = (1u32, 0u32);
        for byte in DICTIONARY.iter() {
            a = (a + u32::from(*byte)) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!((b << 16) | a, 0xe3c6_a7c2);
    }

    #[test]
    fn frames_round_trip_and_header_streams_continue() {
        let mut writer = Writer::default();
        let mut reader = Reader::default();
        let frames = [
            Frame::SynStream {
                stream_id: 1,
                flags: 0,
                headers: pairs(&[("streamtype", "error"), ("port", "8080"), ("requestid", "0")]),
            },
            Frame::SynStream {
                stream_id: 3,
                flags: 0,
                headers: pairs(&[("streamtype", "data"), ("port", "8080"), ("requestid", "0")]),
            },
            Frame::SynReply {
                stream_id: 3,
                flags: 0,
                headers: vec![],
            },
            Frame::Data {
                stream_id: 3,
                flags: FLAG_FIN,
                data: b"GET / HTTP/1.1\r\n\r\n".to_vec(),
            },
            Frame::Ping(7),
            Frame::RstStream {
                stream_id: 3,
                status: 5,
            },
            Frame::GoAway {
                last_good_stream_id: 3,
                status: 0,
            },
        ];
        let mut wire = Vec::new();
        for f in &frames {
            writer.write(f, &mut wire).unwrap();
        }
        // arriving a byte at a time changes nothing
        let mut buffer = Vec::new();
        let mut read = Vec::new();
        for byte in wire {
            buffer.push(byte);
            while let Some(f) = reader.next(&mut buffer).unwrap() {
                read.push(f);
            }
        }
        assert_eq!(read, frames);
        assert!(buffer.is_empty());
    }

    #[test]
    fn what_kubectl_sends_reads() {
        // the first bytes kubectl 1.37 sent in a port-forward session, captured from a real
        // one: the error stream's SYN_STREAM (port 8080, request 0), its FIN, then the data
        // stream's SYN_STREAM, whose header block continues the first one's zlib stream
        let mut buffer = include_bytes!("spdy/kubectl-port-forward.bin").to_vec();
        let mut reader = Reader::default();
        let mut next = || reader.next(&mut buffer).unwrap().unwrap();
        let sorted = |mut headers: Vec<(String, String)>| {
            headers.sort();
            headers
        };
        let Frame::SynStream {
            stream_id: 1, headers, ..
        } = next()
        else {
            panic!("not the error stream's SYN_STREAM");
        };
        assert_eq!(
            sorted(headers),
            pairs(&[("port", "8080"), ("requestid", "0"), ("streamtype", "error")])
        );
        assert_eq!(
            next(),
            Frame::Data {
                stream_id: 1,
                flags: FLAG_FIN,
                data: vec![]
            }
        );
        let Frame::SynStream {
            stream_id: 3, headers, ..
        } = next()
        else {
            panic!("not the data stream's SYN_STREAM");
        };
        assert_eq!(
            sorted(headers),
            pairs(&[("port", "8080"), ("requestid", "0"), ("streamtype", "data")])
        );
        assert!(buffer.is_empty());
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let mut reader = Reader::default();
        // version 2
        let mut v2 = vec![0x80, 0x02, 0, 1, 0, 0, 0, 0];
        assert_eq!(reader.next(&mut v2), Err(SpdyError::Version(2)));
        // a SYN_STREAM too short for its fields
        let mut short = vec![0x80, 0x03, 0, 1, 0, 0, 0, 2, 0, 0];
        assert_eq!(reader.next(&mut short), Err(SpdyError::Short("SYN_STREAM")));
        // a header block that is not zlib
        let mut garbage = vec![0x80, 0x03, 0, 2, 0, 0, 0, 8, 0, 0, 0, 1, 1, 2, 3, 4];
        assert!(matches!(reader.next(&mut garbage), Err(SpdyError::Headers(_))));
        // a header block claiming more pairs than it holds
        assert!(parse_pairs(&[0, 0, 0, 9, 0, 0, 0, 1, b'a']).is_err());
        // half a frame is not yet a frame
        let mut half = vec![0, 0, 0, 1, 0, 0, 0, 9, 1, 2];
        assert_eq!(reader.next(&mut half), Ok(None));
        assert_eq!(half.len(), 10);
    }

    #[test]
    fn a_bomb_of_a_header_block_is_refused() {
        // 1 MiB of zeros deflates to about 1 KiB: over the limit once inflated
        let mut deflate = Compress::new(Compression::best(), true);
        deflate.set_dictionary(&DICTIONARY).unwrap();
        let zeros = vec![0u8; 1 << 20];
        let mut compressed = Vec::with_capacity(1 << 16);
        deflate
            .compress_vec(&zeros, &mut compressed, FlushCompress::Sync)
            .unwrap();
        let mut frame = Vec::new();
        let mut body = 1u32.to_be_bytes().to_vec();
        body.extend(compressed);
        control(SYN_REPLY, 0, &body, &mut frame);
        assert_eq!(
            Reader::default().next(&mut frame),
            Err(SpdyError::Headers("larger than 64 KiB".into()))
        );
    }
}
