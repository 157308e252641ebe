//! The Kubernetes-compatible API server.
//!
//! - [`registry`]: Service writes through the core's defaulting, allocation and validation,
//!   committed with their allocations in one store transaction.

#![forbid(unsafe_code)]

pub mod registry;
