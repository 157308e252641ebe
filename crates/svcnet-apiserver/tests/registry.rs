//! The Service registry over a real store: writes go through the core's transition, are
//! committed with their allocations, and survive SIGKILL without leaking or doubling one.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use k8s_openapi::api::core::v1::Service;
use svcnet_apiserver::registry::Registry;
use svcnet_core::alloc::PortRange;
use svcnet_core::ip::IpFamily;
use svcnet_store::Key;

fn svc(yaml: &str) -> Service {
    serde_yaml_ng::from_str(yaml).unwrap()
}

fn open(dir: &tempfile::TempDir) -> Registry {
    Registry::open(
        &dir.path().join("store.redb"),
        &["10.96.0.0/16".parse().unwrap()],
        PortRange::DEFAULT,
    )
    .unwrap()
}

fn ip_count(r: &Registry) -> usize {
    r.allocators().range(IpFamily::IPv4).unwrap().pool().count()
}

#[test]
fn bootstraps_the_kubernetes_service() {
    let dir = tempfile::tempdir().unwrap();
    let r = open(&dir);
    let k = r.get_service("default", "kubernetes").unwrap();
    let spec = k.spec.unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.1"));
    assert_eq!(spec.ports.unwrap()[0].port, 443);
    drop(r);
    // reopening neither duplicates it nor loses its address
    let r = open(&dir);
    assert_eq!(r.list_services(None).unwrap().0.len(), 1);
    assert_eq!(ip_count(&r), 1);
}

#[test]
fn create_sets_system_metadata_and_versions() {
    let dir = tempfile::tempdir().unwrap();
    let r = open(&dir);
    let created = r
        .create_service(
            "default",
            svc("metadata: {generateName: web-}\nspec: {ports: [{port: 80}]}"),
        )
        .unwrap();
    let meta = &created.metadata;
    let name = meta.name.clone().unwrap();
    assert!(name.starts_with("web-") && name.len() == 9, "{name}");
    assert_eq!(meta.uid.as_ref().unwrap().len(), 36);
    // as upstream: Services carry no generation
    assert_eq!(meta.generation, None);
    assert!(meta.creation_timestamp.is_some());
    let rv: u64 = meta.resource_version.as_ref().unwrap().parse().unwrap();
    assert_eq!(
        r.get_service("default", &name).unwrap(),
        created,
        "what is returned is what is stored"
    );
    let again = r
        .create_service("default", svc("metadata: {name: second}\nspec: {ports: [{port: 80}]}"))
        .unwrap();
    assert!(again.metadata.resource_version.unwrap().parse::<u64>().unwrap() > rv);
    let err = r
        .create_service("default", svc("metadata: {name: second}\nspec: {ports: [{port: 80}]}"))
        .unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        (409, "services \"second\" already exists")
    );
    let err = r
        .create_service(
            "default",
            svc("metadata: {name: x, namespace: other}\nspec: {ports: [{port: 80}]}"),
        )
        .unwrap_err();
    assert_eq!(err.code, 400);
    let err = r
        .create_service(
            "default",
            svc("metadata: {name: x, resourceVersion: '5'}\nspec: {ports: [{port: 80}]}"),
        )
        .unwrap_err();
    assert_eq!(
        err.message,
        "resourceVersion should not be set on objects to be created"
    );
}

#[test]
fn invalid_and_colliding_writes_commit_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let r = open(&dir);
    r.create_service(
        "default",
        svc("metadata: {name: a}\nspec: {type: NodePort, ports: [{port: 80, nodePort: 30123}]}"),
    )
    .unwrap();
    let before = (r.allocators(), r.store().revision().unwrap());
    let err = r
        .create_service(
            "default",
            svc("metadata: {name: b}\nspec: {type: NodePort, ports: [{port: 80, nodePort: 30123}]}"),
        )
        .unwrap_err();
    assert_eq!(err.code, 422);
    assert_eq!(
        err.message,
        "Service \"b\" is invalid: spec.ports[0].nodePort: Invalid value: 30123: provided port is already allocated"
    );
    // a duplicate name is refused after allocation was planned: nothing may stay allocated
    let err = r
        .create_service(
            "default",
            svc("metadata: {name: a}\nspec: {type: NodePort, ports: [{port: 81}]}"),
        )
        .unwrap_err();
    assert_eq!(err.code, 409);
    assert_eq!((r.allocators(), r.store().revision().unwrap()), before);
}

#[test]
fn updates_are_optimistic_and_keep_allocations() {
    let dir = tempfile::tempdir().unwrap();
    let r = open(&dir);
    let yaml = "metadata: {name: web}\nspec: {type: NodePort, selector: {app: web}, ports: [{port: 80}]}";
    let created = r.create_service("default", svc(yaml)).unwrap();
    // re-applying the same manifest (no clusterIP, no nodePort) keeps what was allocated
    let same = r.update_service("default", "web", svc(yaml)).unwrap();
    assert_eq!(
        same.spec.as_ref().unwrap().cluster_ip,
        created.spec.as_ref().unwrap().cluster_ip
    );
    assert_eq!(same.spec.as_ref().unwrap().ports, created.spec.as_ref().unwrap().ports);
    assert_eq!(same.metadata.generation, None);
    assert_eq!(same.metadata.uid, created.metadata.uid);
    // a stale resourceVersion is refused
    let mut stale = created.clone();
    stale.spec.as_mut().unwrap().selector = Some([("app".into(), "other".into())].into());
    let err = r.update_service("default", "web", stale.clone()).unwrap_err();
    assert_eq!(err.code, 409);
    assert!(
        err.message
            .starts_with("Operation cannot be fulfilled on services \"web\": the object has been modified")
    );
    stale.metadata.resource_version = same.metadata.resource_version.clone();
    let changed = r.update_service("default", "web", stale).unwrap();
    assert_eq!(changed.metadata.generation, None);
    // PUT of a missing Service creates it
    let put = r
        .update_service(
            "default",
            "fresh",
            svc("metadata: {name: fresh}\nspec: {ports: [{port: 80}]}"),
        )
        .unwrap();
    assert_eq!(put.metadata.generation, None);
}

