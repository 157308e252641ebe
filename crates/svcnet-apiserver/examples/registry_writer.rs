//! The writer `tests/registry.rs` kills with SIGKILL: creates NodePort Services through the
//! registry at the given path forever, printing `ack <name> <clusterIP> <nodePort>` after each.
//! The configured range is a /24 and a ServiceCIDR `extra` adds 10.97.0.0/24, so a long run
//! allocates from both. Names already stored (by an earlier, killed writer) are skipped.

use k8s_openapi::api::core::v1::Service;
use svcnet_apiserver::objects::{self, RandomIds};
use svcnet_apiserver::resources::SERVICE_CIDRS;

fn main() {
    let path = std::env::args().nth(1).expect("usage: registry_writer STORE_FILE");
    let registry = svcnet_apiserver::registry::Registry::open(
        std::path::Path::new(&path),
        &["10.96.0.0/24".parse().unwrap()],
        svcnet_core::alloc::PortRange::DEFAULT,
    )
    .expect("opening the registry");
    if objects::get(registry.store(), &SERVICE_CIDRS, "", "extra").is_err() {
        let cidr = serde_json::json!({"metadata": {"name": "extra"}, "spec": {"cidrs": ["10.97.0.0/24"]}});
        objects::create(registry.store(), &SERVICE_CIDRS, "", cidr, &mut RandomIds::new()).expect("ServiceCIDR");
        registry.refresh_service_cidrs().expect("refreshing the ranges");
    }
    for i in 0u64.. {
        let svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("s{i}")},
            "spec": {"type": "NodePort", "ports": [{"port": 80}]}
        }))
        .unwrap();
        let stored = match registry.create_service("default", svc) {
            Ok(stored) => stored,
            Err(status) if status.code == 409 => continue,
            Err(status) => panic!("creating s{i}: {}", status.message),
        };
        let spec = stored.spec.unwrap();
        println!(
            "ack s{i} {} {}",
            spec.cluster_ip.unwrap(),
            spec.ports.unwrap()[0].node_port.unwrap()
        );
    }
}
