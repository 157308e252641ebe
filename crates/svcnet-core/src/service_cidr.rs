//! ServiceCIDR and IPAddress (networking.k8s.io/v1): upstream's validation with its
//! messages, and the ServiceCIDR controller's pure decision of when a ServiceCIDR being
//! deleted may go.

use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::networking::v1::ServiceCIDR;
use serde_json::{Value, json};

use crate::field::{BadValue, FieldError, FieldPath};
use crate::ip::parse_ip_sloppy;

/// The ServiceCIDR that mirrors `--service-cluster-ip-range`.
pub const DEFAULT_SERVICE_CIDR: &str = "kubernetes";
/// Holds a ServiceCIDR while addresses only it contains are allocated.
pub const FINALIZER: &str = "networking.k8s.io/service-cidr-finalizer";
/// Labels of the IPAddress objects the allocator writes.
pub const LABEL_IP_FAMILY: &str = "ipaddress.kubernetes.io/ip-family";
pub const LABEL_MANAGED_BY: &str = "ipaddress.kubernetes.io/managed-by";
/// The allocator's name in `LABEL_MANAGED_BY` (upstream's).
pub const ALLOCATOR: &str = "ipallocator.k8s.io";
/// The condition message of a ServiceCIDR in use.
pub const READY_MESSAGE: &str = "Kubernetes Service CIDR is ready";
/// The condition message of a ServiceCIDR whose deletion waits for its addresses.
pub const TERMINATING_MESSAGE: &str =
    "There are still IPAddresses referencing the ServiceCIDR, please remove them or create a new ServiceCIDR";

/// Why `value` is not an IP address in canonical form (IPAddress names).
pub fn ip_problems(value: &str) -> Vec<String> {
    let Some(loose) = parse_ip_sloppy(value) else {
        return vec!["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)".into()];
    };
    if let Some(problem) = crate::ip::strict_ip_problem(value) {
        return vec![problem.to_owned()];
    }
    if loose.to_string() != value {
        return vec![format!("must be in canonical form (\"{loose}\")")];
    }
    Vec::new()
}

/// Why `value` is not a CIDR in canonical form, as errors at `path`.
pub fn cidr_errors(path: &FieldPath, value: &str) -> Vec<FieldError> {
    let invalid = |detail: String| vec![FieldError::invalid(path.clone(), value, detail)];
    let Some((ip, bits)) = crate::ip::parse_cidr_sloppy(value) else {
        return invalid("must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)".into());
    };
    if let Some(problem) = crate::ip::strict_cidr_problem(value) {
        return invalid(problem.into());
    }
    let canonical = IpNet::new(ip, bits).map(|n| n.trunc().to_string()).unwrap_or_default();
    if canonical != value {
        return invalid(format!("must be in canonical form (\"{canonical}\")"));
    }
    Vec::new()
}

fn cidrs(obj: &ServiceCIDR) -> &[String] {
    obj.spec.as_ref().and_then(|s| s.cidrs.as_deref()).unwrap_or(&[])
}

/// The spec as upstream shows it: its internal type, whose field has no JSON name.
fn cidrs_value(cidrs: &[String]) -> BadValue {
    BadValue::Raw(json!({ "CIDRs": cidrs }).to_string())
}

fn spec_errors(cidrs: &[String]) -> Vec<FieldError> {
    let path = FieldPath::new("spec").child("cidrs");
    if cidrs.is_empty() {
        return vec![FieldError::required(path, "at least one CIDR required")];
    }
    if cidrs.len() > 2 {
        return vec![FieldError::invalid(
            path,
            cidrs_value(cidrs),
            "may only hold up to 2 values",
        )];
    }
    let mut errs: Vec<FieldError> = cidrs
        .iter()
        .enumerate()
        .flat_map(|(i, c)| cidr_errors(&path.index(i), c))
        .collect();
    let family = |c: &String| {
        c.split_once('/')
            .and_then(|(ip, _)| parse_ip_sloppy(ip))
            .map(|ip| ip.is_ipv4())
    };
    if let [a, b] = cidrs
        && family(a).is_some()
        && family(a) == family(b)
    {
        errs.push(FieldError::invalid(
            path,
            BadValue::strings(Some(cidrs)),
            "may specify no more than one IP for each IP family, i.e 192.168.0.0/24 and 2001:db8::/64",
        ));
    }
    errs
}

