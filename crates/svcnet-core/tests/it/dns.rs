//! Cluster DNS records as Kubernetes' DNS specification defines them.

use k8s_openapi::api::discovery::v1::EndpointSlice;
use svcnet_core::dns::{ClusterDns, Data, Outcome, QueryType};

use crate::support::svc;

fn slice(yaml: &str) -> EndpointSlice {
    serde_yaml_ng::from_str(yaml).unwrap_or_else(|e| panic!("bad test YAML: {e}\n{yaml}"))
}

fn index() -> ClusterDns {
    let mut dns = ClusterDns::new("cluster.local");
    dns.set_service(&svc(
        "metadata: {name: web}\nspec: {clusterIP: 10.96.0.20, clusterIPs: [10.96.0.20, 'fd00::20'], ports: [{name: http, port: 80, protocol: TCP}, {port: 81}]}",
    ));
    dns.set_service(&svc(
        "metadata: {name: db, namespace: data}\nspec: {clusterIP: None, ports: [{name: pg, port: 5432}]}",
    ));
    dns.set_slice(&slice(
        "metadata: {name: db-abc, namespace: data, labels: {kubernetes.io/service-name: db}}
addressType: IPv4
ports: [{name: pg, port: 5432, protocol: TCP}]
endpoints:
  - {addresses: [10.244.1.5], hostname: db-0, conditions: {ready: true}}
  - {addresses: [10.244.2.7], conditions: {ready: true}}
  - {addresses: [10.244.2.9], conditions: {ready: false}}",
    ));
    dns.set_service(&svc(
        "metadata: {name: ext}\nspec: {type: ExternalName, externalName: Example.COM.}",
    ));
    dns
}

fn answers(outcome: Outcome) -> Vec<Data> {
    match outcome {
        Outcome::Answer { answers, .. } => answers.into_iter().map(|r| r.data).collect(),
        other => panic!("expected an answer, got {other:?}"),
    }
}

#[test]
fn cluster_ip_services_answer_their_addresses_by_family() {
    let dns = index();
    assert_eq!(
        answers(dns.resolve("web.default.svc.cluster.local.", QueryType::A)),
        [Data::A("10.96.0.20".parse().unwrap())]
    );
    assert_eq!(
        answers(dns.resolve("WEB.default.svc.cluster.local", QueryType::Aaaa)),
        [Data::Aaaa("fd00::20".parse().unwrap())]
    );
    assert_eq!(
        dns.resolve("web.default.svc.cluster.local", QueryType::Txt),
        Outcome::NoData
    );
    assert_eq!(
        dns.resolve("nope.default.svc.cluster.local", QueryType::A),
        Outcome::NxDomain
    );
    assert_eq!(
        dns.resolve("web.other.svc.cluster.local", QueryType::A),
        Outcome::NxDomain
    );
    // the names above services exist, with no records of their own
    assert_eq!(dns.resolve("default.svc.cluster.local", QueryType::A), Outcome::NoData);
    assert_eq!(dns.resolve("cluster.local", QueryType::A), Outcome::NoData);
}

#[test]
fn named_ports_have_srv_records_pointing_at_the_service() {
    let dns = index();
    let Outcome::Answer { answers, additionals } =
        dns.resolve("_http._tcp.web.default.svc.cluster.local", QueryType::Srv)
    else {
        panic!("no SRV answer");
    };
    assert_eq!(
        answers[0].data,
        Data::Srv {
            priority: 0,
            weight: 100,
            port: 80,
            target: "web.default.svc.cluster.local".into()
        }
    );
    assert_eq!(additionals.len(), 2, "the target's A and AAAA: {additionals:?}");
    // the Service's own name: one record per port, sharing a weight of 100 (as CoreDNS)
    let weights: Vec<u16> = self::answers(dns.resolve("web.default.svc.cluster.local", QueryType::Srv))
        .into_iter()
        .filter_map(|d| match d {
            Data::Srv { weight, .. } => Some(weight),
            _ => None,
        })
        .collect();
    assert_eq!(weights, [50, 50]);
    assert_eq!(
        dns.resolve("_http._udp.web.default.svc.cluster.local", QueryType::Srv),
        Outcome::NxDomain
    );
    assert_eq!(
        dns.resolve("_http._tcp.web.default.svc.cluster.local", QueryType::A),
        Outcome::NoData
    );
    // an unnamed port has no _port name, but the service name's SRV lists every port
    let ports: Vec<u16> = answers_srv_ports(dns.resolve("web.default.svc.cluster.local", QueryType::Srv));
    assert_eq!(ports, [80, 81]);
}

