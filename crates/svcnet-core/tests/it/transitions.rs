//! The create/update/delete transition: allocation, its errors as clients see them, type
//! changes, re-applying unchanged YAML, dual-stack upgrades and downgrades, release on delete.

use k8s_openapi::api::core::v1::Service;
use svcnet_core::alloc::{Allocators, PortRange};
use svcnet_core::registry::{plan_delete, rebuild_allocators};
use svcnet_core::service::prepare::prepare_status_update;
use svcnet_core::service::{cluster_ips, spec};

use crate::support::*;

fn node_ports(s: &Service) -> Vec<i32> {
    spec(s)
        .ports
        .iter()
        .flatten()
        .map(|p| p.node_port.unwrap_or(0))
        .collect()
}

fn update(cluster: &mut Cluster, old: &Service, yaml: &str) -> Result<Service, Box<svcnet_core::status::Status>> {
    let mut new = svc(yaml);
    new.metadata.uid = old.metadata.uid.clone();
    cluster.write(Some(old), new).map(|p| p.service)
}

#[test]
fn nodeport_collision_body_matches_upstream_bytes() {
    let mut c = Cluster::new(v4_cluster());
    c.create("metadata: {name: nodeport-collision-1}\nspec: {type: NodePort, ports: [{port: 80, nodePort: 30123}]}")
        .unwrap();
    let status = c
        .create("metadata: {name: nodeport-collision-2}\nspec: {type: NodePort, ports: [{port: 80, nodePort: 30123}]}")
        .unwrap_err();
    assert_eq!(
        status.to_json(),
        r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Service \"nodeport-collision-2\" is invalid: spec.ports[0].nodePort: Invalid value: 30123: provided port is already allocated","reason":"Invalid","details":{"name":"nodeport-collision-2","kind":"Service","causes":[{"reason":"FieldValueInvalid","message":"Invalid value: 30123: provided port is already allocated","field":"spec.ports[0].nodePort"}]},"code":422}"#
    );
}

#[test]
fn node_port_is_released_on_delete_and_can_be_reused() {
    let mut c = Cluster::new(v4_cluster());
    let first = c
        .create("metadata: {name: a}\nspec: {type: NodePort, ports: [{port: 80, nodePort: 30123}]}")
        .unwrap();
    let changes = plan_delete(&first);
    assert_eq!(changes.released_ports, vec![30123]);
    assert_eq!(changes.released_ips.len(), 1);
    c.alloc.commit(&changes).unwrap();
    assert_eq!(c.alloc.node_ports().pool().count(), 0);
    assert_eq!(
        c.alloc.range(svcnet_core::ip::IpFamily::IPv4).unwrap().pool().count(),
        0
    );
    c.create("metadata: {name: b}\nspec: {type: NodePort, ports: [{port: 80, nodePort: 30123}]}")
        .unwrap();
}

#[test]
fn out_of_range_node_port() {
    let mut c = Cluster::new(v4_cluster());
    let status = c
        .create("metadata: {name: a}\nspec: {type: NodePort, ports: [{port: 80, nodePort: 80}]}")
        .unwrap_err();
    assert_eq!(
        causes(&status),
        [(
            "spec.ports[0].nodePort".to_owned(),
            "Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"
                .to_owned()
        )]
    );
}

#[test]
fn same_port_number_tcp_and_udp_share_one_node_port() {
    let mut c = Cluster::new(v4_cluster());
    let s = c
        .create("metadata: {name: dns}\nspec: {type: NodePort, ports: [{name: tcp, port: 53, protocol: TCP}, {name: udp, port: 53, protocol: UDP}]}")
        .unwrap();
    let np = node_ports(&s);
    assert_ne!(np[0], 0);
    assert_eq!(np[0], np[1]);
    assert_eq!(c.alloc.node_ports().pool().count(), 1);
    // a requested port on the later entry is shared too
    let s = c
        .create("metadata: {name: dns2}\nspec: {type: NodePort, ports: [{name: tcp, port: 53}, {name: udp, port: 53, protocol: UDP, nodePort: 30053}]}")
        .unwrap();
    assert_eq!(node_ports(&s), vec![30053, 30053]);
}