#[test]
fn status_updates_keep_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    let r = open(&dir);
    let created = r
        .create_service(
            "default",
            svc("metadata: {name: lb}\nspec: {type: LoadBalancer, ports: [{port: 80}]}"),
        )
        .unwrap();
    let mut with_status = created.clone();
    with_status.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
    with_status.status = Some(serde_yaml_ng::from_str("{loadBalancer: {ingress: [{ip: 1.2.3.4}]}}").unwrap());
    let updated = r.update_service_status("default", "lb", with_status).unwrap();
    assert_eq!(updated.spec, created.spec);
    let got = r.get_service("default", "lb").unwrap();
    assert_eq!(
        got.status.unwrap().load_balancer.unwrap().ingress.unwrap()[0]
            .ip
            .as_deref(),
        Some("1.2.3.4")
    );
}

#[test]
fn delete_releases_allocations_and_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let r = open(&dir);
    r.create_service(
        "default",
        svc("metadata: {name: np}\nspec: {type: NodePort, ports: [{port: 80, nodePort: 30500}]}"),
    )
    .unwrap();
    r.store()
        .create(&Key::new("endpoints", "default", "np"), b"{}")
        .unwrap();
    assert_eq!((ip_count(&r), r.allocators().node_ports().pool().count()), (2, 1));
    let deleted = r.delete_service("default", "np").unwrap();
    assert_eq!(deleted.metadata.name.as_deref(), Some("np"));
    assert_eq!((ip_count(&r), r.allocators().node_ports().pool().count()), (1, 0));
    assert_eq!(r.store().get(&Key::new("endpoints", "default", "np")).unwrap(), None);
    assert_eq!(r.delete_service("default", "np").unwrap_err().code, 404);
    // the port can be taken again at once
    r.create_service(
        "default",
        svc("metadata: {name: np2}\nspec: {type: NodePort, ports: [{port: 80, nodePort: 30500}]}"),
    )
    .unwrap();
}

/// The writer example, which `cargo test` builds beside the test binaries.
fn registry_writer() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join("registry_writer");
    assert!(
        path.exists(),
        "{} is missing: run through `cargo test`, which builds examples",
        path.display()
    );
    path
}

#[test]
fn sigkill_loses_no_acknowledged_service_and_leaks_no_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.redb");
    let mut acked: Vec<(String, String, i32)> = Vec::new();
    // two writers, each killed after 150 acknowledged Services: 300 do not fit the configured
    // /24, so the second allocates from the ServiceCIDR's range too
    for round in 0..2 {
        let mut child = Command::new(registry_writer())
            .arg(&store)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut this_round = 0;
        while let Some(Ok(line)) = lines.next() {
            let parts: Vec<&str> = line.split(' ').collect();
            if let ["ack", name, ip, port] = parts[..] {
                acked.push((name.to_owned(), ip.to_owned(), port.parse().unwrap()));
                this_round += 1;
                if this_round == 150 {
                    child.kill().unwrap();
                    break;
                }
            }
        }
        child.wait().unwrap();
        assert_eq!(
            this_round, 150,
            "round {round}: the writer acknowledged too few services"
        );
    }
    // as the kills left it, before any repair on open: one IPAddress object per stored
    // cluster IP, naming its Service, and no other
    {
        let raw = svcnet_store::Store::open(&store, 1000).unwrap();
        let (services, _) = raw.list("services", None).unwrap();
        let mut want: std::collections::BTreeMap<String, String> = Default::default();
        for s in &services {
            let svc: Service = serde_json::from_slice(&s.value).unwrap();
            let ip = svc.spec.as_ref().unwrap().cluster_ip.clone().unwrap();
            want.insert(ip, svc.metadata.name.clone().unwrap());
        }
        let (addresses, _) = raw.list("ipaddresses.networking.k8s.io", None).unwrap();
        let got: std::collections::BTreeMap<String, String> = addresses
            .iter()
            .map(|a| {
                let v: serde_json::Value = serde_json::from_slice(&a.value).unwrap();
                (
                    a.key.name.clone(),
                    v["spec"]["parentRef"]["name"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            got, want,
            "IPAddress objects differ from the stored Services' addresses"
        );
    }
    let r = Registry::open(&store, &["10.96.0.0/24".parse().unwrap()], PortRange::DEFAULT).unwrap();
    for (name, ip, port) in &acked {
        let got = r
            .get_service("default", name)
            .unwrap_or_else(|e| panic!("acknowledged {name} lost: {}", e.message));
        let spec = got.spec.unwrap();
        assert_eq!(
            (spec.cluster_ip.as_deref(), spec.ports.unwrap()[0].node_port),
            (Some(ip.as_str()), Some(*port))
        );
    }
    let from_extra = acked.iter().filter(|(_, ip, _)| ip.starts_with("10.97.0.")).count();
    assert!(from_extra > 0, "no Service got an address of the added range");
    // allocations are exactly the stored Services' (none leaked, none doubled), and the
    // configured range's match the snapshot committed with the last write
    let (services, _) = r.list_services(None).unwrap();
    assert_eq!(r.allocated_ips().len(), services.len());
    assert_eq!(r.allocators().node_ports().pool().count(), services.len() - 1);
    let snapshot = r
        .stored_allocator_snapshot()
        .unwrap()
        .expect("a snapshot is committed with each write");
    assert_eq!(snapshot, r.allocators().snapshot());
}
