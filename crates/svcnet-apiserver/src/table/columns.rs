//! The columns `kubectl get` shows for each kind, as upstream's printers define them
//! (priority 1 columns appear with `-o wide`).

use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use super::age;

pub struct Column {
    pub name: &'static str,
    pub priority: u8,
    pub cell: fn(&Value, Timestamp) -> String,
}

const fn col(name: &'static str, priority: u8, cell: fn(&Value, Timestamp) -> String) -> Column {
    Column { name, priority, cell }
}

fn name(v: &Value, _: Timestamp) -> String {
    v["metadata"]["name"].as_str().unwrap_or("").to_owned()
}

fn age_cell(v: &Value, now: Timestamp) -> String {
    age(&v["metadata"]["creationTimestamp"], now)
}

fn none_if_empty(s: String) -> String {
    if s.is_empty() { "<none>".to_owned() } else { s }
}

fn strings(list: &Value) -> impl Iterator<Item = &str> {
    list.as_array().into_iter().flatten().filter_map(Value::as_str)
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// `resource[.group][/namespace]/name`, lowercased, as upstream prints an IPAddress's parent.
fn ip_address_parent(v: &Value) -> String {
    let parent = &v["spec"]["parentRef"];
    if !parent.is_object() {
        return "<none>".to_owned();
    }
    let text = |f: &str| parent[f].as_str().unwrap_or("").to_owned();
    let mut out = text("resource");
    if !text("group").is_empty() {
        out = format!("{out}.{}", text("group"));
    }
    out = out.to_lowercase();
    if !text("namespace").is_empty() {
        out = format!("{out}/{}", text("namespace"));
    }
    format!("{out}/{}", text("name"))
}

/// The columns of `kind` (NAME first, AGE where upstream puts it).
pub fn layout(kind: &str) -> Vec<Column> {
    match kind {
        "Service" => vec![
            col("Name", 0, name),
            col("Type", 0, |v, _| service_cells(v)[0].clone()),
            col("Cluster-IP", 0, |v, _| service_cells(v)[1].clone()),
            col("External-IP", 0, |v, _| service_cells(v)[2].clone()),
            col("Port(s)", 0, |v, _| service_cells(v)[3].clone()),
            col("Age", 0, age_cell),
            col("Selector", 1, |v, _| selector(&v["spec"]["selector"])),
        ],
        "Pod" => vec![
            col("Name", 0, name),
            col("Ready", 0, |v, _| pod_ready(v)),
            col("Status", 0, |v, _| pod_status(v)),
            col("Restarts", 0, |v, _| {
                let statuses = v["status"]["containerStatuses"].as_array().into_iter().flatten();
                statuses.map(|c| int(&c["restartCount"])).sum::<i64>().to_string()
            }),
            col("Age", 0, age_cell),
            col("IP", 1, |v, _| {
                none_if_empty(v["status"]["podIP"].as_str().unwrap_or("").to_owned())
            }),
            col("Node", 1, |v, _| {
                none_if_empty(v["spec"]["nodeName"].as_str().unwrap_or("").to_owned())
            }),
            col("Nominated Node", 1, |_, _| "<none>".to_owned()),
            col("Readiness Gates", 1, |_, _| "<none>".to_owned()),
        ],
        "Deployment" => vec![
            col("Name", 0, name),
            col("Ready", 0, |v, _| {
                format!("{}/{}", int(&v["status"]["readyReplicas"]), int(&v["spec"]["replicas"]))
            }),
            col("Up-to-date", 0, |v, _| int(&v["status"]["updatedReplicas"]).to_string()),
            col("Available", 0, |v, _| {
                int(&v["status"]["availableReplicas"]).to_string()
            }),
            col("Age", 0, age_cell),
            col("Containers", 1, |v, _| containers(v, "name")),
            col("Images", 1, |v, _| containers(v, "image")),
            col("Selector", 1, |v, _| selector(&v["spec"]["selector"]["matchLabels"])),
        ],
        "ReplicaSet" => vec![
            col("Name", 0, name),
            col("Desired", 0, |v, _| int(&v["spec"]["replicas"]).to_string()),
            col("Current", 0, |v, _| int(&v["status"]["replicas"]).to_string()),
            col("Ready", 0, |v, _| int(&v["status"]["readyReplicas"]).to_string()),
            col("Age", 0, age_cell),
            col("Containers", 1, |v, _| containers(v, "name")),
            col("Images", 1, |v, _| containers(v, "image")),
            col("Selector", 1, |v, _| selector(&v["spec"]["selector"]["matchLabels"])),
        ],
        "Node" => vec![
            col("Name", 0, name),
            col("Status", 0, |v, _| node_status(v)),
            col("Roles", 0, |v, _| node_roles(v)),
            col("Age", 0, age_cell),
            col("Version", 0, |v, _| {
                v["status"]["nodeInfo"]["kubeletVersion"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned()
            }),
            col("Internal-IP", 1, |v, _| node_address(v, "InternalIP")),
            col("External-IP", 1, |v, _| node_address(v, "ExternalIP")),
            col("OS-Image", 1, |v, _| {
                none_if_empty(v["status"]["nodeInfo"]["osImage"].as_str().unwrap_or("").to_owned())
            }),
            col("Kernel-Version", 1, |v, _| {
                none_if_empty(
                    v["status"]["nodeInfo"]["kernelVersion"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                )
            }),
            col("Container-Runtime", 1, |v, _| {
                none_if_empty(
                    v["status"]["nodeInfo"]["containerRuntimeVersion"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                )
            }),
        ],
        "ServiceCIDR" => vec![
            col("Name", 0, name),
            col("CIDRs", 0, |v, _| {
                strings(&v["spec"]["cidrs"]).collect::<Vec<_>>().join(",")
            }),
            col("Age", 0, age_cell),
        ],
        "IPAddress" => vec![col("Name", 0, name), col("ParentRef", 0, |v, _| ip_address_parent(v))],
        "EndpointSlice" => vec![
            col("Name", 0, name),
            col("AddressType", 0, |v, _| {
                v["addressType"].as_str().unwrap_or("").to_owned()
            }),
            col("Ports", 0, |v, _| {
                let ports: Vec<String> = v["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p["port"].as_i64())
                    .map(|p| p.to_string())
                    .collect();
                if ports.is_empty() {
                    "<unset>".to_owned()
                } else {
                    ports.join(",")
                }
            }),
            col("Endpoints", 0, |v, _| {
                let addrs: Vec<String> = v["endpoints"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|e| strings(&e["addresses"]).map(str::to_owned).collect::<Vec<_>>())
                    .collect();
                if addrs.is_empty() {
                    "<unset>".to_owned()
                } else {
                    first_three(&addrs)
                }
            }),
            col("Age", 0, age_cell),
        ],
        "Endpoints" => vec![
            col("Name", 0, name),
            col("Endpoints", 0, |v, _| {
                let mut all = Vec::new();
                for subset in v["subsets"].as_array().into_iter().flatten() {
                    for a in subset["addresses"].as_array().into_iter().flatten() {
                        let ip = a["ip"].as_str().unwrap_or("");
                        let ports: Vec<i64> = subset["ports"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|p| p["port"].as_i64())
                            .collect();
                        if ports.is_empty() {
                            all.push(ip.to_owned())
                        }
                        all.extend(ports.iter().map(|p| format!("{ip}:{p}")));
                    }
                }
                if all.is_empty() {
                    "<none>".to_owned()
                } else {
                    first_three(&all)
                }
            }),
            col("Age", 0, age_cell),
        ],
        "Namespace" => vec![
            col("Name", 0, name),
            col("Status", 0, |v, _| {
                v["status"]["phase"].as_str().unwrap_or("Active").to_owned()
            }),
            col("Age", 0, age_cell),
        ],
        "Event" => vec![
            col("Last Seen", 0, |v, now| event_times(v, now).1),
            col("Type", 0, |v, _| v["type"].as_str().unwrap_or("").to_owned()),
            col("Reason", 0, |v, _| v["reason"].as_str().unwrap_or("").to_owned()),
            col("Object", 0, |v, _| {
                let object = &v["involvedObject"];
                let kind = object["kind"].as_str().unwrap_or("").to_lowercase();
                format!("{kind}/{}", object["name"].as_str().unwrap_or(""))
            }),
            col("Subobject", 1, |v, _| {
                v["involvedObject"]["fieldPath"].as_str().unwrap_or("").to_owned()
            }),
            col("Source", 1, |v, _| event_source(v)),
            col("Message", 0, |v, _| {
                v["message"].as_str().unwrap_or("").trim().to_owned()
            }),
            col("First Seen", 1, |v, now| event_times(v, now).0),
            col("Count", 1, |v, _| {
                let count = v["series"]["count"].as_i64().or(v["count"].as_i64()).unwrap_or(0);
                count.max(1).to_string()
            }),
            col("Name", 1, name),
        ],
        "ConfigMap" => vec![
            col("Name", 0, name),
            col("Data", 0, data_count),
            col("Age", 0, age_cell),
        ],
        "Secret" => vec![
            col("Name", 0, name),
            col("Type", 0, |v, _| v["type"].as_str().unwrap_or("").to_owned()),
            col("Data", 0, data_count),
            col("Age", 0, age_cell),
        ],
        "RoleBinding" | "ClusterRoleBinding" => vec![
            col("Name", 0, name),
            col("Role", 0, |v, _| {
                format!(
                    "{}/{}",
                    v["roleRef"]["kind"].as_str().unwrap_or(""),
                    v["roleRef"]["name"].as_str().unwrap_or("")
                )
            }),
            col("Age", 0, age_cell),
        ],
        _ => vec![col("Name", 0, name), col("Age", 0, age_cell)],
    }
}

/// Entries in `data` and `binaryData` (ConfigMaps, Secrets).
fn data_count(v: &Value, _: Timestamp) -> String {
    let count = |field: &str| v[field].as_object().map_or(0, |m| m.len());
    (count("data") + count("binaryData")).to_string()
}

/// An event's first and last sighting as ages: `firstTimestamp` or else `eventTime`;
/// `series.lastObservedTime`, else `lastTimestamp`, else the first.
fn event_times(v: &Value, now: Timestamp) -> (String, String) {
    let first = if v["firstTimestamp"].is_string() {
        &v["firstTimestamp"]
    } else {
        &v["eventTime"]
    };
    let last = [&v["series"]["lastObservedTime"], &v["lastTimestamp"]]
        .into_iter()
        .find(|t| t.is_string())
        .unwrap_or(first);
    (age(first, now), age(last, now))
}

/// `component, host` of the legacy source, else the reporting controller and instance.
fn event_source(v: &Value) -> String {
    let pair = |a: &Value, b: &Value| {
        let (a, b) = (a.as_str().unwrap_or(""), b.as_str().unwrap_or(""));
        if b.is_empty() {
            a.to_owned()
        } else {
            format!("{a}, {b}")
        }
    };
    if v["source"]["component"].as_str().is_some_and(|c| !c.is_empty()) {
        pair(&v["source"]["component"], &v["source"]["host"])
    } else {
        pair(&v["reportingController"], &v["reportingInstance"])
    }
}

/// Up to three entries, then how many more (as upstream abbreviates long lists).
fn first_three(all: &[String]) -> String {
    if all.len() <= 3 {
        all.join(",")
    } else {
        format!("{} + {} more...", all[..3].join(","), all.len() - 3)
    }
}

fn containers(v: &Value, field: &str) -> String {
    let list = v["spec"]["template"]["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten();
    list.filter_map(|c| c[field].as_str()).collect::<Vec<_>>().join(",")
}

fn pod_ready(v: &Value) -> String {
    let total = v["spec"]["containers"].as_array().map_or(0, Vec::len);
    let ready = v["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["ready"].as_bool() == Some(true))
        .count();
    format!("{ready}/{total}")
}

/// The STATUS column: Terminating, a container's waiting or terminated reason, or the phase.
fn pod_status(v: &Value) -> String {
    if !v["metadata"]["deletionTimestamp"].is_null() {
        return "Terminating".to_owned();
    }
    let mut reason = v["status"]["phase"].as_str().unwrap_or("Pending").to_owned();
    for c in v["status"]["containerStatuses"].as_array().into_iter().flatten() {
        let state = &c["state"];
        if let Some(r) = state["waiting"]["reason"].as_str().filter(|r| !r.is_empty()) {
            reason = r.to_owned();
        } else if let Some(r) = state["terminated"]["reason"].as_str().filter(|r| !r.is_empty()) {
            reason = r.to_owned();
        }
    }
    reason
}

fn node_status(v: &Value) -> String {
    let ready = v["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True");
    let mut s = if ready { "Ready" } else { "NotReady" }.to_owned();
    if v["spec"]["unschedulable"].as_bool() == Some(true) {
        s.push_str(",SchedulingDisabled");
    }
    s
}

fn node_roles(v: &Value) -> String {
    let mut roles: Vec<&str> = v["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, _)| k.strip_prefix("node-role.kubernetes.io/"))
        .filter(|r| !r.is_empty())
        .collect();
    roles.sort_unstable();
    none_if_empty(roles.join(","))
}

fn node_address(v: &Value, kind: &str) -> String {
    let found = v["status"]["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["type"] == kind)
        .and_then(|a| a["address"].as_str());
    found.unwrap_or("<none>").to_owned()
}

pub(crate) fn service_cells(svc: &Value) -> [String; 4] {
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

pub(crate) fn selector(selector: &Value) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cells(kind: &str, v: &Value) -> Vec<String> {
        let now = Timestamp::from_second(1_800_000_100).unwrap();
        layout(kind).iter().map(|c| (c.cell)(v, now)).collect()
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
    fn pod_columns() {
        let pod = json!({"metadata": {"name": "web-1", "creationTimestamp": "2027-01-15T08:00:00Z"},
            "spec": {"nodeName": "node-1", "containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "podIP": "10.244.1.2", "containerStatuses": [
                {"ready": true, "restartCount": 2, "state": {"running": {}}},
                {"ready": false, "restartCount": 1, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        let c = cells("Pod", &pod);
        assert_eq!(c[..4], ["web-1", "1/2", "CrashLoopBackOff", "3"]);
        assert_eq!(c[5..7], ["10.244.1.2", "node-1"]);
        let mut gone = pod.clone();
        gone["metadata"]["deletionTimestamp"] = json!("2027-01-15T08:00:01Z");
        assert_eq!(cells("Pod", &gone)[2], "Terminating");
    }

    #[test]
    fn event_columns() {
        let event = json!({"metadata": {"name": "web.17"}, "type": "Normal", "reason": "ScalingReplicaSet",
            "involvedObject": {"kind": "Deployment", "name": "web"}, "message": "Scaled up replica set web-1 from 0 to 3",
            "source": {"component": "deployment-controller"},
            "firstTimestamp": "2027-01-15T08:00:00Z", "lastTimestamp": "2027-01-15T08:01:00Z", "count": 2});
        assert_eq!(
            cells("Event", &event),
            [
                "40s",
                "Normal",
                "ScalingReplicaSet",
                "deployment/web",
                "",
                "deployment-controller",
                "Scaled up replica set web-1 from 0 to 3",
                "100s",
                "2",
                "web.17"
            ]
        );
        // events.k8s.io-style: eventTime and the reporting controller
        let new_style = json!({"eventTime": "2027-01-15T08:00:00.000000Z", "reportingController": "kubelet",
            "reportingInstance": "node-1", "involvedObject": {"kind": "Pod", "name": "p"}});
        let c = cells("Event", &new_style);
        assert_eq!(
            (c[0].as_str(), c[3].as_str(), c[5].as_str(), c[8].as_str()),
            ("100s", "pod/p", "kubelet, node-1", "1")
        );
    }

    #[test]
    fn workload_node_and_slice_columns() {
        let d = json!({"metadata": {"name": "web"}, "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
            "template": {"spec": {"containers": [{"name": "c", "image": "agnhost"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        let c = cells("Deployment", &d);
        assert_eq!(c[1..4], ["2/3", "3", "2"]);
        assert_eq!(c[5..], ["c", "agnhost", "app=web"]);
        let node = json!({"metadata": {"name": "n", "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "addresses": [{"type": "InternalIP", "address": "10.240.0.11"}],
                       "nodeInfo": {"kubeletVersion": "v1"}}});
        let c = cells("Node", &node);
        assert_eq!(c[1..3], ["Ready", "control-plane"]);
        assert_eq!(c[4..7], ["v1", "10.240.0.11", "<none>"]);
        let slice = json!({"addressType": "IPv4", "ports": [{"port": 8080}],
            "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}, {"addresses": ["10.0.0.3"]}, {"addresses": ["10.0.0.4"]}]});
        assert_eq!(
            cells("EndpointSlice", &slice)[1..4],
            ["IPv4", "8080", "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more..."]
        );
    }
}
