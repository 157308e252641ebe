//! `svcnet agnhost`: built-in stand-ins for upstream's e2e test image `agnhost`, so pods and
//! tests need no container images. `netexec` serves HTTP (`/hostname`, `/clientip`,
//! `/echo?msg=`) and UDP (`hostname`, `clientip`, `echo X`); `client` talks to it and prints
//! one line per answer, or `ERROR <kind>`; `dig` asks the pod's DNS server for any record; `nginx` stands in for the nginx image.

pub mod client;
pub mod dig;
pub mod http;
pub mod netexec;
pub mod nginx;
