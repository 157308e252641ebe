use super::*;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use serde_json::json;

fn lookup(name: &str) -> Option<String> {
    match name {
        "A" => Some("1".into()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

#[test]
fn expansion_follows_upstream_s_rules() {
    let cases = [
        ("$(A)", "1"),
        ("x$(A)y$(A)", "x1y1"),
        ("$(MISSING)", "$(MISSING)"),
        ("$$(A)", "$(A)"),
        ("$$", "$"),
        ("$", "$"),
        ("a$b", "a$b"),
        ("$(A", "$(A"),
        ("$(EMPTY)-", "-"),
        ("é$(A)ü", "é1ü"),
        ("$é", "$é"),
        ("$()", "$()"),
    ];
    for (input, want) in cases {
        assert_eq!(expand(input, &lookup), want, "{input}");
    }
}

fn service(ns: &str, name: &str, ip: &str, ports: serde_json::Value) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {"clusterIP": ip, "ports": ports}
    }))
    .unwrap()
}

#[test]
fn services_give_upstream_s_variables() {
    let services = [
        service(
            "default",
            "kubernetes",
            "10.96.0.1",
            json!([{"name": "https", "port": 443, "protocol": "TCP"}]),
        ),
        service(
            "shop",
            "web-api",
            "10.96.0.20",
            json!([{"name": "http", "port": 80}, {"port": 53, "protocol": "UDP"}]),
        ),
        service("shop", "headless", "None", json!([{"port": 80}])),
        service("other", "elsewhere", "10.96.0.30", json!([{"port": 80}])),
    ];
    let vars = service_variables(&services, "shop", true);
    let get = |k: &str| vars.get(k).map(String::as_str);
    assert_eq!(get("WEB_API_SERVICE_HOST"), Some("10.96.0.20"));
    assert_eq!(get("WEB_API_SERVICE_PORT"), Some("80"));
    assert_eq!(get("WEB_API_SERVICE_PORT_HTTP"), Some("80"));
    assert_eq!(get("WEB_API_PORT"), Some("tcp://10.96.0.20:80"));
    assert_eq!(get("WEB_API_PORT_53_UDP"), Some("udp://10.96.0.20:53"));
    assert_eq!(get("WEB_API_PORT_53_UDP_PROTO"), Some("udp"));
    assert_eq!(get("WEB_API_PORT_53_UDP_ADDR"), Some("10.96.0.20"));
    assert_eq!(get("KUBERNETES_SERVICE_PORT_HTTPS"), Some("443"));
    assert!(
        !vars
            .keys()
            .any(|k| k.starts_with("HEADLESS") || k.starts_with("ELSEWHERE"))
    );
    // without links, only the API server's
    let vars = service_variables(&services, "shop", false);
    assert!(vars.keys().all(|k| k.starts_with("KUBERNETES_")), "{vars:?}");
    let v6 = service_variables(
        &[service("shop", "v6", "fd00::10", json!([{"port": 80}]))],
        "shop",
        true,
    );
    assert_eq!(v6["V6_PORT"], "tcp://[fd00::10]:80");
}

fn inputs() -> Inputs {
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "cfg"}, "data": {"MODE": "fast", "LEVEL": "3"}})).unwrap();
    let secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": "pw"}, "data": {"password": "czNjcjN0"}})).unwrap();
    let mut inputs = Inputs::default();
    inputs.config_maps.insert("cfg".into(), Some(cm));
    inputs.config_maps.insert("gone".into(), None);
    inputs.secrets.insert("pw".into(), Some(secret));
    inputs
}

fn pod_with(container: serde_json::Value) -> (Pod, Container) {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {"containers": [container], "nodeName": "node-1"},
        "status": {"podIP": "10.244.1.7", "hostIP": "10.240.0.11"}
    }))
    .unwrap();
    let c = pod.spec.as_ref().unwrap().containers[0].clone();
    (pod, c)
}

#[test]
fn env_from_then_env_in_order_with_references_and_sources() {
    let (pod, c) = pod_with(json!({"name": "c",
    "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "APP_"}, {"configMapRef": {"name": "gone", "optional": true}}],
    "env": [
        {"name": "GREETING", "value": "mode $(APP_MODE) at $(WEB_SERVICE_HOST) $(NOPE)"},
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "pw", "key": "password"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "MAYBE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "absent", "optional": true}}},
        {"name": "AGAIN", "value": "$(PASSWORD)!"},
    ]}));
    let services = [service("shop", "web", "10.96.0.9", json!([{"port": 80}]))];
    let env = resolve(&pod, &c, &inputs(), &services).unwrap();
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("APP_MODE"), Some("fast"));
    assert_eq!(get("APP_LEVEL"), Some("3"));
    assert_eq!(get("GREETING"), Some("mode fast at 10.96.0.9 $(NOPE)"));
    assert_eq!(get("PASSWORD"), Some("s3cr3t"));
    assert_eq!(get("POD_IP"), Some("10.244.1.7"));
    assert_eq!(get("APP"), Some("web"));
    assert_eq!(get("MAYBE"), None);
    assert_eq!(get("AGAIN"), Some("s3cr3t!"));
    assert_eq!(get("WEB_SERVICE_PORT"), Some("80"));
    let words = expand_words(&["echo".into(), "$(GREETING)".into(), "$$(APP)".into()], &env);
    assert_eq!(words, ["echo", "mode fast at 10.96.0.9 $(NOPE)", "$(APP)"]);
}

#[test]
fn a_missing_source_is_a_configuration_error_in_upstream_s_words() {
    let cases = [
        (
            json!({"envFrom": [{"configMapRef": {"name": "gone"}}]}),
            "configmap \"gone\" not found",
        ),
        (
            json!({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "nope"}}}]}),
            "couldn't find key nope in ConfigMap shop/cfg",
        ),
        (
            json!({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "pw", "key": "nope"}}}]}),
            "couldn't find key nope in Secret shop/pw",
        ),
    ];
    for (mut container, want) in cases {
        container["name"] = json!("c");
        let (pod, c) = pod_with(container);
        assert_eq!(resolve(&pod, &c, &inputs(), &[]), Err(want.to_owned()));
    }
    let (_, c) = pod_with(json!({"name": "c", "envFrom": [{"secretRef": {"name": "pw"}}],
        "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "MODE"}}}]}));
    let wanted = needs(&c);
    assert!(wanted.config_maps.contains("cfg") && wanted.secrets.contains("pw"));
}
