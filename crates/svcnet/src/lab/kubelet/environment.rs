//! A container's environment, as upstream's kubelet makes it: the Services' variables
//! (`WEB_SERVICE_HOST`, `WEB_PORT_80_TCP_ADDR`, … for the Services of the pod's namespace
//! when `enableServiceLinks`, and `default/kubernetes` always), then `envFrom` (ConfigMaps and
//! Secrets, with their prefix), then `env` in order: values with `$(VAR)` references
//! expanded, or taken from a ConfigMap or Secret key or a field of the pod. `command` and
//! `args` are expanded with the result. Pure: what it reads from the API comes in
//! [`Inputs`].

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, Secret, Service};

use super::volumes::{Inputs, Needs, pod_field};

/// The ConfigMaps and Secrets `container`'s environment reads.
pub fn needs(container: &Container) -> Needs {
    let mut needs = Needs::default();
    for source in container.env_from.iter().flatten() {
        needs
            .config_maps
            .extend(source.config_map_ref.as_ref().map(|r| r.name.clone()));
        needs.secrets.extend(source.secret_ref.as_ref().map(|r| r.name.clone()));
    }
    for var in container.env.iter().flatten() {
        let from = var.value_from.as_ref();
        needs
            .config_maps
            .extend(from.and_then(|f| f.config_map_key_ref.as_ref()).map(|r| r.name.clone()));
        needs
            .secrets
            .extend(from.and_then(|f| f.secret_key_ref.as_ref()).map(|r| r.name.clone()));
    }
    needs
}