#[test]
fn duplicate_requested_node_port_within_a_service_is_already_allocated() {
    let mut c = Cluster::new(v4_cluster());
    let status = c
        .create("metadata: {name: a}\nspec: {type: NodePort, ports: [{name: a, port: 80, nodePort: 30100}, {name: b, port: 81, nodePort: 30100}]}")
        .unwrap_err();
    assert_eq!(
        causes(&status),
        [(
            "spec.ports[1].nodePort".to_owned(),
            "Invalid value: 30100: provided port is already allocated".to_owned()
        )]
    );
}

#[test]
fn dynamic_node_ports_prefer_the_upper_band() {
    let mut c = Cluster::new(v4_cluster());
    for i in 0..50 {
        let s = c
            .create(&format!(
                "metadata: {{name: s{i}}}\nspec: {{type: NodePort, ports: [{{port: 80}}]}}"
            ))
            .unwrap();
        assert!(node_ports(&s)[0] >= 30086, "{:?}", node_ports(&s));
    }
}

#[test]
fn cluster_ip_errors() {
    let mut c = Cluster::new(v4_cluster());
    c.create("metadata: {name: a}\nspec: {ports: [{port: 80}], clusterIP: 10.0.0.10}")
        .unwrap();
    let status = c
        .create("metadata: {name: b}\nspec: {ports: [{port: 80}], clusterIP: 10.0.0.10}")
        .unwrap_err();
    assert_eq!(status.code, 422);
    assert_eq!(
        status.message,
        "Service \"b\" is invalid: spec.clusterIPs: Invalid value: [\"10.0.0.10\"]: failed to allocate IP 10.0.0.10: provided IP is already allocated"
    );
    let status = c
        .create("metadata: {name: c}\nspec: {ports: [{port: 80}], clusterIP: 10.0.1.10}")
        .unwrap_err();
    assert_eq!(
        status.message,
        "Service \"c\" is invalid: spec.clusterIPs: Invalid value: [\"10.0.1.10\"]: failed to allocate IP 10.0.1.10: the provided network does not match the current range"
    );
}

#[test]
fn exhausted_ranges_are_internal_errors() {
    let alloc = Allocators::new(&["10.0.0.0/29".parse().unwrap()], "30000-30001".parse().unwrap()).unwrap();
    let mut c = Cluster::new(alloc);
    for i in 0..6 {
        c.create(&format!("metadata: {{name: s{i}}}\nspec: {{ports: [{{port: 80}}]}}"))
            .unwrap();
    }
    let status = c
        .create("metadata: {name: full}\nspec: {ports: [{port: 80}]}")
        .unwrap_err();
    assert_eq!(status.code, 500);
    assert_eq!(
        status.message,
        "Internal error occurred: failed to allocate a serviceIP: range is full"
    );

    let alloc = Allocators::new(&["10.0.0.0/24".parse().unwrap()], "30000-30001".parse().unwrap()).unwrap();
    let mut c = Cluster::new(alloc);
    c.create("metadata: {name: a}\nspec: {type: NodePort, ports: [{port: 80}]}")
        .unwrap();
    c.create("metadata: {name: b}\nspec: {type: NodePort, ports: [{port: 80}]}")
        .unwrap();
    let status = c
        .create("metadata: {name: c}\nspec: {type: NodePort, ports: [{port: 80}]}")
        .unwrap_err();
    assert_eq!(
        (status.code, status.message.as_str()),
        (
            500,
            "Internal error occurred: failed to allocate a nodePort: range is full"
        )
    );
}

#[test]
fn reapplying_the_same_yaml_keeps_allocations() {
    let mut c = Cluster::new(v4_cluster());
    let yaml = "metadata: {name: web}\nspec: {type: NodePort, selector: {app: web}, ports: [{name: http, port: 80}, {name: https, port: 443}]}";
    let created = c.create(yaml).unwrap();
    let planned = c.write(Some(&created), svc(yaml)).unwrap();
    assert!(planned.changes.is_empty(), "{:?}", planned.changes);
    assert_eq!(cluster_ips(&planned.service), cluster_ips(&created));
    assert_eq!(node_ports(&planned.service), node_ports(&created));
}