/// Upstream's checks of a new ServiceCIDR (beyond its name).
pub fn validate_service_cidr(obj: &ServiceCIDR) -> Vec<FieldError> {
    spec_errors(cidrs(obj))
}

/// Upstream's checks of a ServiceCIDR update: the CIDRs are immutable, except that a
/// single-family one may gain a CIDR of the other family.
pub fn validate_service_cidr_update(new: &ServiceCIDR, old: &ServiceCIDR) -> Vec<FieldError> {
    let path = FieldPath::new("spec").child("cidrs");
    let (new, old) = (cidrs(new), cidrs(old));
    let immutable = "field is immutable";
    if new.len() == old.len() {
        return old
            .iter()
            .zip(new)
            .enumerate()
            .filter(|(_, (o, n))| o != n)
            .map(|(i, (_, n))| FieldError::invalid(path.index(i), n.as_str(), immutable))
            .collect();
    }
    if old.len() == 1 && new.len() == 2 {
        let mut errs = Vec::new();
        if new[0] != old[0] {
            errs.push(FieldError::invalid(path.index(0), new[0].as_str(), immutable));
        }
        errs.extend(spec_errors(new));
        return errs;
    }
    vec![FieldError::invalid(path, BadValue::strings(Some(new)), immutable)]
}

/// Why a name is not a path segment (`.`, `..`, or containing `/` or `%`).
fn path_segment_problems(name: &str) -> Vec<String> {
    if name == "." || name == ".." {
        return vec![format!("may not be '{name}'")];
    }
    ["/", "%"]
        .iter()
        .filter(|bad| name.contains(**bad))
        .map(|bad| format!("may not contain '{bad}'"))
        .collect()
}

/// Upstream's checks of a new IPAddress (beyond its name, see [`ip_problems`]), on the
/// object as sent: the typed form cannot hold a parent reference without its required parts.
pub fn validate_ip_address(obj: &Value) -> Vec<FieldError> {
    let path = FieldPath::new("spec").child("parentRef");
    let parent = &obj["spec"]["parentRef"];
    if !parent.is_object() {
        return vec![FieldError::required(path, "")];
    }
    let text = |field: &str| parent[field].as_str().unwrap_or("").to_owned();
    let mut errs = Vec::new();
    let group = text("group");
    if !group.is_empty() {
        for msg in crate::names::dns1123_subdomain(&group) {
            errs.push(FieldError::invalid(path.child("group"), group.as_str(), msg));
        }
    }
    for (field, required) in [("resource", true), ("name", true), ("namespace", false)] {
        let value = text(field);
        if value.is_empty() {
            if required {
                errs.push(FieldError::required(path.child(field), ""));
            }
            continue;
        }
        for msg in path_segment_problems(&value) {
            errs.push(FieldError::invalid(path.child(field), value.as_str(), msg));
        }
    }
    errs
}

/// An IPAddress's parent is immutable (upstream shows the offending value as `null`).
pub fn validate_ip_address_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let parent = |a: &Value| a["spec"]["parentRef"].clone();
    if parent(new) == parent(old) {
        return Vec::new();
    }
    vec![FieldError::invalid(
        FieldPath::new("spec").child("parentRef"),
        BadValue::Null,
        "field is immutable",
    )]
}

/// A ServiceCIDR's networks (unparsable ones left out: validation refused them).
pub fn networks(obj: &ServiceCIDR) -> Vec<IpNet> {
    cidrs(obj).iter().filter_map(|c| c.parse::<IpNet>().ok()).collect()
}

