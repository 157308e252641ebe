//! `svcnet lab`: a multi-node cluster's Service networking on one machine.
//!
//! One background process (the lab daemon) owns a lab: it builds the network namespaces (a
//! switch, K nodes, one external host), runs the control plane on loopback in the root namespace,
//! the scheduler, a kubelet per node (pods are processes in their own namespaces) and the node
//! agent's proxy per node (programming nftables in the node's namespace). The `up`, `down`,
//! `status`, `exec` and `external` commands talk to it through its state directory and the API.
//!
//! - [`plan`]: names and addresses of a lab, a pure function of its name and size.
//! - [`topology`]: builds and removes the namespaces.
//! - [`kubelet`]: pods as processes; [`scheduler`]: assigns pods to nodes; [`events`]: the
//!   events both record about pods.
//! - [`control_plane`]: svcnet's API server, or upstream's etcd, kube-apiserver and
//!   kube-controller-manager (`up --control-plane upstream`).
//! - [`api_relay`]: the API server inside a node's namespace, for kube-proxy.
//! - [`daemon`]: runs everything until told to stop; [`supervisor`]: keeps each node's proxy
//!   process running; [`commands`]: the CLI verbs.
//! - [`demo`]: the demo app `up --demo` deploys; [`hooks`]: how the API server reaches pods
//!   (proxy) and their output (logs).
//! - [`load_balancer`]: addresses for LoadBalancer Services, announced from a node;
//!   [`node_address`]: `lab node --ip`, a node's address changing.

pub mod api_relay;
pub mod commands;
pub mod control_plane;
pub mod daemon;
pub mod demo;
pub mod egress;
pub mod events;
pub mod hooks;
pub mod kubelet;
pub mod load_balancer;
pub mod node_address;
pub mod plan;
pub mod scheduler;
pub mod shell;
pub mod supervisor;
pub mod topology;
