//! `deploy/svcnet-proxy.yaml`, the manifest that runs the node agent on a real cluster: every
//! object decodes as its Kubernetes type with no unknown field, the RBAC rules cover what the
//! agent watches, the embedded KubeProxyConfiguration is one the agent accepts in full, and
//! the container's command line is one `svcnet` accepts.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use serde::Deserialize;
use serde_json::Value;
use svcnet_apiserver::field_validation::unknown_fields_of;

const MANIFEST: &str = include_str!("../../../deploy/svcnet-proxy.yaml");

fn documents() -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(MANIFEST)
        .map(|d| Value::deserialize(d).unwrap())
        .collect()
}

fn decode<T: serde::de::DeserializeOwned + serde::Serialize>(doc: &Value) -> T {
    let unknown = unknown_fields_of::<T>(doc).unwrap_or_else(|e| panic!("{}: {e}", doc["kind"]));
    assert!(unknown.is_empty(), "{}: unknown fields {unknown:?}", doc["kind"]);
    serde_json::from_value(doc.clone()).unwrap()
}

#[test]
fn the_proxy_manifest_is_complete_and_consistent() {
    let docs = documents();
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "DaemonSet"
        ]
    );
    let account: ServiceAccount = decode(&docs[0]);
    let role: ClusterRole = decode(&docs[1]);
    let binding: ClusterRoleBinding = decode(&docs[2]);
    let config: ConfigMap = decode(&docs[3]);
    let daemonset: DaemonSet = decode(&docs[4]);

    // the agent lists and watches services, endpointslices and nodes
    for (group, resource) in [("", "services"), ("", "nodes"), ("discovery.k8s.io", "endpointslices")] {
        let allowed = role.rules.iter().flatten().any(|r| {
            r.api_groups.iter().flatten().any(|g| g == group)
                && r.resources.iter().flatten().any(|x| x == resource)
                && ["list", "watch"].iter().all(|v| r.verbs.iter().any(|x| x == v))
        });
        assert!(allowed, "the role does not let the agent list and watch {resource}");
    }
    let subject = &binding.subjects.as_ref().unwrap()[0];
    assert_eq!(Some(subject.name.as_str()), account.metadata.name.as_deref());
    assert_eq!(binding.role_ref.name, role.metadata.name.unwrap());

    let spec = daemonset.spec.template.spec.unwrap();
    assert_eq!(spec.service_account_name.as_deref(), account.metadata.name.as_deref());
    assert_eq!(spec.host_network, Some(true), "the agent programs the host's namespace");
    let container = &spec.containers[0];
    assert_eq!(
        container.security_context.as_ref().and_then(|s| s.privileged),
        Some(true)
    );
    // the KubeProxyConfiguration is accepted with nothing ignored
    let text = &config.data.as_ref().unwrap()["config.yaml"];
    let parsed = svcnet_agent::config::parse(text).unwrap();
    assert!(parsed.ignored.is_empty(), "{:?}", parsed.ignored);
    assert!(parsed.cluster_cidrs.is_some_and(|c| !c.is_empty()));
    // the command line is one svcnet accepts, reading that config from the mounted volume
    let command = container.command.as_ref().unwrap();
    assert_eq!(command[0], "svcnet");
    let args: Vec<&str> = command[1..].iter().map(String::as_str).collect();
    svcnet::cli::check_args(&args).unwrap();
    let mount = &container.volume_mounts.as_ref().unwrap()[0];
    assert!(
        args.contains(&format!("--config={}/config.yaml", mount.mount_path).as_str()),
        "{args:?}"
    );
    // probes hit the health address the config serves
    let health_port = parsed.healthz_bind.unwrap().port();
    let probe = container.liveness_probe.as_ref().unwrap().http_get.as_ref().unwrap();
    assert_eq!(probe.path.as_deref(), Some("/livez"));
    assert_eq!(
        probe.port,
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(health_port.into())
    );
}
