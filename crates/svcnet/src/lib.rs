//! The `svcnet` command as a library, so tests and benchmarks run the real pieces in-process.
//!
//! - [`cli`]: argument parsing and dispatch.
//! - [`service_check`]: `svcnet service check`.
//! - [`agnhost`]: test servers and clients standing in for upstream's agnhost image.
//! - [`netns`] and [`rtnl`]: network namespaces and rtnetlink (from `svcnet-netlink`).
//! - [`lab`]: `svcnet lab`, a multi-node cluster on one machine.
//! - [`explain`]: `svcnet explain FROM TO`, why a client does or does not reach a Service.
//! - [`bench`]: `svcnet bench dataplane` and `svcnet bench datapath`.

#![forbid(unsafe_code)]

pub mod agnhost;
pub mod arenas;
pub mod bench;
pub mod cli;
pub mod dns;
pub mod explain;
pub mod lab;
/// Namespaces and rtnetlink live in `svcnet-netlink`, shared with the dataplane.
pub use svcnet_netlink::{netns, rtnl};
pub mod service_check;