/// Upstream's `$(VAR)` expansion: a defined variable is replaced, an undefined reference is
/// kept as written, `$$` is a literal `$`.
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let Some(next) = after.chars().next() else {
            // a `$` at the very end stays
            out.push('$');
            rest = after;
            break;
        };
        match next {
            '$' => {
                out.push('$');
                rest = &after[1..];
            }
            '(' => match after.find(')') {
                Some(close) => {
                    let name = &after[1..close];
                    match lookup(name) {
                        Some(value) => out.push_str(&value),
                        None => out.push_str(&format!("$({name})")),
                    }
                    rest = &after[close + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = &after[1..];
                }
            },
            other => {
                out.push('$');
                out.push(other);
                rest = &after[other.len_utf8()..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A Service name as a variable name: upper case, `-` as `_`.
fn variable_name(name: &str) -> String {
    name.replace('-', "_").to_uppercase()
}

/// The variables of the Services a pod in `namespace` sees: those of its namespace when
/// `links`, and `default/kubernetes` always; headless Services and those without ports none.
pub fn service_variables(services: &[Service], namespace: &str, links: bool) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for service in services {
        let ns = service.metadata.namespace.as_deref().unwrap_or("default");
        let name = service.metadata.name.as_deref().unwrap_or_default();
        let seen = (ns == "default" && name == "kubernetes") || (ns == namespace && links);
        let spec = service.spec.as_ref();
        let ip = spec.and_then(|s| s.cluster_ip.as_deref()).unwrap_or_default();
        let ports = spec.and_then(|s| s.ports.as_deref()).unwrap_or_default();
        if !seen || ip.is_empty() || ip == "None" || ports.is_empty() {
            continue;
        }
        let prefix = variable_name(name);
        out.insert(format!("{prefix}_SERVICE_HOST"), ip.to_owned());
        out.insert(format!("{prefix}_SERVICE_PORT"), ports[0].port.to_string());
        let host_port = match ip.contains(':') {
            true => |ip: &str, port: i32| format!("[{ip}]:{port}"),
            false => |ip: &str, port: i32| format!("{ip}:{port}"),
        };
        for (i, port) in ports.iter().enumerate() {
            if let Some(port_name) = port.name.as_deref().filter(|n| !n.is_empty()) {
                out.insert(
                    format!("{prefix}_SERVICE_PORT_{}", variable_name(port_name)),
                    port.port.to_string(),
                );
            }
            let protocol = port.protocol.as_deref().unwrap_or("TCP");
            let url = format!("{}://{}", protocol.to_lowercase(), host_port(ip, port.port));
            if i == 0 {
                out.insert(format!("{prefix}_PORT"), url.clone());
            }
            let port_prefix = format!("{prefix}_PORT_{}_{}", port.port, protocol.to_uppercase());
            out.insert(format!("{port_prefix}_PROTO"), protocol.to_lowercase());
            out.insert(format!("{port_prefix}_PORT"), port.port.to_string());
            out.insert(format!("{port_prefix}_ADDR"), ip.to_owned());
            out.insert(port_prefix, url);
        }
    }
    out
}

/// The value of `key` in the ConfigMap or Secret (`kind`) `namespace/name`, whose text data
/// is `data` when it exists; `None` when it or the key is missing and `optional`.
fn key_value(
    kind: &str,
    namespace: &str,
    name: &str,
    key: &str,
    optional: bool,
    data: Option<BTreeMap<String, String>>,
) -> Result<Option<String>, String> {
    match data.map(|d| d.get(key).cloned()) {
        Some(Some(value)) => Ok(Some(value)),
        _ if optional => Ok(None),
        Some(None) => Err(format!("couldn't find key {key} in {kind} {namespace}/{name}")),
        None => Err(format!("{} \"{name}\" not found", kind.to_lowercase())),
    }
}

fn secret_text(secret: Secret) -> BTreeMap<String, String> {
    let data = secret.data.unwrap_or_default();
    data.into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
        .collect()
}

/// `container`'s environment in `pod` (whose status carries its pod and host IPs), sorted by
/// name; the error is the reason the container cannot be configured (upstream's words).
pub fn resolve(
    pod: &Pod,
    container: &Container,
    inputs: &Inputs,
    services: &[Service],
) -> Result<Vec<(String, String)>, String> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let links = pod.spec.as_ref().and_then(|s| s.enable_service_links).unwrap_or(true);
    let service_env = service_variables(services, namespace, links);
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.as_deref().unwrap_or_default();
        if let Some(r) = &source.config_map_ref {
            match inputs.config_maps.get(&r.name).cloned().flatten() {
                Some(map) => {
                    for (k, v) in map.data.unwrap_or_default() {
                        env.insert(format!("{prefix}{k}"), v);
                    }
                }
                None if r.optional.unwrap_or(false) => {}
                None => return Err(format!("configmap \"{}\" not found", r.name)),
            }
        } else if let Some(r) = &source.secret_ref {
            match inputs.secrets.get(&r.name).cloned().flatten() {
                Some(secret) => {
                    for (k, v) in secret.data.unwrap_or_default() {
                        env.insert(format!("{prefix}{k}"), String::from_utf8_lossy(&v.0).into_owned());
                    }
                }
                None if r.optional.unwrap_or(false) => {}
                None => return Err(format!("secret \"{}\" not found", r.name)),
            }
        }
    }
    for var in container.env.iter().flatten() {
        let value = match (var.value.as_deref().filter(|v| !v.is_empty()), &var.value_from) {
            (Some(value), _) => {
                let lookup = |name: &str| env.get(name).or_else(|| service_env.get(name)).cloned();
                expand(value, &lookup)
            }
            (None, Some(from)) => {
                let found = if let Some(field) = &from.field_ref {
                    Some(pod_field(pod, &field.field_path)?)
                } else if let Some(r) = &from.config_map_key_ref {
                    let data = inputs
                        .config_maps
                        .get(&r.name)
                        .cloned()
                        .flatten()
                        .map(|m| m.data.unwrap_or_default());
                    key_value(
                        "ConfigMap",
                        namespace,
                        &r.name,
                        &r.key,
                        r.optional.unwrap_or(false),
                        data,
                    )?
                } else if let Some(r) = &from.secret_key_ref {
                    let data = inputs.secrets.get(&r.name).cloned().flatten().map(secret_text);
                    key_value("Secret", namespace, &r.name, &r.key, r.optional.unwrap_or(false), data)?
                } else if from.resource_field_ref.is_some() {
                    return Err(format!(
                        "env {}: the lab sets no resource limits, so resourceFieldRef has no value",
                        var.name
                    ));
                } else {
                    return Err(format!("env {}: valueFrom names no source the lab serves", var.name));
                };
                match found {
                    Some(v) => v,
                    // an optional source that is missing: the variable is left out
                    None => continue,
                }
            }
            (None, None) => String::new(),
        };
        env.insert(var.name.clone(), value);
    }
    for (k, v) in service_env {
        env.entry(k).or_insert(v);
    }
    Ok(env.into_iter().collect())
}

/// What every container's environment starts from, as an image and its runtime would give
/// it (nothing of the kubelet's own): the usual `PATH`, `HOSTNAME`, `HOME` (root's for
/// root) and, on a terminal, `TERM`.
pub fn base(hostname: &str, uid: u32, tty: bool) -> Vec<(String, String)> {
    let mut out = vec![
        ("PATH".to_owned(), DEFAULT_PATH.to_owned()),
        ("HOSTNAME".to_owned(), hostname.to_owned()),
        ("HOME".to_owned(), if uid == 0 { "/root" } else { "/" }.to_owned()),
    ];
    if tty {
        out.push(("TERM".to_owned(), "xterm".to_owned()));
    }
    out
}

/// The `PATH` of the images the lab stands in for (busybox's, alpine's, Debian's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `words` (a container's command and args) with `$(VAR)` references to `env` expanded.
pub fn expand_words(words: &[String], env: &[(String, String)]) -> Vec<String> {
    let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    words.iter().map(|w| expand(w, &lookup)).collect()
}

#[cfg(test)]
mod tests;
