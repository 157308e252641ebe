//! The checks that tie `clusterIP`, `clusterIPs`, `ipFamilies` and `ipFamilyPolicy` together.
//! The allocator runs them before allocating, and validation runs them again.

use k8s_openapi::api::core::v1::Service;

use super::*;
use crate::field::{BadValue, ErrorList, FieldError, FieldPath};
use crate::ip::{IpFamily, parse_ip_sloppy};

/// Upstream's message for an unparsable IP in a legacy field.
pub const INVALID_IP_MSG: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";

/// Checks one IP-valued field: required, and parsable.
pub fn validate_ip_field(path: FieldPath, value: &str) -> ErrorList {
    if value.is_empty() {
        return vec![FieldError::required(path, "")];
    }
    if parse_ip_sloppy(value).is_none() {
        return vec![FieldError::invalid(path, value, INVALID_IP_MSG)];
    }
    vec![]
}

/// A `[]core.IPFamily` value, for error messages.
pub fn families_value(svc: &Service) -> BadValue {
    BadValue::StrList {
        go_type: "core.IPFamily",
        items: spec(svc).ip_families.clone(),
    }
}

/// The cluster IPs as an error value (their JSON; `null` when none).
pub fn cluster_ips_value(svc: &Service) -> BadValue {
    BadValue::strings(spec(svc).cluster_ips.as_deref())
}

/// The ipFamilyPolicy as an error value (`null` when unset).
pub fn policy_value(svc: &Service) -> BadValue {
    match &spec(svc).ip_family_policy {
        Some(p) => BadValue::Str(p.clone()),
        None => BadValue::Null,
    }
}

pub(crate) fn validate_cluster_ips_related_fields(svc: &Service, legacy: &super::validate::Legacy) -> ErrorList {
    if type_of(svc) == TYPE_EXTERNAL_NAME {
        return vec![];
    }
    let mut errs = ErrorList::new();
    let spec_path = FieldPath::new("spec");
    let ips_path = spec_path.child("clusterIPs");
    let fam_path = spec_path.child("ipFamilies");
    let ips = cluster_ips(svc);
    let mut has_invalid_ips = false;

    if !cluster_ip(svc).is_empty() {
        if ips.is_empty() {
            errs.push(FieldError::required(ips_path.clone(), ""));
        } else if ips[0] != cluster_ip(svc) {
            errs.push(FieldError::invalid(
                ips_path.clone(),
                cluster_ips_value(svc),
                "first value must match `clusterIP`",
            ));
        }
    } else if !ips.is_empty() {
        errs.push(FieldError::invalid(
            ips_path.clone(),
            cluster_ips_value(svc),
            "must be empty when `clusterIP` is not specified",
        ));
    }

    let mut seen = Vec::new();
    for (i, fam) in ip_families(svc).iter().enumerate() {
        if IpFamily::parse(fam).is_none() {
            errs.push(FieldError::not_supported(
                fam_path.index(i),
                fam.as_str(),
                &["IPv4", "IPv6"],
            ));
        }
        if seen.contains(&fam) {
            errs.push(FieldError::duplicate(fam_path.index(i), fam.as_str()));
        }
        seen.push(fam);
    }

    if let Some(policy) = &spec(svc).ip_family_policy
        && ![SINGLE_STACK, PREFER_DUAL_STACK, REQUIRE_DUAL_STACK].contains(&policy.as_str())
    {
        errs.push(FieldError::not_supported(
            spec_path.child("ipFamilyPolicy"),
            policy.as_str(),
            &[PREFER_DUAL_STACK, REQUIRE_DUAL_STACK, SINGLE_STACK],
        ));
    }

    for (i, ip) in ips.iter().enumerate() {
        if i == 0 && ip == CLUSTER_IP_NONE {
            if ips.len() > 1 {
                has_invalid_ips = true;
                errs.push(FieldError::invalid(
                    ips_path.clone(),
                    cluster_ips_value(svc),
                    "'None' must be the first and only value",
                ));
            }
            continue;
        }
        let mut e = validate_ip_field(ips_path.index(i), ip);
        if e.is_empty()
            && let Some(problem) = legacy.cluster_ip_problem(ip)
        {
            e.push(FieldError::invalid(ips_path.index(i), ip.as_str(), problem));
        }
        has_invalid_ips |= !e.is_empty();
        errs.extend(e);
    }

    if ips.len() > 2 {
        errs.push(FieldError::invalid(
            ips_path.clone(),
            cluster_ips_value(svc),
            "may only hold up to 2 values",
        ));
    }
    if has_invalid_ips {
        return errs;
    }

    if ips.len() > 1 {
        let fams: Vec<Option<IpFamily>> = ips.iter().map(|ip| parse_ip_sloppy(ip).map(IpFamily::of)).collect();
        let dual = ips.len() == 2 && fams[0].is_some() && fams[1].is_some() && fams[0] != fams[1];
        if !dual {
            errs.push(FieldError::invalid(
                ips_path.clone(),
                cluster_ips_value(svc),
                "may specify no more than one IP for each IP family",
            ));
        }
    }

    if !is_headless(svc) && !ips.is_empty() && !ip_families(svc).is_empty() {
        for (i, (ip, fam)) in ips.iter().zip(ip_families(svc)).enumerate() {
            let is_v6 = parse_ip_sloppy(ip).map(IpFamily::of) == Some(IpFamily::IPv6);
            if fam == "IPv4" && is_v6 {
                errs.push(FieldError::invalid(
                    ips_path.index(i),
                    ip.as_str(),
                    format!("expected an IPv4 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
            if fam == "IPv6" && !is_v6 {
                errs.push(FieldError::invalid(
                    ips_path.index(i),
                    ip.as_str(),
                    format!("expected an IPv6 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
        }
    }
    errs
}