/// Whether the ServiceCIDR `name` with `networks`, being deleted, may go (upstream's rule):
/// yes when another ServiceCIDR of `all` contains each of its networks, or when no
/// `allocated` address is held by it alone.
pub fn can_delete(
    name: &str,
    networks: &[IpNet],
    all: &[(String, Vec<IpNet>)],
    allocated: impl IntoIterator<Item = IpAddr>,
) -> bool {
    let holders = |contains: &dyn Fn(&IpNet) -> bool| -> Vec<&str> {
        all.iter()
            .filter(|(_, nets)| nets.iter().any(contains))
            .map(|(n, _)| n.as_str())
            .collect()
    };
    let only_this = |names: Vec<&str>| names.is_empty() || names == [name];
    let has_parent = networks
        .iter()
        .all(|net| !only_this(holders(&|other: &IpNet| other.contains(net))));
    if has_parent {
        return true;
    }
    !allocated
        .into_iter()
        .filter(|ip| networks.iter().any(|n| n.contains(ip)))
        .any(|ip| only_this(holders(&|other: &IpNet| other.contains(&ip))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(errs: Vec<FieldError>) -> Vec<String> {
        errs.iter().map(FieldError::to_string).collect()
    }

    #[test]
    fn cidrs_must_be_canonical_as_upstream_words_it() {
        let path = FieldPath::new("spec").child("cidrs").index(0);
        for (value, want) in [
            ("10.0.0.0/24", None),
            ("fd00::/120", None),
            (
                "10.0.0.0",
                Some("must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"),
            ),
            ("010.0.0.0/24", Some("must not have leading 0s in IP or prefix length")),
            ("10.0.0.0/024", Some("must not have leading 0s in IP or prefix length")),
            ("10.0.0.1/24", Some("must not have bits set beyond the prefix length")),
            ("fd00:0::/120", Some("must be in canonical form (\"fd00::/120\")")),
        ] {
            let errs = cidr_errors(&path, value);
            assert_eq!(errs.first().map(|e| e.detail.clone()).as_deref(), want, "{value}");
        }
    }

    #[test]
    fn ip_address_names_must_be_canonical() {
        assert!(ip_problems("10.96.0.10").is_empty());
        assert_eq!(ip_problems("10.96.0.010"), ["must not have leading 0s"]);
        assert_eq!(ip_problems("fd00:0::1"), ["must be in canonical form (\"fd00::1\")"]);
        assert_eq!(
            ip_problems("x"),
            ["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]
        );
    }

    #[test]
    fn service_cidr_specs_and_updates() {
        let obj = |cidrs: &[&str]| -> ServiceCIDR {
            serde_json::from_value(json!({ "metadata": { "name": "x" }, "spec": { "cidrs": cidrs } })).unwrap()
        };
        assert!(validate_service_cidr(&obj(&["10.0.0.0/24", "fd00::/120"])).is_empty());
        assert_eq!(
            messages(validate_service_cidr(&obj(&[]))),
            ["spec.cidrs: Required value: at least one CIDR required"]
        );
        assert_eq!(
            messages(validate_service_cidr(&obj(&["10.0.0.0/24", "10.1.0.0/24"]))),
            [
                r#"spec.cidrs: Invalid value: ["10.0.0.0/24","10.1.0.0/24"]: may specify no more than one IP for each IP family, i.e 192.168.0.0/24 and 2001:db8::/64"#
            ]
        );
        let old = obj(&["10.0.0.0/24"]);
        assert!(validate_service_cidr_update(&obj(&["10.0.0.0/24", "fd00::/120"]), &old).is_empty());
        assert_eq!(
            messages(validate_service_cidr_update(&obj(&["10.1.0.0/24"]), &old)),
            [r#"spec.cidrs[0]: Invalid value: "10.1.0.0/24": field is immutable"#]
        );
    }

    #[test]
    fn a_service_cidr_goes_when_covered_or_unused() {
        let net = |s: &str| s.parse::<IpNet>().unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let mine = vec![net("10.1.0.0/24")];
        let alone = vec![("extra".to_owned(), mine.clone())];
        assert!(
            can_delete("extra", &mine, &alone, [ip("10.0.0.5")]),
            "no address of its own"
        );
        assert!(
            !can_delete("extra", &mine, &alone, [ip("10.1.0.5")]),
            "an address only it holds"
        );
        let covered = vec![
            ("extra".to_owned(), mine.clone()),
            ("big".to_owned(), vec![net("10.0.0.0/15")]),
        ];
        assert!(
            can_delete("extra", &mine, &covered, [ip("10.1.0.5")]),
            "another CIDR holds it"
        );
    }
}
