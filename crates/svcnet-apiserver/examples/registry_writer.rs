//! The writer `tests/registry.rs` kills with SIGKILL: creates NodePort Services through the
//! registry at the given path forever, printing `ack <name> <clusterIP> <nodePort>` after each.

use k8s_openapi::api::core::v1::Service;

fn main() {
    let path = std::env::args().nth(1).expect("usage: registry_writer STORE_FILE");
    let registry = svcnet_apiserver::registry::Registry::open(
        std::path::Path::new(&path),
        &["10.96.0.0/16".parse().unwrap()],
        svcnet_core::alloc::PortRange::DEFAULT,
    )
    .expect("opening the registry");
    for i in 0u64.. {
        let svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("s{i}")},
            "spec": {"type": "NodePort", "ports": [{"port": 80}]}
        }))
        .unwrap();
        let stored = registry.create_service("default", svc).expect("creating");
        let spec = stored.spec.unwrap();
        println!(
            "ack s{i} {} {}",
            spec.cluster_ip.unwrap(),
            spec.ports.unwrap()[0].node_port.unwrap()
        );
    }
}
