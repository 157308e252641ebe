//! A pod's `/etc/resolv.conf` and `/etc/hosts`, as upstream's kubelet writes them: the
//! cluster DNS server with the pod's search path and `ndots:5` (dnsPolicy ClusterFirst), the
//! node's resolver (Default), or only the pod's `dnsConfig` (None), which the other policies
//! merge in too; and a hosts file with the pod's own name and its `hostAliases`. Pure.

use k8s_openapi::api::core::v1::Pod;

/// The cluster's DNS settings, as the kubelet is configured with them.
#[derive(Clone, Debug)]
pub struct ClusterDnsSettings {
    pub server: String,
    pub domain: String,
}

/// `nameserver`, `search` and `options` lines of a resolv.conf text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Resolver {
    nameservers: Vec<String>,
    searches: Vec<String>,
    /// `name` or `name:value`, each name once.
    options: Vec<String>,
}

fn parse(text: &str) -> Resolver {
    let mut r = Resolver::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => r.nameservers.extend(words.next().map(str::to_owned)),
            Some("search") | Some("domain") => r.searches = words.map(str::to_owned).collect(),
            Some("options") => words.for_each(|o| set_option(&mut r.options, o)),
            _ => {}
        }
    }
    r
}

fn option_name(option: &str) -> &str {
    option.split(':').next().unwrap_or(option)
}

fn set_option(options: &mut Vec<String>, option: &str) {
    match options.iter_mut().find(|o| option_name(o) == option_name(option)) {
        Some(existing) => *existing = option.to_owned(),
        None => options.push(option.to_owned()),
    }
}

fn push_unique(list: &mut Vec<String>, item: &str) {
    if !list.iter().any(|x| x == item) {
        list.push(item.to_owned());
    }
}

/// The pod's resolv.conf; `host` is the node's own (for dnsPolicy Default).
pub fn resolv_conf(pod: &Pod, cluster: &ClusterDnsSettings, host: &str) -> String {
    let spec = pod.spec.clone().unwrap_or_default();
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let host_network = spec.host_network.unwrap_or(false);
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let mut r = match policy {
        "None" => Resolver::default(),
        "Default" => parse(host),
        "ClusterFirst" if host_network => parse(host),
        _ => Resolver {
            nameservers: vec![cluster.server.clone()],
            searches: vec![
                format!("{namespace}.svc.{}", cluster.domain),
                format!("svc.{}", cluster.domain),
                cluster.domain.clone(),
            ],
            options: vec!["ndots:5".into()],
        },
    };
    if let Some(config) = &spec.dns_config {
        for ns in config.nameservers.iter().flatten() {
            push_unique(&mut r.nameservers, ns);
        }
        for search in config.searches.iter().flatten() {
            push_unique(&mut r.searches, search);
        }
        for option in config.options.iter().flatten() {
            let text = match &option.value {
                Some(v) => format!("{}:{v}", option.name.as_deref().unwrap_or("")),
                None => option.name.clone().unwrap_or_default(),
            };
            set_option(&mut r.options, &text);
        }
    }
    let mut out = String::new();
    if !r.searches.is_empty() {
        out.push_str(&format!("search {}\n", r.searches.join(" ")));
    }
    for ns in &r.nameservers {
        out.push_str(&format!("nameserver {ns}\n"));
    }
    if !r.options.is_empty() {
        out.push_str(&format!("options {}\n", r.options.join(" ")));
    }
    out
}

