//! Integration tests of the core: one binary, one module per concern.

mod allocator_model;
mod dns;
mod endpoints;
mod hints;
mod support;
mod tidy;
mod transitions;
mod validation;