#[test]
fn update_keeps_ports_by_name_allocates_new_and_releases_removed() {
    let mut c = Cluster::new(v4_cluster());
    let old = c
        .create(
            "metadata: {name: web}\nspec: {type: NodePort, ports: [{name: http, port: 80}, {name: https, port: 443}]}",
        )
        .unwrap();
    let old_np = node_ports(&old);
    let planned = c
        .write(
            Some(&old),
            svc("metadata: {name: web}\nspec: {type: NodePort, ports: [{name: http, port: 8080}, {name: admin, port: 9000}]}"),
        )
        .unwrap();
    let new_np = node_ports(&planned.service);
    assert_eq!(new_np[0], old_np[0], "kept by name even though the port number changed");
    assert!(new_np[1] != 0 && !old_np.contains(&new_np[1]));
    assert_eq!(planned.changes.allocated_ports, vec![new_np[1] as u16]);
    assert_eq!(planned.changes.released_ports, vec![old_np[1] as u16]);
}

#[test]
fn cluster_ip_may_not_change() {
    let mut c = Cluster::new(v4_cluster());
    let old = c.create("metadata: {name: a}\nspec: {ports: [{port: 80}]}").unwrap();
    let status = update(
        &mut c,
        &old,
        "metadata: {name: a}\nspec: {ports: [{port: 80}], clusterIP: 10.0.0.99}",
    )
    .unwrap_err();
    assert_eq!(
        causes(&status),
        [(
            "spec.clusterIPs[0]".to_owned(),
            "Invalid value: [\"10.0.0.99\"]: may not change once set".to_owned()
        )]
    );
}

#[test]
fn type_changes_allocate_and_release() {
    let mut c = Cluster::new(v4_cluster());
    // ExternalName -> ClusterIP allocates a cluster IP
    let ext = c
        .create("metadata: {name: t}\nspec: {type: ExternalName, externalName: example.com}")
        .unwrap();
    assert!(cluster_ips(&ext).is_empty());
    let cip = update(
        &mut c,
        &ext,
        "metadata: {name: t}\nspec: {type: ClusterIP, ports: [{port: 80}]}",
    )
    .unwrap();
    assert_eq!(cluster_ips(&cip).len(), 1);
    // ClusterIP -> NodePort allocates node ports and defaults the external policy
    let np = update(
        &mut c,
        &cip,
        "metadata: {name: t}\nspec: {type: NodePort, ports: [{port: 80}]}",
    )
    .unwrap();
    assert_ne!(node_ports(&np)[0], 0);
    assert_eq!(cluster_ips(&np), cluster_ips(&cip));
    assert_eq!(spec(&np).external_traffic_policy.as_deref(), Some("Cluster"));
    // NodePort -> ClusterIP (client sends back what it read) clears and releases node ports
    let mut back = np.clone();
    back.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
    let planned = c.write(Some(&np), back).unwrap();
    assert_eq!(node_ports(&planned.service), vec![0]);
    assert_eq!(spec(&planned.service).external_traffic_policy, None);
    assert_eq!(planned.changes.released_ports, vec![node_ports(&np)[0] as u16]);
    let cip2 = planned.service;
    // ClusterIP -> ExternalName (client sends back what it read) clears and releases the IP
    let mut ext2 = cip2.clone();
    {
        let s = ext2.spec.as_mut().unwrap();
        s.type_ = Some("ExternalName".into());
        s.external_name = Some("example.org".into());
    }
    let planned = c.write(Some(&cip2), ext2).unwrap();
    assert_eq!(spec(&planned.service).cluster_ip, None);
    assert_eq!(spec(&planned.service).ip_families, None);
    assert_eq!(planned.changes.released_ips.len(), 1);
    assert_eq!(
        c.alloc.range(svcnet_core::ip::IpFamily::IPv4).unwrap().pool().count(),
        0
    );
}

#[test]
fn node_port_to_external_name_releases_everything() {
    let mut c = Cluster::new(v4_cluster());
    let np = c
        .create("metadata: {name: t}\nspec: {type: NodePort, ports: [{port: 80}]}")
        .unwrap();
    let mut ext = np.clone();
    {
        let s = ext.spec.as_mut().unwrap();
        s.type_ = Some("ExternalName".into());
        s.external_name = Some("example.org".into());
    }
    let planned = c.write(Some(&np), ext).unwrap();
    assert_eq!(node_ports(&planned.service), vec![0]);
    assert_eq!(c.alloc.node_ports().pool().count(), 0);
    assert_eq!(
        c.alloc.range(svcnet_core::ip::IpFamily::IPv4).unwrap().pool().count(),
        0
    );
}

