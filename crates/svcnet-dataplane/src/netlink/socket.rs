//! A netlink socket to nf_tables, opened in a chosen network namespace. Sends a batch as one
//! transaction and reads the kernel's answers, and dumps objects.
//!
//! The kernel handles a batch inside `send`, so every answer is queued on the socket when
//! `send` returns; only the last message asks for an acknowledgement, and errors come back
//! tagged with the sequence number of the message that caused them.

use std::io;
use std::path::Path;

use netlink_sys::{Socket, protocols::NETLINK_NETFILTER};
use rustix::net::sockopt;

use super::wire::{self, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_ERROR, Writer};
pub use svcnet_netlink::socket::{exchange, in_netns};

/// Room for the kernel's answers to a batch (errors echo only headers; see `set_cap_ack`).
const RECEIVE_BUFFER: usize = 8 << 20;

pub struct NfSocket {
    socket: Socket,
    seq: u32,
}

/// Why a transaction failed.
#[derive(Debug)]
pub enum TransactError {
    Io(io::Error),
    /// The kernel rejected message `seq` with errno `code`.
    Rejected {
        seq: u32,
        code: i32,
    },
    /// The kernel answered neither with an acknowledgement nor with an error.
    NoAnswer,
}

impl NfSocket {
    /// A socket in the current network namespace, or in the one `netns` names (a file such as
    /// `/run/netns/NAME`); the socket stays in that namespace for its whole life.
    pub fn open(netns: Option<&Path>) -> io::Result<Self> {
        let socket = match netns {
            None => new_socket()?,
            Some(path) => in_netns(path, new_socket)?,
        };
        Ok(NfSocket { socket, seq: 1 })
    }

    /// Sequence numbers for the next batch's messages start here.
    pub fn next_seq(&self) -> u32 {
        self.seq
    }

    /// Sends a batch whose messages use sequence numbers from `next_seq()` up to `last_seq`,
    /// and waits for its outcome.
    pub fn transact(&mut self, batch: &[u8], last_seq: u32) -> Result<(), TransactError> {
        self.seq = last_seq.wrapping_add(1);
        let wanted = batch.len() + (64 << 10);
        let current = sockopt::socket_send_buffer_size(&self.socket).map_err(|e| TransactError::Io(e.into()))?;
        if current < wanted {
            sockopt::set_socket_send_buffer_size_force(&self.socket, wanted)
                .map_err(|e| TransactError::Io(e.into()))?;
        }
        self.socket.send(batch, 0).map_err(TransactError::Io)?;
        // everything the kernel answers is queued by now: read until the queue is empty
        self.socket.set_non_blocking(true).map_err(TransactError::Io)?;
        let outcome = self.read_outcome(last_seq);
        self.socket.set_non_blocking(false).map_err(TransactError::Io)?;
        outcome
    }

    fn read_outcome(&mut self, last_seq: u32) -> Result<(), TransactError> {
        let mut error = None;
        loop {
            let datagram = match self.socket.recv_from_full() {
                Ok((d, _)) => d,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(error.unwrap_or(TransactError::NoAnswer));
                }
                Err(e) => return Err(TransactError::Io(e)),
            };
            for m in wire::messages(&datagram) {
                if m.msg_type != NLMSG_ERROR {
                    continue;
                }
                match m.error() {
                    Some((0, seq)) if seq == last_seq && error.is_none() => return Ok(()),
                    Some((0, _)) => {}
                    Some((code, seq)) => {
                        error.get_or_insert(TransactError::Rejected { seq, code: -code });
                    }
                    None => return Err(TransactError::NoAnswer),
                }
            }
        }
    }

    /// Dumps every object of `msg_type` (an `NFT_MSG_GET*`) in `family`, with `attrs` as the
    /// request's attributes (e.g. the table and set of `GETSETELEM`). Returns each answer
    /// message's bytes.
    pub fn dump(&mut self, msg_type: u16, family: u8, attrs: &dyn Fn(&mut Writer)) -> io::Result<Vec<Vec<u8>>> {
        self.dump_in(wire::NFNL_SUBSYS_NFTABLES, msg_type, family, attrs)
    }

    /// `dump` for any netfilter subsystem (e.g. conntrack's).
    pub fn dump_in(
        &mut self,
        subsystem: u16,
        msg_type: u16,
        family: u8,
        attrs: &dyn Fn(&mut Writer),
    ) -> io::Result<Vec<Vec<u8>>> {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let mut w = Writer::default();
        w.begin(
            subsystem << 8 | msg_type,
            NLM_F_REQUEST | NLM_F_DUMP | NLM_F_ACK,
            seq,
            family,
            0,
        );
        attrs(&mut w);
        w.end();
        exchange(&self.socket, &w.buf, seq)
    }
}

impl NfSocket {
    /// Sends one request of `subsystem` outside any batch and waits for its acknowledgement.
    pub fn request(
        &mut self,
        subsystem: u16,
        msg_type: u16,
        family: u8,
        attrs: &dyn Fn(&mut Writer),
    ) -> io::Result<()> {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let mut w = Writer::default();
        w.begin(subsystem << 8 | msg_type, NLM_F_REQUEST | NLM_F_ACK, seq, family, 0);
        attrs(&mut w);
        w.end();
        exchange(&self.socket, &w.buf, seq).map(drop)
    }
}

fn new_socket() -> io::Result<Socket> {
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind_auto()?;
    socket.set_cap_ack(true)?;
    socket.set_ext_ack(true)?;
    sockopt::set_socket_recv_buffer_size_force(&socket, RECEIVE_BUFFER)
        .or_else(|_| sockopt::set_socket_recv_buffer_size(&socket, RECEIVE_BUFFER))?;
    Ok(socket)
}
