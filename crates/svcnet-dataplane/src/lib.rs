//! The svcnet dataplane: a kube-proxy replacement on nftables.
//!
//! - [`model`]: the node-local proxy model built from Services and EndpointSlices.
//! - [`compile`]: the pure rule compiler, model → [`ir::Ruleset`] of typed [`rule`]s.
//! - [`rule`]: typed rule statements, rendered as nft syntax or encoded for netlink.
//! - [`incremental`]: the compiled model kept per service port, so updates recompile only
//!   what changed.
//! - [`diff`]: the pure sync planner: table changes → one transaction of operations.
//! - [`nft_text`]: renders rulesets and operations as `nft -f` scripts.
//! - [`backend`]: applies operations to the kernel (the `nft` text backend).
//! - [`netlink`]: the native backend, nf_tables over netlink.
//! - [`syncer`]: keeps the kernel in step with the model: full sync at start and after
//!   failures, incremental otherwise, delayed chain deletion.
//! - [`runner`]: the bounded-frequency sync schedule with backoff (pure state machine).
//! - [`sync_loop`]: drives a syncer from updates on that schedule, with retries and status.
//! - [`endpoint_choice`]: which endpoints a destination uses for a client, and why not the others.
//! - [`eval`]: the rule evaluator: the paths and verdicts a ruleset gives one packet.
//! - [`conntrack`]: which UDP conntrack entries go stale when endpoints change.

#![forbid(unsafe_code)]

pub mod backend;
pub mod compile;
pub mod conntrack;
pub mod diff;
pub mod endpoint_choice;
pub mod eval;
pub mod incremental;
pub mod ir;
pub mod maglev;
pub mod model;
pub mod netlink;
pub mod nft_text;
pub mod rule;
pub mod runner;
pub mod sync_loop;
pub mod syncer;