fn answers_srv_ports(outcome: Outcome) -> Vec<u16> {
    answers(outcome)
        .into_iter()
        .map(|d| match d {
            Data::Srv { port, .. } => port,
            other => panic!("not SRV: {other:?}"),
        })
        .collect()
}

#[test]
fn headless_services_answer_ready_endpoints_by_name() {
    let dns = index();
    let mut ips: Vec<String> = answers(dns.resolve("db.data.svc.cluster.local", QueryType::A))
        .into_iter()
        .map(|d| format!("{d:?}"))
        .collect();
    ips.sort();
    assert_eq!(
        ips,
        ["A(10.244.1.5)", "A(10.244.2.7)"],
        "the not-ready endpoint is left out"
    );
    assert_eq!(
        answers(dns.resolve("db-0.db.data.svc.cluster.local", QueryType::A)),
        [Data::A("10.244.1.5".parse().unwrap())]
    );
    assert_eq!(
        answers(dns.resolve("10-244-2-7.db.data.svc.cluster.local", QueryType::A)),
        [Data::A("10.244.2.7".parse().unwrap())]
    );
    assert_eq!(
        dns.resolve("10-244-2-9.db.data.svc.cluster.local", QueryType::A),
        Outcome::NxDomain
    );
    let Outcome::Answer { answers, additionals } = dns.resolve("_pg._tcp.db.data.svc.cluster.local", QueryType::Srv)
    else {
        panic!("no SRV answer");
    };
    let targets: Vec<String> = answers
        .iter()
        .map(|r| match &r.data {
            Data::Srv { target, port: 5432, .. } => target.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        targets,
        ["db-0.db.data.svc.cluster.local", "10-244-2-7.db.data.svc.cluster.local"]
    );
    assert_eq!(additionals.len(), 2);
    // endpoint names exist only under headless services
    assert_eq!(
        dns.resolve("db-0.web.default.svc.cluster.local", QueryType::A),
        Outcome::NxDomain
    );
}

#[test]
fn external_names_are_cnames() {
    let dns = index();
    assert_eq!(
        answers(dns.resolve("ext.default.svc.cluster.local", QueryType::A)),
        [Data::Cname("example.com".into())]
    );
}

#[test]
fn reverse_lookups_name_services_and_hostnamed_endpoints() {
    let dns = index();
    assert_eq!(
        answers(dns.resolve("20.0.96.10.in-addr.arpa.", QueryType::Ptr)),
        [Data::Ptr("web.default.svc.cluster.local".into())]
    );
    let v6 = "0.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa";
    assert_eq!(
        answers(dns.resolve(v6, QueryType::Ptr)),
        [Data::Ptr("web.default.svc.cluster.local".into())]
    );
    assert_eq!(
        answers(dns.resolve("5.1.244.10.in-addr.arpa", QueryType::Ptr)),
        [Data::Ptr("db-0.db.data.svc.cluster.local".into())]
    );
    // an endpoint without a hostname has no PTR record
    assert_eq!(
        dns.resolve("7.2.244.10.in-addr.arpa", QueryType::Ptr),
        Outcome::NxDomain
    );
}

#[test]
fn pods_schema_version_and_foreign_names() {
    let dns = index();
    assert_eq!(
        answers(dns.resolve("10-244-1-5.default.pod.cluster.local", QueryType::A)),
        [Data::A("10.244.1.5".parse().unwrap())]
    );
    assert_eq!(
        dns.resolve("not-an-ip.default.pod.cluster.local", QueryType::A),
        Outcome::NxDomain
    );
    assert_eq!(
        answers(dns.resolve("dns-version.cluster.local", QueryType::Txt)),
        [Data::Txt("1.1.0".into())]
    );
    assert_eq!(dns.resolve("example.com", QueryType::A), Outcome::Refused);
}

#[test]
fn updates_and_removals_change_answers() {
    let mut dns = index();
    dns.set_service(&svc(
        "metadata: {name: web}\nspec: {clusterIP: 10.96.0.21, ports: [{port: 80}]}",
    ));
    assert_eq!(
        answers(dns.resolve("web.default.svc.cluster.local", QueryType::A)),
        [Data::A("10.96.0.21".parse().unwrap())]
    );
    dns.remove_slice("data", "db-abc");
    assert_eq!(dns.resolve("db.data.svc.cluster.local", QueryType::A), Outcome::NoData);
    dns.remove_service("default", "web");
    assert_eq!(
        dns.resolve("web.default.svc.cluster.local", QueryType::A),
        Outcome::NxDomain
    );
}