#[test]
fn health_check_node_port_follows_local_policy() {
    let mut c = Cluster::new(v4_cluster());
    let lb = c
        .create("metadata: {name: lb}\nspec: {type: LoadBalancer, externalTrafficPolicy: Local, ports: [{port: 80}]}")
        .unwrap();
    let hc = spec(&lb).health_check_node_port.unwrap();
    assert!(hc >= 30000);
    assert_eq!(c.alloc.node_ports().pool().count(), 2);
    let mut cluster_policy = lb.clone();
    cluster_policy.spec.as_mut().unwrap().external_traffic_policy = Some("Cluster".into());
    let planned = c.write(Some(&lb), cluster_policy).unwrap();
    assert_eq!(spec(&planned.service).health_check_node_port, None);
    assert_eq!(planned.changes.released_ports, vec![hc as u16]);
    // allocateLoadBalancerNodePorts=false: no node ports, but requested ones are honoured
    let s = c
        .create("metadata: {name: lb2}\nspec: {type: LoadBalancer, allocateLoadBalancerNodePorts: false, ports: [{name: a, port: 80}, {name: b, port: 81, nodePort: 31000}]}")
        .unwrap();
    assert_eq!(node_ports(&s), vec![0, 31000]);
}

#[test]
fn dual_stack_defaults_upgrade_and_downgrade() {
    let mut c = Cluster::new(dual_cluster());
    let single = c.create("metadata: {name: d}\nspec: {ports: [{port: 80}]}").unwrap();
    assert_eq!(spec(&single).ip_families.as_deref().unwrap(), ["IPv4"]);
    assert_eq!(spec(&single).ip_family_policy.as_deref(), Some("SingleStack"));

    let mut up = single.clone();
    up.spec.as_mut().unwrap().ip_family_policy = Some("RequireDualStack".into());
    let dual = c.write(Some(&single), up).unwrap().service;
    assert_eq!(spec(&dual).ip_families.as_deref().unwrap(), ["IPv4", "IPv6"]);
    assert_eq!(cluster_ips(&dual).len(), 2);
    assert_eq!(cluster_ips(&dual)[0], cluster_ips(&single)[0]);
    assert!(cluster_ips(&dual)[1].contains(':'));

    // releasing the secondary family needs SingleStack
    let mut bad = dual.clone();
    {
        let s = bad.spec.as_mut().unwrap();
        s.ip_families = Some(vec!["IPv4".into()]);
        s.cluster_ips = Some(vec![cluster_ips(&dual)[0].clone()]);
    }
    let status = c.write(Some(&dual), bad).unwrap_err();
    assert_eq!(
        causes(&status),
        [
            (
                "spec.ipFamilyPolicy".to_owned(),
                "Invalid value: \"RequireDualStack\": must be 'SingleStack' to release the secondary cluster IP"
                    .to_owned()
            ),
            (
                "spec.ipFamilyPolicy".to_owned(),
                "Invalid value: \"RequireDualStack\": must be 'SingleStack' to release the secondary IP family"
                    .to_owned()
            ),
        ]
    );

    let mut down = dual.clone();
    down.spec.as_mut().unwrap().ip_family_policy = Some("SingleStack".into());
    let planned = c.write(Some(&dual), down).unwrap();
    assert_eq!(cluster_ips(&planned.service), &cluster_ips(&dual)[..1]);
    assert_eq!(
        planned.changes.released_ips,
        vec![cluster_ips(&dual)[1].parse::<std::net::IpAddr>().unwrap()]
    );

    let prefer = c
        .create("metadata: {name: p}\nspec: {ports: [{port: 80}], ipFamilyPolicy: PreferDualStack, ipFamilies: [IPv6]}")
        .unwrap();
    assert_eq!(spec(&prefer).ip_families.as_deref().unwrap(), ["IPv6", "IPv4"]);
    assert!(cluster_ips(&prefer)[0].contains(':'));
}

