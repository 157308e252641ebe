//! Server-side printing: the `meta.k8s.io/v1` Table that `kubectl get` asks for, with
//! upstream's Service columns (NAME, TYPE, CLUSTER-IP, EXTERNAL-IP, PORT(S), AGE, and SELECTOR
//! for `-o wide`) and NAME/AGE for the other kinds. Pure: the caller passes the clock.

use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use crate::resources::Kind;

/// Whether an `Accept` header asks for a Table (kubectl lists `as=Table` first).
pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .any(|part| part.contains("as=Table") && part.contains("g=meta.k8s.io"))
}

/// The Table for `items`, listed at `resource_version`, aged against `now`.
pub fn table(kind: &Kind, items: &[Value], resource_version: &str, now: Timestamp) -> Value {
    let services = kind.kind == "Service";
    let mut columns = vec![column("Name", "name", 0)];
    if services {
        columns.extend([
            column("Type", "string", 0),
            column("Cluster-IP", "string", 0),
            column("External-IP", "string", 0),
            column("Port(s)", "string", 0),
        ]);
    }
    columns.push(column("Age", "string", 0));
    if services {
        columns.push(column("Selector", "string", 1));
    }
    let rows: Vec<Value> = items
        .iter()
        .map(|item| {
            let mut cells = vec![item["metadata"]["name"].clone()];
            if services {
                cells.extend(service_cells(item).map(Value::from));
            }
            cells.push(Value::from(age(&item["metadata"]["creationTimestamp"], now)));
            if services {
                cells.push(Value::from(selector(&item["spec"]["selector"])));
            }
            json!({"cells": cells, "object": item})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1",
           "metadata": {"resourceVersion": resource_version},
           "columnDefinitions": columns, "rows": rows})
}

fn column(name: &str, kind: &str, priority: u8) -> Value {
    json!({"name": name, "type": "string", "format": if kind == "name" { "name" } else { "" },
           "description": "", "priority": priority})
}

fn strings(list: &Value) -> impl Iterator<Item = &str> {
    list.as_array().into_iter().flatten().filter_map(Value::as_str)
}

fn service_cells(svc: &Value) -> [String; 4] {
    let spec = &svc["spec"];
    let kind = spec["type"].as_str().unwrap_or("ClusterIP");
    let cluster_ip = match spec["clusterIP"].as_str() {
        Some(ip) if !ip.is_empty() && kind != "ExternalName" => ip.to_owned(),
        _ => "<none>".to_owned(),
    };
    let external_ips: Vec<&str> = strings(&spec["externalIPs"]).collect();
    let external = match kind {
        "ExternalName" => spec["externalName"].as_str().unwrap_or("").to_owned(),
        "LoadBalancer" => {
            let ingress = svc["status"]["loadBalancer"]["ingress"]
                .as_array()
                .into_iter()
                .flatten();
            let mut all: Vec<&str> = ingress
                .filter_map(|i| i["ip"].as_str().or_else(|| i["hostname"].as_str()))
                .collect();
            all.extend(&external_ips);
            if all.is_empty() {
                "<pending>".to_owned()
            } else {
                all.join(",")
            }
        }
        _ if external_ips.is_empty() => "<none>".to_owned(),
        _ => external_ips.join(","),
    };
    let ports: Vec<String> = spec["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let protocol = p["protocol"].as_str().unwrap_or("TCP");
            match p["nodePort"].as_u64() {
                Some(node_port) if node_port > 0 => format!("{}:{node_port}/{protocol}", p["port"]),
                _ => format!("{}/{protocol}", p["port"]),
            }
        })
        .collect();
    let ports = if ports.is_empty() {
        "<none>".to_owned()
    } else {
        ports.join(",")
    };
    [kind.to_owned(), cluster_ip, external, ports]
}

fn selector(selector: &Value) -> String {
    match selector.as_object() {
        Some(map) if !map.is_empty() => {
            let mut pairs: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect();
            pairs.sort();
            pairs.join(",")
        }
        _ => "<none>".to_owned(),
    }
}

fn age(created: &Value, now: Timestamp) -> String {
    match created.as_str().and_then(|t| t.parse::<Timestamp>().ok()) {
        Some(created) => human_duration(now.as_second() - created.as_second()),
        None => "<unknown>".to_owned(),
    }
}

/// Ages as kubectl prints them: more precision while small, two units at most.
pub fn human_duration(seconds: i64) -> String {
    const MINUTE: i64 = 60;
    const HOUR: i64 = 60 * MINUTE;
    const DAY: i64 = 24 * HOUR;
    const YEAR: i64 = 365 * DAY;
    let s = seconds;
    if s < -1 {
        return "<invalid>".to_owned();
    }
    let s = s.max(0);
    let with = |big: i64, big_unit: &str, small: i64, small_unit: &str| {
        if small == 0 {
            format!("{big}{big_unit}")
        } else {
            format!("{big}{big_unit}{small}{small_unit}")
        }
    };
    match s {
        s if s < 2 * MINUTE => format!("{s}s"),
        s if s < 10 * MINUTE => with(s / MINUTE, "m", s % MINUTE, "s"),
        s if s < 3 * HOUR => format!("{}m", s / MINUTE),
        s if s < 8 * HOUR => with(s / HOUR, "h", s % HOUR / MINUTE, "m"),
        s if s < 2 * DAY => format!("{}h", s / HOUR),
        s if s < 8 * DAY => with(s / DAY, "d", s % DAY / HOUR, "h"),
        s if s < 2 * YEAR => format!("{}d", s / DAY),
        s if s < 8 * YEAR => with(s / YEAR, "y", s % YEAR / DAY, "d"),
        s => format!("{}y", s / YEAR),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        let cases = [
            (5, "5s"),
            (119, "119s"),
            (150, "2m30s"),
            (300, "5m"),
            (3000, "50m"),
            (4 * 3600 + 120, "4h2m"),
            (30 * 3600, "30h"),
            (3 * 86400 + 3600, "3d1h"),
            (100 * 86400, "100d"),
            (3 * 365 * 86400 + 86400, "3y1d"),
            (9 * 365 * 86400, "9y"),
            (-5, "<invalid>"),
        ];
        for (seconds, want) in cases {
            assert_eq!(human_duration(seconds), want, "{seconds}s");
        }
    }

    #[test]
    fn service_columns() {
        let svc = json!({"spec": {"type": "NodePort", "clusterIP": "10.96.0.10",
            "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}});
        assert_eq!(
            service_cells(&svc),
            ["NodePort", "10.96.0.10", "<none>", "80:30080/TCP,53/UDP"]
        );
        let lb = json!({"spec": {"type": "LoadBalancer", "clusterIP": "None", "externalIPs": ["192.0.2.1"]}});
        assert_eq!(service_cells(&lb), ["LoadBalancer", "None", "192.0.2.1", "<none>"]);
        let pending = json!({"spec": {"type": "LoadBalancer", "clusterIP": "10.0.0.1", "ports": []}});
        assert_eq!(service_cells(&pending)[2], "<pending>");
        assert_eq!(selector(&json!({"b": "2", "a": "1"})), "a=1,b=2");
    }

    #[test]
    fn kubectl_accept_header_asks_for_a_table() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
    }
}
