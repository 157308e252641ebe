//! The svcnet core: what a valid Service is, which ClusterIP and NodePort it gets, and which
//! pod addresses back it.
//!
//! Everything here is a deterministic function of its inputs: no I/O, no clock (times are
//! passed in as values), no randomness of its own (allocators take a `RandomSource`), and no
//! async runtime. The API server, the controllers and the dataplane build on these functions.
//!
//! - [`service`]: defaulting, validation (create and update), the validated [`service::model`].
//! - [`alloc`]: ClusterIP and NodePort allocators with snapshot and restore.
//! - [`registry`]: the create/update/delete transition, allocation included, as one function.
//! - [`selector`]: label selectors.
//! - [`endpoints`]: EndpointSlices and legacy Endpoints from Services, Pods and Nodes.
//! - [`workloads`]: Deployments and ReplicaSets.
//! - [`dns`]: cluster DNS records for Services and pods.
//! - [`field`] and [`status`]: errors rendered as Kubernetes renders them.

#![forbid(unsafe_code)]

pub mod alloc;
pub mod dns;
pub mod endpoints;
pub mod field;
pub mod ip;
pub mod names;
pub mod quantity;
pub mod registry;
pub mod selector;
pub mod service;
pub mod service_cidr;
pub mod status;
pub mod workloads;