#[test]
fn headless_without_selector_gets_both_families() {
    let mut c = Cluster::new(v4_cluster());
    let s = c.create("metadata: {name: h}\nspec: {clusterIP: None}").unwrap();
    assert_eq!(spec(&s).ip_family_policy.as_deref(), Some("RequireDualStack"));
    assert_eq!(spec(&s).ip_families.as_deref().unwrap(), ["IPv4", "IPv6"]);
    assert_eq!(cluster_ips(&s), ["None"]);
}

#[test]
fn status_update_keeps_the_spec() {
    let mut c = Cluster::new(v4_cluster());
    let old = c.create("metadata: {name: a}\nspec: {ports: [{port: 80}]}").unwrap();
    let mut new: Service =
        svc("metadata: {name: a}\nspec: {type: NodePort}\nstatus: {loadBalancer: {ingress: [{ip: 1.2.3.4}]}}");
    prepare_status_update(&mut new, &old);
    assert_eq!(new.spec, old.spec);
    assert_eq!(
        new.status.unwrap().load_balancer.unwrap().ingress.unwrap()[0]
            .ip
            .as_deref(),
        Some("1.2.3.4")
    );
}

#[test]
fn rebuild_from_stored_services_reports_conflicts() {
    let mut c = Cluster::new(v4_cluster());
    let a = c
        .create("metadata: {name: a}\nspec: {type: NodePort, ports: [{port: 80}]}")
        .unwrap();
    let b = c.create("metadata: {name: b}\nspec: {ports: [{port: 80}]}").unwrap();
    let mut rebuilt = v4_cluster();
    let problems = rebuild_allocators(&mut rebuilt, [&a, &b]);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(rebuilt, c.alloc);
    let mut dup = b.clone();
    dup.metadata.name = Some("dup".into());
    let problems = rebuild_allocators(&mut rebuilt, [&dup]);
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].service, "default/dup");
    assert!(problems[0].detail.ends_with("provided IP is already allocated"));
    let out_of_range = Allocators::new(&["10.1.0.0/24".parse().unwrap()], PortRange::DEFAULT).unwrap();
    let mut other = out_of_range;
    assert_eq!(rebuild_allocators(&mut other, [&a]).len(), 1);
}

#[test]
fn ip_families_and_identity_are_immutable() {
    let mut c = Cluster::new(dual_cluster());
    let old = c.create("metadata: {name: f}\nspec: {ports: [{port: 80}]}").unwrap();
    let mut changed = old.clone();
    {
        let s = changed.spec.as_mut().unwrap();
        s.ip_families = Some(vec!["IPv6".into()]);
        s.cluster_ip = None;
        s.cluster_ips = None;
    }
    // through the write path, the copied-back cluster IP no longer matches the family
    let status = c.write(Some(&old), changed.clone()).unwrap_err();
    let ip = cluster_ips(&old)[0].clone();
    assert_eq!(
        causes(&status),
        [(
            "spec.clusterIPs[0]".to_owned(),
            format!("Invalid value: \"{ip}\": expected an IPv6 value as indicated by `ipFamilies[0]`")
        )]
    );
    // the update rule itself
    let mut changed_families = old.clone();
    changed_families.spec.as_mut().unwrap().ip_families = Some(vec!["IPv6".into()]);
    let errs = svcnet_core::service::validate::validate_service_update(&changed_families, &old);
    assert_eq!(
        errs[0].to_string(),
        "spec.ipFamilies[0]: Invalid value: [\"IPv6\"]: may not change once set"
    );
    let mut renamed = old.clone();
    renamed.metadata.uid = Some("other-uid".into());
    let status = c.write(Some(&old), renamed).unwrap_err();
    assert_eq!(
        causes(&status),
        [(
            "metadata.uid".to_owned(),
            "Invalid value: \"other-uid\": field is immutable".to_owned()
        )]
    );
}

#[test]
fn update_from_headless_keeps_no_cluster_ip() {
    let mut c = Cluster::new(v4_cluster());
    let old = c
        .create("metadata: {name: h}\nspec: {clusterIP: None, selector: {app: h}, ports: [{port: 80}]}")
        .unwrap();
    let planned = c
        .write(
            Some(&old),
            svc("metadata: {name: h}\nspec: {clusterIP: None, selector: {app: h}, ports: [{port: 81}]}"),
        )
        .unwrap();
    assert_eq!(cluster_ips(&planned.service), ["None"]);
    assert!(planned.changes.is_empty());
}
