//! The exchange every netlink user here shares: one request out, its answers back (a dump's
//! parts, or the acknowledgement), and threads that work inside another network namespace.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use netlink_sys::Socket;
use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};

use crate::wire::{self, NLMSG_DONE, NLMSG_ERROR};

/// Sends one request (sequence number `seq`) and collects what answers it, until the end of
/// a dump or the acknowledgement; a refusal is the kernel's errno.
pub fn exchange(socket: &Socket, request: &[u8], seq: u32) -> io::Result<Vec<Vec<u8>>> {
    socket.send(request, 0)?;
    let mut answers = Vec::new();
    loop {
        let (datagram, _) = socket.recv_from_full()?;
        for m in wire::messages(&datagram).into_iter().filter(|m| m.seq == seq) {
            match m.msg_type {
                NLMSG_DONE => return Ok(answers),
                NLMSG_ERROR => {
                    return match m.error() {
                        Some((0, _)) => Ok(answers),
                        Some((code, _)) => Err(io::Error::from_raw_os_error(-code)),
                        None => Err(io::Error::other("malformed netlink error")),
                    };
                }
                _ => answers.push(m.payload.to_vec()),
            }
        }
    }
}

/// Runs `f` on a fresh thread inside the network namespace `netns` names (a file such as
/// `/run/netns/NAME`): entering a namespace changes only the calling thread, and sockets it
/// opens, processes it starts and `/proc/sys/net` files it writes belong to that namespace.
pub fn in_netns<T: Send>(netns: &Path, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    let ns = File::open(netns)?;
    std::thread::scope(|s| {
        s.spawn(|| {
            move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::Network))?;
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("namespace thread panicked")))
    })
}
