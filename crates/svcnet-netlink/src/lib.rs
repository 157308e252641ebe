//! The one home of netlink and network namespaces for svcnet: the dataplane (nf_tables and
//! conntrack messages are built on [`wire`] and exchanged with [`socket`]), the agent, the
//! lab, the benchmarks and the test worlds (namespaces with [`netns`], links, addresses and
//! routes with [`rtnl`]). No program (`ip`, `sysctl`) is run.
//!
//! - [`wire`]: message and attribute layout, batch framing, checked decoding.
//! - [`socket`]: one request and its answers; threads inside a namespace.
//! - [`netns`]: named namespaces (what `ip netns` does), sysctls inside them, and
//!   [`netns::Namespaces`], the per-run set tests and benchmarks build topologies from.
//! - [`rtnl`]: links, addresses and routes over rtnetlink.

#![forbid(unsafe_code)]

pub mod netns;
pub mod rtnl;
pub mod socket;
pub mod wire;
