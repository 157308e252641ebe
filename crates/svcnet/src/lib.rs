//! The `svcnet` command as a library, so tests and benchmarks run the real pieces in-process.
//!
//! - [`cli`]: argument parsing and dispatch.
//! - [`service_check`]: `svcnet service check`.
//! - [`agnhost`]: test servers and clients standing in for upstream's agnhost image.
//! - [`netns`]: network namespaces owned by one run.
//! - [`rtnl`]: links, addresses and routes over rtnetlink (the lab's topology).
//! - [`lab`]: `svcnet lab`, a multi-node cluster on one machine.
//! - [`bench`]: `svcnet bench dataplane` and `svcnet bench datapath`.

#![forbid(unsafe_code)]

pub mod agnhost;
pub mod bench;
pub mod cli;
pub mod dns;
pub mod lab;
pub mod netns;
pub mod rtnl;
pub mod service_check;