/// The pod's hosts file: localhost, each of the pod's own addresses under its hostname (with
/// its subdomain's name when it has one), then its `hostAliases`.
pub fn hosts(pod: &Pod, pod_ips: &[std::net::IpAddr], cluster: &ClusterDnsSettings) -> String {
    let spec = pod.spec.clone().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let hostname = spec.hostname.clone().unwrap_or_else(|| name.to_owned());
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    for pod_ip in pod_ips {
        match &spec.subdomain {
            Some(sub) if !sub.is_empty() => out.push_str(&format!(
                "{pod_ip}\t{hostname}.{sub}.{namespace}.svc.{}\t{hostname}\n",
                cluster.domain
            )),
            _ => out.push_str(&format!("{pod_ip}\t{hostname}\n")),
        }
    }
    let aliases = spec.host_aliases.unwrap_or_default();
    if !aliases.is_empty() {
        out.push_str("\n# Entries added by HostAliases.\n");
        for alias in aliases {
            let names = alias.hostnames.unwrap_or_default().join("\t");
            out.push_str(&format!("{}\t{names}\n", alias.ip));
        }
    }
    out
}

/// The pod's hostname: `spec.hostname`, else its name.
pub fn hostname(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> Pod {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn cluster() -> ClusterDnsSettings {
        ClusterDnsSettings {
            server: "10.96.0.10".into(),
            domain: "cluster.local".into(),
        }
    }

    const HOST: &str = "domain example.org\nnameserver 192.0.2.53\noptions edns0\n";

    #[test]
    fn cluster_first_is_the_default() {
        let p = pod("metadata: {name: a, namespace: shop}\nspec: {containers: []}");
        assert_eq!(
            resolv_conf(&p, &cluster(), HOST),
            "search shop.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
        );
    }

    #[test]
    fn default_uses_the_node_s_resolver_and_none_only_dns_config() {
        let p = pod("metadata: {name: a}\nspec: {dnsPolicy: Default, containers: []}");
        assert_eq!(
            resolv_conf(&p, &cluster(), HOST),
            "search example.org\nnameserver 192.0.2.53\noptions edns0\n"
        );
        let p = pod(
            "metadata: {name: a}\nspec: {dnsPolicy: None, dnsConfig: {nameservers: [1.2.3.4], searches: [ns1.svc.cluster-domain.example], options: [{name: ndots, value: '2'}, {name: edns0}]}, containers: []}",
        );
        assert_eq!(
            resolv_conf(&p, &cluster(), HOST),
            "search ns1.svc.cluster-domain.example\nnameserver 1.2.3.4\noptions ndots:2 edns0\n"
        );
    }

    #[test]
    fn dns_config_merges_into_cluster_first() {
        let p = pod(
            "metadata: {name: a}\nspec: {dnsConfig: {nameservers: [10.96.0.10, 1.1.1.1], searches: [corp.example], options: [{name: ndots, value: '1'}]}, containers: []}",
        );
        assert_eq!(
            resolv_conf(&p, &cluster(), HOST),
            "search default.svc.cluster.local svc.cluster.local cluster.local corp.example\nnameserver 10.96.0.10\nnameserver 1.1.1.1\noptions ndots:1\n"
        );
    }

    #[test]
    fn hosts_name_the_pod_and_its_aliases() {
        let p = pod(
            "metadata: {name: web-0, namespace: shop}\nspec: {hostname: w, subdomain: web, hostAliases: [{ip: 10.1.2.3, hostnames: [foo.local, bar.local]}], containers: []}",
        );
        let text = hosts(&p, &["10.244.1.5".parse().unwrap()], &cluster());
        assert!(text.contains("10.244.1.5\tw.web.shop.svc.cluster.local\tw\n"), "{text}");
        // a dual-stack pod is named under both its addresses, in the order of its podIPs
        let dual = hosts(
            &p,
            &["10.244.1.5".parse().unwrap(), "fd00:10:244:1::5".parse().unwrap()],
            &cluster(),
        );
        assert!(
            dual.contains(
                "10.244.1.5\tw.web.shop.svc.cluster.local\tw\nfd00:10:244:1::5\tw.web.shop.svc.cluster.local\tw\n"
            ),
            "{dual}"
        );
        assert!(
            text.ends_with("# Entries added by HostAliases.\n10.1.2.3\tfoo.local\tbar.local\n"),
            "{text}"
        );
        assert_eq!(hostname(&p), "w");
    }
}
