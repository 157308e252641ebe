//! Dataplane unit tests above the module level: the incremental compiler against the whole
//! compiler, and the compiled layout for upstream's acceptance cases.

mod incremental;
mod layout;
mod support;
