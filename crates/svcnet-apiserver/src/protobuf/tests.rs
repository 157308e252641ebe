//! Protobuf bodies built with k8s-pb, encoded as client-go does, decoded back to JSON.

use super::*;
use k8s_openapi::api::apps::v1::Deployment;
use pb::api::core::v1 as core;
use pb::apimachinery::pkg::apis::meta::v1 as meta;
use pb::apimachinery::pkg::util::intstr::IntOrString;

fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = pb::apimachinery::pkg::runtime::Unknown {
        type_meta: Some(pb::apimachinery::pkg::runtime::TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut body = MAGIC.to_vec();
    body.extend(unknown.encode_to_vec());
    body
}

fn labels() -> std::collections::BTreeMap<String, String> {
    [("app".to_owned(), "web".to_owned())].into()
}

/// What `kubectl create deployment web --image=nginx --port=80 --replicas=0` sends, with a
/// probe to cover embedded structs and IntOrString.
fn deployment() -> pb::api::apps::v1::Deployment {
    let container = core::Container {
        name: Some("nginx".into()),
        image: Some("nginx".into()),
        ports: vec![core::ContainerPort {
            container_port: Some(80),
            protocol: Some("TCP".into()),
            ..Default::default()
        }],
        readiness_probe: Some(core::Probe {
            handler: Some(core::ProbeHandler {
                http_get: Some(core::HttpGetAction {
                    path: Some("/healthz".into()),
                    port: Some(IntOrString {
                        r#type: Some(1),
                        int_val: Some(0),
                        str_val: Some("http".into()),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            period_seconds: Some(5),
            ..Default::default()
        }),
        resources: Some(core::ResourceRequirements::default()),
        ..Default::default()
    };
    pb::api::apps::v1::Deployment {
        metadata: Some(meta::ObjectMeta {
            name: Some("web".into()),
            namespace: Some(String::new()),
            labels: labels(),
            creation_timestamp: Some(meta::Time::default()),
            ..Default::default()
        }),
        spec: Some(pb::api::apps::v1::DeploymentSpec {
            replicas: Some(0),
            selector: Some(meta::LabelSelector {
                match_labels: labels(),
                ..Default::default()
            }),
            template: Some(core::PodTemplateSpec {
                metadata: Some(meta::ObjectMeta {
                    labels: labels(),
                    ..Default::default()
                }),
                spec: Some(core::PodSpec {
                    containers: vec![container],
                    ..Default::default()
                }),
            }),
            strategy: Some(Default::default()),
            ..Default::default()
        }),
        status: Some(Default::default()),
    }
}

#[test]
fn a_deployment_decodes_to_the_json_a_json_client_sends() {
    let body = envelope("apps/v1", "Deployment", deployment().encode_to_vec());
    let json = decode(&body).expect("decodes");
    assert_eq!(json["apiVersion"], "apps/v1");
    assert_eq!(json["kind"], "Deployment");
    // Go's unset strings and zero time are left out, as Go's JSON leaves them out
    assert!(json["metadata"].get("namespace").is_none(), "{json}");
    assert!(json["metadata"].get("creationTimestamp").is_none(), "{json}");
    // an explicit zero is kept: replicas 0 means scaled to zero
    assert_eq!(json["spec"]["replicas"], 0);
    let container = &json["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["ports"][0]["containerPort"], 80);
    // the embedded ProbeHandler is inlined and the IntOrString is a string
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], "http");
    assert_eq!(container["readinessProbe"]["periodSeconds"], 5);
    assert!(container["readinessProbe"].get("handler").is_none());

    let typed: Deployment = serde_json::from_value(json).expect("a valid Deployment");
    let spec = typed.spec;
    assert_eq!(spec.selector.match_labels, Some(labels()));
    let pod = spec.template.spec.expect("pod spec");
    assert_eq!(pod.containers[0].image.as_deref(), Some("nginx"));
}

#[test]
fn json_names_keep_upstream_acronyms() {
    let status = core::PodStatus {
        pod_ip: Some("10.0.0.1".into()),
        pod_ips: vec![core::PodIp {
            ip: Some("10.0.0.1".into()),
        }],
        host_ip: Some("192.0.2.1".into()),
        ..Default::default()
    };
    let pod = core::Pod {
        status: Some(status),
        ..Default::default()
    };
    let json = decode(&envelope("v1", "Pod", pod.encode_to_vec())).expect("decodes");
    assert_eq!(json["status"]["podIP"], "10.0.0.1");
    assert_eq!(json["status"]["podIPs"][0]["ip"], "10.0.0.1");
    assert_eq!(json["status"]["hostIP"], "192.0.2.1");
}

#[test]
fn a_service_keeps_its_ports_and_ips() {
    let service = core::Service {
        metadata: Some(meta::ObjectMeta {
            name: Some("web".into()),
            ..Default::default()
        }),
        spec: Some(core::ServiceSpec {
            r#type: Some("NodePort".into()),
            cluster_ips: vec!["10.96.0.10".into()],
            ports: vec![core::ServicePort {
                name: Some("http".into()),
                port: Some(80),
                target_port: Some(IntOrString {
                    r#type: Some(0),
                    int_val: Some(8080),
                    str_val: None,
                }),
                node_port: Some(30080),
                ..Default::default()
            }],
            selector: labels(),
            ..Default::default()
        }),
        status: None,
    };
    let json = decode(&envelope("v1", "Service", service.encode_to_vec())).expect("decodes");
    assert_eq!(json["spec"]["type"], "NodePort");
    assert_eq!(json["spec"]["clusterIPs"][0], "10.96.0.10");
    assert_eq!(json["spec"]["ports"][0]["targetPort"], 8080);
    assert_eq!(json["spec"]["ports"][0]["nodePort"], 30080);
    assert_eq!(json["spec"]["selector"]["app"], "web");
}

#[test]
fn bad_bodies_are_errors_not_panics() {
    assert!(matches!(decode(b"{}"), Err(DecodeError::NoPrefix)));
    assert!(matches!(decode(b"k8s\0\xff\xff\xff"), Err(DecodeError::Envelope(_))));
    let unknown_kind = envelope("batch/v1", "CronJob", Vec::new());
    let err = decode(&unknown_kind).expect_err("CronJob is not served");
    assert_eq!(
        err.to_string(),
        "no protobuf decoding for apiVersion \"batch/v1\", kind \"CronJob\""
    );
    let truncated = envelope("apps/v1", "Deployment", deployment().encode_to_vec()[..20].to_vec());
    assert!(matches!(decode(&truncated), Err(DecodeError::Object { .. })));
    // every prefix of a valid body either decodes or is refused; none panics
    let body = envelope("v1", "Service", core::Service::default().encode_to_vec());
    for end in 0..body.len() {
        let _ = decode(&body[..end]);
    }
}

/// What `kubectl create service nodeport web --tcp=80` sends: Go's non-pointer numbers and
/// bools travel at zero in protobuf, and Go's JSON leaves them out (`omitempty`); pointer
/// fields set to zero stay.
#[test]
fn zero_values_go_s_json_omits_are_left_out() {
    let service = core::Service {
        metadata: Some(meta::ObjectMeta {
            name: Some("web".into()),
            generation: Some(0),
            ..Default::default()
        }),
        spec: Some(core::ServiceSpec {
            r#type: Some("NodePort".into()),
            ports: vec![core::ServicePort {
                name: Some("80".into()),
                protocol: Some("TCP".into()),
                port: Some(80),
                node_port: Some(0),
                ..Default::default()
            }],
            health_check_node_port: Some(0),
            publish_not_ready_addresses: Some(false),
            ..Default::default()
        }),
        status: Some(Default::default()),
    };
    let json = decode(&envelope("v1", "Service", service.encode_to_vec())).expect("decodes");
    let port = &json["spec"]["ports"][0];
    assert_eq!(port["port"], 80);
    for (at, field) in [
        (port, "nodePort"),
        (&json["spec"], "healthCheckNodePort"),
        (&json["spec"], "publishNotReadyAddresses"),
        (&json["metadata"], "generation"),
    ] {
        assert!(at.get(field).is_none(), "{field} at zero is in {json}");
    }

    // a non-zero value of such a field stays, and so does a pointer field's zero
    let pod = core::Pod {
        spec: Some(core::PodSpec {
            host_network: Some(true),
            termination_grace_period_seconds: Some(0),
            containers: vec![core::Container {
                name: Some("c".into()),
                stdin: Some(false),
                tty: Some(true),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let json = decode(&envelope("v1", "Pod", pod.encode_to_vec())).expect("decodes");
    assert_eq!(json["spec"]["hostNetwork"], true);
    assert_eq!(json["spec"]["terminationGracePeriodSeconds"], 0);
    assert_eq!(json["spec"]["containers"][0]["tty"], true);
    assert!(json["spec"]["containers"][0].get("stdin").is_none(), "{json}");
}
