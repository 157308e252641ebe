//! The native backend: nf_tables over netlink, with no `nft` binary. Operations become one
//! batch (one transaction); a rejected message is named in the error.
//!
//! - [`wire`]: message and attribute layout (re-exported from `svcnet-netlink`).
//! - [`consts`]: the kernel's nf_tables numbers.
//! - [`encode`]: operations and typed rules → nf_tables messages.
//! - [`socket`]: the netlink socket (in a chosen network namespace), transactions and dumps.
//! - [`udata`]: the user data nft keeps with sets, so `nft list` shows ours alike.
//! - [`dump`]: reads our tables back from the kernel.
//! - [`conntrack`]: lists conntrack entries and deletes stale ones (ctnetlink).

pub mod conntrack;
pub mod consts;
pub mod dump;
pub mod encode;
pub mod socket;
pub mod udata;
/// The message layer, from the shared netlink crate.
pub use svcnet_netlink::wire;

use std::path::PathBuf;

use crate::backend::{Backend, BackendError};
use crate::diff::Op;
use crate::ir::RulesetView;
use encode::Batch;
use socket::{NfSocket, TransactError};

/// Applies operations through a netlink socket to nf_tables.
pub struct Netlink {
    socket: NfSocket,
}

impl Netlink {
    /// A backend for the current network namespace, or for the one `netns` names
    /// (`/run/netns/NAME`).
    pub fn open(netns: Option<PathBuf>) -> Result<Self, BackendError> {
        let socket = NfSocket::open(netns.as_deref()).map_err(|source| BackendError::Netlink {
            what: "open a netlink socket to nf_tables".into(),
            source,
        })?;
        Ok(Netlink { socket })
    }

    /// The backend for a named network namespace (`ip netns` style).
    pub fn in_netns(name: &str) -> Result<Self, BackendError> {
        Netlink::open(Some(PathBuf::from("/run/netns").join(name)))
    }

    pub fn socket(&mut self) -> &mut NfSocket {
        &mut self.socket
    }

    fn run(&mut self, fill: impl FnOnce(&mut Batch)) -> Result<(), BackendError> {
        let mut batch = Batch::new(self.socket.next_seq());
        fill(&mut batch);
        let (bytes, last, descriptions) = batch.finish();
        let Some(last) = last else { return Ok(()) };
        self.socket.transact(&bytes, last).map_err(|e| match e {
            TransactError::Io(source) => BackendError::Netlink {
                what: "send the transaction".into(),
                source,
            },
            TransactError::Rejected { seq, code } => BackendError::Netlink {
                what: format!("the kernel rejected \"{}\"", descriptions.of(seq)),
                source: std::io::Error::from_raw_os_error(code),
            },
            TransactError::NoAnswer => BackendError::Netlink {
                what: "read the kernel's answer".into(),
                source: std::io::Error::other("no acknowledgement"),
            },
        })
    }
}

impl Backend for Netlink {
    fn apply(&mut self, ops: &[Op]) -> Result<(), BackendError> {
        self.run(|batch| {
            for op in ops {
                batch.op(op);
            }
        })
    }

    fn replace(&mut self, ruleset: &dyn RulesetView) -> Result<(), BackendError> {
        self.run(|batch| batch.replace(ruleset))
    }
}
