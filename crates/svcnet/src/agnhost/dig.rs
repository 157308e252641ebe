//! `svcnet agnhost dig NAME [--type T]`: one DNS query to the first nameserver of
//! `/etc/resolv.conf` (what a pod's resolver uses), printing the response code and every
//! answer and additional record, one per line, as dig's short sections do. For looking at
//! SRV, PTR and CNAME records from inside a lab pod, where `getent` sees only addresses.

use std::net::{SocketAddr, UdpSocket};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

/// The first `nameserver` of a resolv.conf text.
pub fn first_nameserver(resolv_conf: &str) -> Option<std::net::IpAddr> {
    resolv_conf.lines().find_map(|l| {
        let mut words = l.split_whitespace();
        (words.next() == Some("nameserver"))
            .then(|| words.next()?.parse().ok())
            .flatten()
    })
}

/// Prints `status: CODE`, then `answer: RECORD` and `additional: RECORD` lines.
pub fn run(name: &str, record_type: &str, server: Option<SocketAddr>) -> Result<()> {
    let server = match server {
        Some(s) => s,
        None => {
            let conf = std::fs::read_to_string("/etc/resolv.conf").context("reading /etc/resolv.conf")?;
            SocketAddr::new(
                first_nameserver(&conf).context("no nameserver in /etc/resolv.conf")?,
                53,
            )
        }
    };
    let rtype = RecordType::from_str(&record_type.to_ascii_uppercase())
        .map_err(|_| anyhow::anyhow!("unknown record type {record_type:?}"))?;
    let name = Name::from_str(name).with_context(|| format!("{name:?} is not a DNS name"))?;
    let mut query = Message::new(std::process::id() as u16, MessageType::Query, OpCode::Query);
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(name, rtype));
    let socket = UdpSocket::bind(if server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })?;
    socket.set_read_timeout(Some(Duration::from_secs(2)))?;
    socket.send_to(&query.to_vec()?, server)?;
    let mut buf = [0u8; 4096];
    let (n, _) = socket
        .recv_from(&mut buf)
        .with_context(|| format!("no answer from {server}"))?;
    let reply = Message::from_vec(&buf[..n]).context("a malformed reply")?;
    if reply.metadata.id != query.metadata.id {
        bail!("a reply to another query");
    }
    println!("status: {}", reply.metadata.response_code);
    for r in &reply.answers {
        println!("answer: {r}");
    }
    for r in &reply.additionals {
        println!("additional: {r}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_first_nameserver_is_used() {
        let conf = "search a.svc.cluster.local\nnameserver 10.96.0.10\nnameserver 1.1.1.1\n";
        assert_eq!(super::first_nameserver(conf), Some("10.96.0.10".parse().unwrap()));
        assert_eq!(super::first_nameserver("search x\n"), None);
    }
}
