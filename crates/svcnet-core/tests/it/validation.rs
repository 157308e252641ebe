//! Every validation rule, table-driven: a Service as a client writes it, and the exact
//! causes (field and message) of the 422 Status the create gets. Messages are upstream's.

use svcnet_core::service::validate::validate_service;

use crate::support::*;

const DNS1123_LABEL: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_VALUE: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const BAD_IP: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";

/// Creates `yaml` on a fresh cluster (dual-stack when `dual`) and compares the causes.
fn check_on(dual: bool, yaml: &str, want: &[(&str, &str)]) {
    let mut cluster = Cluster::new(if dual { dual_cluster() } else { v4_cluster() });
    let status = match cluster.create(yaml) {
        Ok(s) => panic!("expected an error, got {s:?}\n{yaml}"),
        Err(e) => e,
    };
    assert_eq!(status.code, 422, "{status:?}");
    let want: Vec<(String, String)> = want.iter().map(|(f, m)| (f.to_string(), m.to_string())).collect();
    assert_eq!(causes(&status), want, "\n{yaml}");
}

fn check(yaml: &str, want: &[(&str, &str)]) {
    check_on(false, yaml, want);
}

/// The causes validation alone reports (for rules defaulting hides from clients).
fn check_validation_only(yaml: &str, want: &[(&str, &str)]) {
    let errs = validate_service(&svc(yaml));
    let got: Vec<(String, String)> = errs.iter().map(|e| (e.path.to_string(), e.body())).collect();
    let want: Vec<(String, String)> = want.iter().map(|(f, m)| (f.to_string(), m.to_string())).collect();
    assert_eq!(got, want, "\n{yaml}");
}

#[test]
fn valid_services_are_accepted() {
    let mut cluster = Cluster::new(v4_cluster());
    for yaml in [
        "metadata: {name: a}\nspec: {ports: [{port: 80}], selector: {app: a}}",
        "metadata: {name: b}\nspec: {type: NodePort, ports: [{name: http, port: 80, targetPort: http}, {name: dns, port: 53, protocol: UDP}]}",
        "metadata: {name: c}\nspec: {type: ExternalName, externalName: example.com.}",
        "metadata: {name: d}\nspec: {clusterIP: None, selector: {app: d}}",
        "metadata: {name: e}\nspec: {type: LoadBalancer, externalTrafficPolicy: Local, ports: [{port: 443, protocol: SCTP}]}",
        "metadata: {name: f}\nspec: {ports: [{port: 80}], sessionAffinity: ClientIP, sessionAffinityConfig: {clientIP: {timeoutSeconds: 86400}}}",
        "metadata: {name: g}\nspec: {ports: [{port: 80}], externalIPs: [192.168.99.11], externalTrafficPolicy: Local}",
        "metadata: {name: h, generateName: web-}\nspec: {ports: [{port: 80}], trafficDistribution: PreferClose, internalTrafficPolicy: Local}",
        "metadata: {name: i, labels: {app.kubernetes.io/name: web}}\nspec: {type: LoadBalancer, loadBalancerSourceRanges: [' 10.0.0.0/8 '], loadBalancerClass: example.com/lb, ports: [{port: 80, appProtocol: kubernetes.io/h2c}]}",
    ] {
        cluster.create(yaml).unwrap_or_else(|e| panic!("{yaml}\n{}", e.message));
    }
}

#[test]
fn metadata_rules() {
    check(
        "metadata: {name: Web}\nspec: {ports: [{port: 80}]}",
        &[("metadata.name", &format!("Invalid value: \"Web\": {DNS1123_LABEL}"))],
    );
    check(
        "metadata: {}\nspec: {ports: [{port: 80}]}",
        &[("metadata.name", "Required value: name or generateName is required")],
    );
    check(
        "metadata: {name: a, namespace: Bad_NS}\nspec: {ports: [{port: 80}]}",
        &[(
            "metadata.namespace",
            &format!("Invalid value: \"Bad_NS\": {DNS1123_LABEL}"),
        )],
    );
    check(
        "metadata: {name: a, labels: {app: 'bad value'}}\nspec: {ports: [{port: 80}]}",
        &[(
            "metadata.labels",
            &format!("Invalid value: \"bad value\": {LABEL_VALUE}"),
        )],
    );
    check(
        "metadata: {name: a, annotations: {'a/b/c': x}}\nspec: {ports: [{port: 80}]}",
        &[(
            "metadata.annotations",
            "Invalid value: \"a/b/c\": a valid label key must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
        )],
    );
    check(
        "metadata: {name: a, generateName: Xy-}\nspec: {ports: [{port: 80}]}",
        &[(
            "metadata.generateName",
            &format!("Invalid value: \"Xy-\": {DNS1123_LABEL}"),
        )],
    );
}

#[test]
fn ports_required_unless_headless_or_external_name() {
    check(
        "metadata: {name: a}\nspec: {selector: {app: a}}",
        &[("spec.ports", "Required value")],
    );
    check(
        "metadata: {name: a}\nspec: {type: NodePort}",
        &[("spec.ports", "Required value")],
    );
}

#[test]
fn headless_is_only_for_cluster_ip() {
    check(
        "metadata: {name: a}\nspec: {type: NodePort, clusterIP: None, ports: [{port: 80}]}",
        &[(
            "spec.clusterIPs[0]",
            "Invalid value: \"None\": may not be set to 'None' for NodePort services",
        )],
    );
    check(
        "metadata: {name: a}\nspec: {type: LoadBalancer, clusterIP: None, ports: [{port: 80}]}",
        &[(
            "spec.clusterIPs[0]",
            "Invalid value: \"None\": may not be set to 'None' for LoadBalancer services",
        )],
    );
}

#[test]
fn external_name_rules() {
    check(
        "metadata: {name: a}\nspec: {type: ExternalName, externalName: x.com, clusterIP: 10.0.0.5}",
        &[("spec.clusterIPs", "Forbidden: may not be set for ExternalName services")],
    );
    check(
        "metadata: {name: a}\nspec: {type: ExternalName, externalName: x.com, ipFamilies: [IPv4], ipFamilyPolicy: SingleStack}",
        &[
            ("spec.ipFamilies", "Forbidden: may not be set for ExternalName services"),
            (
                "spec.ipFamilyPolicy",
                "Forbidden: may not be set for ExternalName services",
            ),
        ],
    );
    check(
        "metadata: {name: a}\nspec: {type: ExternalName}",
        &[("spec.externalName", "Required value")],
    );
    check(
        "metadata: {name: a}\nspec: {type: ExternalName, externalName: .}",
        &[("spec.externalName", "Required value")],
    );
    check(
        "metadata: {name: a}\nspec: {type: ExternalName, externalName: Foo_bar}",
        &[(
            "spec.externalName",
            &format!("Invalid value: \"Foo_bar\": {DNS1123_SUBDOMAIN}"),
        )],
    );
}

#[test]
fn port_rules() {
    check(
        "metadata: {name: a}\nspec: {ports: [{port: 80}, {port: 81}]}",
        &[
            ("spec.ports[0].name", "Required value"),
            ("spec.ports[1].name", "Required value"),
        ],
    );
    check(
        "metadata: {name: a}\nspec: {ports: [{name: http, port: 80}, {name: http, port: 81}]}",
        &[("spec.ports[1].name", "Duplicate value: \"http\"")],
    );
    check(
        "metadata: {name: a}\nspec: {ports: [{name: HTTP, port: 80}]}",
        &[(
            "spec.ports[0].name",
            &format!("Invalid value: \"HTTP\": {DNS1123_LABEL}"),
        )],
    );
    check(
        "metadata: {name: a}\nspec: {ports: [{port: 0}]}",
        &[
            (
                "spec.ports[0].port",
                "Invalid value: 0: must be between 1 and 65535, inclusive",
            ),
            (
                "spec.ports[0].targetPort",
                "Invalid value: 0: must be between 1 and 65535, inclusive",
            ),
        ],
    );
    check(
        "metadata: {name: a}\nspec: {ports: [{port: 65536, targetPort: 80}]}",
        &[(
            "spec.ports[0].port",
            "Invalid value: 65536: must be between 1 and 65535, inclusive",
        )],
    );
    check(
        "metadata: {name: a}\nspec: {ports: [{port: 80, protocol: HTTP}]}",
        &[(
            "spec.ports[0].protocol",
            "Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
        )],
    );
    check(
        "metadata: {name: a}\nspec: {ports: [{port: 80, targetPort: 70000}]}",
        &[(
            "spec.ports[0].targetPort",
            "Invalid value: 70000: must be between 1 and 65535, inclusive",
        )],
    );
    check(
        "metadata: {name: a}\nspec: {ports: [{port: 80, targetPort: '8080'}]}",
        &[(
            "spec.ports[0].targetPort",
            "Invalid value: \"8080\": must contain at least one letter (a-z)",
        )],
    );
    check(
        "metadata: {name: a}\nspec: {ports: [{port: 80, targetPort: -Web--x}]}",
        &[
            (
                "spec.ports[0].targetPort",
                "Invalid value: \"-Web--x\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
            ),
            (
                "spec.ports[0].targetPort",
                "Invalid value: \"-Web--x\": must not contain consecutive hyphens",
            ),
            (
                "spec.ports[0].targetPort",
                "Invalid value: \"-Web--x\": must not begin or end with a hyphen",
            ),
        ],
    );
    check(
        "metadata: {name: a}\nspec: {ports: [{port: 80, targetPort: averyveryverylongname}]}",
        &[(
            "spec.ports[0].targetPort",
            "Invalid value: \"averyveryverylongname\": must be no more than 15 characters",
        )],
    );
    check(
        "metadata: {name: a}\nspec: {ports: [{port: 80, appProtocol: 'bad proto'}]}",
        &[(
            "spec.ports[0].appProtocol",
            "Invalid value: \"bad proto\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
        )],
    );
    check(
        "metadata: {name: a}\nspec: {ports: [{name: a, port: 80}, {name: b, port: 80}]}",
        &[(
            "spec.ports[1]",
            "Duplicate value: {\"Name\":\"\",\"Protocol\":\"TCP\",\"AppProtocol\":null,\"Port\":80,\"TargetPort\":0,\"NodePort\":0}",
        )],
    );
}

#[test]
fn selector_rules() {
    check(
        "metadata: {name: a}\nspec: {ports: [{port: 80}], selector: {app: 'x y'}}",
        &[("spec.selector", &format!("Invalid value: \"x y\": {LABEL_VALUE}"))],
    );
    check(
        "metadata: {name: a}\nspec: {ports: [{port: 80}], selector: {'/app': x}}",
        &[(
            "spec.selector",
            "Invalid value: \"/app\": prefix part must be non-empty",
        )],
    );
}

#[test]
fn session_affinity_rules() {
    check(
        "metadata: {name: a}\nspec: {ports: [{port: 80}], sessionAffinity: Sticky}",
        &[(
            "spec.sessionAffinity",
            "Unsupported value: \"Sticky\": supported values: \"ClientIP\", \"None\"",
        )],
    );
    for t in [0, -1, 86401] {
        check(
            &format!(
                "metadata: {{name: a}}\nspec: {{ports: [{{port: 80}}], sessionAffinity: ClientIP, sessionAffinityConfig: {{clientIP: {{timeoutSeconds: {t}}}}}}}"
            ),
            &[(
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                &format!("Invalid value: {t}: must be greater than 0 and less than 86400"),
            )],
        );
    }
    // Defaulting fills or clears the config before validation, so clients never see these.
    check_validation_only(
        "metadata: {name: a}\nspec: {type: ClusterIP, internalTrafficPolicy: Cluster, ports: [{port: 80, protocol: TCP, targetPort: 80}], sessionAffinity: None, sessionAffinityConfig: {}}",
        &[(
            "spec.sessionAffinityConfig",
            "Forbidden: must not be set when session affinity is None",
        )],
    );
    check_validation_only(
        "metadata: {name: a}\nspec: {type: ClusterIP, internalTrafficPolicy: Cluster, ports: [{port: 80, protocol: TCP, targetPort: 80}], sessionAffinity: ClientIP}",
        &[(
            "spec.sessionAffinityConfig",
            "Required value: when session affinity type is ClientIP",
        )],
    );
    check_validation_only(
        "metadata: {name: a}\nspec: {type: ClusterIP, internalTrafficPolicy: Cluster, ports: [{port: 80, protocol: TCP, targetPort: 80}], sessionAffinity: ClientIP, sessionAffinityConfig: {}}",
        &[(
            "spec.sessionAffinityConfig.clientIP",
            "Required value: when session affinity type is ClientIP",
        )],
    );
    check_validation_only(
        "metadata: {name: a}\nspec: {ports: [{port: 80, protocol: TCP, targetPort: 80}]}",
        &[
            ("spec.sessionAffinity", "Required value"),
            ("spec.type", "Required value"),
        ],
    );
}

#[test]
fn cluster_ip_rules() {
    check(
        "metadata: {name: a}\nspec: {ports: [{port: 80}], clusterIP: 10.0.0.5, clusterIPs: [10.0.0.6]}",
        &[(
            "spec.clusterIPs",
            "Invalid value: [\"10.0.0.6\"]: first value must match `clusterIP`",
        )],
    );
    check(
        "metadata: {name: a}\nspec: {ports: [{port: 80}], clusterIPs: [10.0.0.6]}",
        &[(
            "spec.clusterIPs",
            "Invalid value: [\"10.0.0.6\"]: must be empty when `clusterIP` is not specified",
        )],
    );
    check(
        "metadata: {name: a}\nspec: {ports: [{port: 80}], ipFamilies: [IPv5]}",
        &[(
            "spec.ipFamilies[0]",
            "Unsupported value: \"IPv5\": supported values: \"IPv4\", \"IPv6\"",
        )],
    );
    check(
        "metadata: {name: a}\nspec: {ports: [{port: 80}], ipFamilies: [IPv4, IPv4], ipFamilyPolicy: PreferDualStack}",
        &[("spec.ipFamilies[1]", "Duplicate value: \"IPv4\"")],
    );
    check(
        "metadata: {name: a}\nspec: {ports: [{port: 80}], ipFamilyPolicy: Bogus}",
        &[(
            "spec.ipFamilyPolicy",
            "Unsupported value: \"Bogus\": supported values: \"PreferDualStack\", \"RequireDualStack\", \"SingleStack\"",
        )],
    );
    check(
        "metadata: {name: a}\nspec: {ports: [{port: 80}], clusterIP: None, clusterIPs: [None, 10.0.0.1]}",
        &[(
            "spec.clusterIPs",
            "Invalid value: [\"None\",\"10.0.0.1\"]: 'None' must be the first and only value",
        )],
    );
    check(
        "metadata: {name: a}\nspec: {ports: [{port: 80}], clusterIP: abc}",
        &[("spec.clusterIPs[0]", &format!("Invalid value: \"abc\": {BAD_IP}"))],
    );
    check(
        "metadata: {name: a}\nspec: {ports: [{port: 80}], clusterIP: 10.0.0.1, clusterIPs: [10.0.0.1, 'fd00::1', 10.0.0.2], ipFamilyPolicy: RequireDualStack}",
        &[
            (
                "spec.clusterIPs",
                "Invalid value: [\"10.0.0.1\",\"fd00::1\",\"10.0.0.2\"]: may only hold up to 2 values",
            ),
            (
                "spec.clusterIPs",
                "Invalid value: [\"10.0.0.1\",\"fd00::1\",\"10.0.0.2\"]: may specify no more than one IP for each IP family",
            ),
        ],
    );
    check(
        "metadata: {name: a}\nspec: {ports: [{port: 80}], clusterIP: 10.0.0.1, clusterIPs: [10.0.0.1, 10.0.0.2]}",
        &[(
            "spec.clusterIPs",
            "Invalid value: [\"10.0.0.1\",\"10.0.0.2\"]: may specify no more than one IP for each IP family",
        )],
    );
    check(
        "metadata: {name: a}\nspec: {ports: [{port: 80}], clusterIP: 10.0.0.5, ipFamilies: [IPv6]}",
        &[(
            "spec.clusterIPs[0]",
            "Invalid value: \"10.0.0.5\": expected an IPv6 value as indicated by `ipFamilies[0]`",
        )],
    );
}

#[test]
fn ip_family_rules_against_the_cluster() {
    check(
        "metadata: {name: a}\nspec: {ports: [{port: 80}], ipFamilyPolicy: RequireDualStack}",
        &[(
            "spec.ipFamilyPolicy",
            "Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services",
        )],
    );
    check(
        "metadata: {name: a}\nspec: {ports: [{port: 80}], ipFamilies: [IPv6]}",
        &[(
            "spec.ipFamilies[0]",
            "Invalid value: \"IPv6\": not configured on this cluster",
        )],
    );
    check(
        "metadata: {name: a}\nspec: {ports: [{port: 80}], clusterIP: 'fd00::5'}",
        &[(
            "spec.clusterIPs[0]",
            "Invalid value: [\"fd00::5\"]: IPv6 is not configured on this cluster",
        )],
    );
    check_on(
        true,
        "metadata: {name: a}\nspec: {ports: [{port: 80}], ipFamilies: [IPv4, IPv6], ipFamilyPolicy: SingleStack}",
        &[(
            "spec.ipFamilyPolicy",
            "Invalid value: \"SingleStack\": must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified",
        )],
    );
    check_on(
        true,
        "metadata: {name: a}\nspec: {ports: [{port: 80}], clusterIP: 10.0.0.9, clusterIPs: [10.0.0.9, 'fd00::9']}",
        &[
            (
                "spec.ipFamilyPolicy",
                "Invalid value: \"SingleStack\": must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified",
            ),
            (
                "spec.ipFamilyPolicy",
                "Invalid value: \"SingleStack\": must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified",
            ),
        ],
    );
}

#[test]
fn external_ip_rules() {
    let cases = [
        ("x", format!("Invalid value: \"x\": {BAD_IP}")),
        (
            "0.0.0.0",
            "Invalid value: \"0.0.0.0\": may not be unspecified (0.0.0.0)".to_owned(),
        ),
        (
            "127.0.0.1",
            "Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)".to_owned(),
        ),
        (
            "::1",
            "Invalid value: \"::1\": may not be in the loopback range (127.0.0.0/8, ::1/128)".to_owned(),
        ),
        (
            "169.254.1.1",
            "Invalid value: \"169.254.1.1\": may not be in the link-local range (169.254.0.0/16, fe80::/10)".to_owned(),
        ),
        (
            "224.0.0.1",
            "Invalid value: \"224.0.0.1\": may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"
                .to_owned(),
        ),
    ];
    for (ip, msg) in cases {
        check(
            &format!("metadata: {{name: a}}\nspec: {{ports: [{{port: 80}}], externalIPs: ['{ip}']}}"),
            &[("spec.externalIPs[0]", &msg)],
        );
    }
}

#[test]
fn type_rules() {
    check(
        "metadata: {name: a}\nspec: {type: Foo, ports: [{port: 80}]}",
        &[(
            "spec.type",
            "Unsupported value: \"Foo\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
        )],
    );
    check(
        "metadata: {name: a}\nspec: {type: ClusterIP, ports: [{port: 80, nodePort: 30080}]}",
        &[(
            "spec.ports[0].nodePort",
            "Forbidden: may not be used when `type` is 'ClusterIP'",
        )],
    );
    check(
        "metadata: {name: a}\nspec: {type: LoadBalancer, ports: [{port: 10250}]}",
        &[(
            "spec.ports[0]",
            "Invalid value: 10250: may not expose port 10250 externally since it is used by kubelet",
        )],
    );
    check_validation_only(
        "metadata: {name: a}\nspec: {type: NodePort, sessionAffinity: None, externalTrafficPolicy: Cluster, internalTrafficPolicy: Cluster, ports: [{name: a, port: 80, protocol: TCP, targetPort: 80, nodePort: 30100}, {name: b, port: 81, protocol: TCP, targetPort: 81, nodePort: 30100}]}",
        &[("spec.ports[1].nodePort", "Duplicate value: 30100")],
    );
}

#[test]
fn load_balancer_only_fields() {
    check(
        "metadata: {name: a}\nspec: {ports: [{port: 80}], loadBalancerSourceRanges: [10.0.0.0/8]}",
        &[(
            "spec.LoadBalancerSourceRanges",
            "Forbidden: may only be used when `type` is 'LoadBalancer'",
        )],
    );
    check(
        "metadata: {name: a}\nspec: {type: LoadBalancer, ports: [{port: 80}], loadBalancerSourceRanges: [10.0.0.0/33]}",
        &[(
            "spec.LoadBalancerSourceRanges[0]",
            "Invalid value: \"10.0.0.0/33\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
        )],
    );
    check(
        "metadata: {name: a}\nspec: {type: NodePort, ports: [{port: 80}], allocateLoadBalancerNodePorts: true}",
        &[(
            "spec.allocateLoadBalancerNodePorts",
            "Forbidden: may only be used when `type` is 'LoadBalancer'",
        )],
    );
    check(
        "metadata: {name: a}\nspec: {ports: [{port: 80}], loadBalancerClass: x/y}",
        &[(
            "spec.loadBalancerClass",
            "Forbidden: may only be used when `type` is 'LoadBalancer'",
        )],
    );
}

#[test]
fn traffic_policy_rules() {
    check(
        "metadata: {name: a}\nspec: {ports: [{port: 80}], externalTrafficPolicy: Local}",
        &[(
            "spec.externalTrafficPolicy",
            "Invalid value: \"Local\": may only be set for externally-accessible services",
        )],
    );
    check(
        "metadata: {name: a}\nspec: {type: NodePort, ports: [{port: 80}], externalTrafficPolicy: Bogus}",
        &[(
            "spec.externalTrafficPolicy",
            "Unsupported value: \"Bogus\": supported values: \"Cluster\", \"Local\"",
        )],
    );
    check(
        "metadata: {name: a}\nspec: {type: NodePort, ports: [{port: 80}], healthCheckNodePort: 30500}",
        &[(
            "spec.healthCheckNodePort",
            "Invalid value: 30500: may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
        )],
    );
    check(
        "metadata: {name: a}\nspec: {ports: [{port: 80}], internalTrafficPolicy: Bogus}",
        &[(
            "spec.internalTrafficPolicy",
            "Unsupported value: \"Bogus\": supported values: \"Cluster\", \"Local\"",
        )],
    );
    check(
        "metadata: {name: a}\nspec: {ports: [{port: 80}], trafficDistribution: Nearby}",
        &[(
            "spec.trafficDistribution",
            "Unsupported value: \"Nearby\": supported values: \"PreferClose\", \"PreferSameZone\", \"PreferSameNode\"",
        )],
    );
    // the topology annotation and its deprecated name must agree (1.27+, kept through 1.37)
    check(
        "metadata: {name: a, annotations: {service.kubernetes.io/topology-mode: Auto, service.kubernetes.io/topology-aware-hints: Disabled}}\nspec: {ports: [{port: 80}]}",
        &[(
            "metadata.annotations[service.kubernetes.io/topology-mode]",
            "Invalid value: \"Auto\": must match annotations[service.kubernetes.io/topology-aware-hints] when both are specified",
        )],
    );
}

#[test]
fn newer_traffic_distributions_and_agreeing_topology_annotations_are_accepted() {
    let mut cluster = Cluster::new(v4_cluster());
    for (name, extra) in [
        ("same-zone", "trafficDistribution: PreferSameZone"),
        (
            "same-node",
            "trafficDistribution: PreferSameNode, internalTrafficPolicy: Local",
        ),
        ("close", "trafficDistribution: PreferClose"),
    ] {
        let yaml = format!("metadata: {{name: {name}}}\nspec: {{ports: [{{port: 80}}], {extra}}}");
        cluster
            .create(&yaml)
            .unwrap_or_else(|e| panic!("{name}: {}", e.message));
    }
    cluster
        .create("metadata: {name: both, annotations: {service.kubernetes.io/topology-mode: Auto, service.kubernetes.io/topology-aware-hints: Auto}}\nspec: {ports: [{port: 80}]}")
        .unwrap_or_else(|e| panic!("{}", e.message));
}

#[test]
fn several_errors_aggregate_into_one_message() {
    let mut cluster = Cluster::new(v4_cluster());
    let status = cluster
        .create("metadata: {name: multi}\nspec: {ports: [{port: 80, protocol: HTTP}], sessionAffinity: Sticky}")
        .unwrap_err();
    assert_eq!(
        status.message,
        "Service \"multi\" is invalid: [spec.ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\", spec.sessionAffinity: Unsupported value: \"Sticky\": supported values: \"ClientIP\", \"None\"]"
    );
    assert_eq!(status.reason, "Invalid");
    let details = status.details.as_ref().unwrap();
    assert_eq!((details.kind.as_str(), details.name.as_str()), ("Service", "multi"));
    assert_eq!(
        details.causes.iter().map(|c| c.reason.as_str()).collect::<Vec<_>>(),
        ["FieldValueNotSupported", "FieldValueNotSupported"]
    );
}

#[test]
fn invalid_service_leaves_allocations_untouched() {
    let mut cluster = Cluster::new(v4_cluster());
    let before = cluster.alloc.clone();
    // allocation succeeds (IP and node port), validation then fails: nothing may stay taken
    cluster
        .create("metadata: {name: a}\nspec: {type: NodePort, ports: [{port: 80, protocol: HTTP}]}")
        .unwrap_err();
    assert_eq!(cluster.alloc, before);
}

/// Upstream 1.33+ parses new values of the legacy address fields strictly; a value the stored
/// object already had stays accepted on update, and a proxy still reads old objects.
#[test]
fn legacy_address_fields_are_strict_for_new_values_only() {
    check(
        "metadata: {name: a}\nspec: {ports: [{port: 80}], externalIPs: [192.168.099.1]}",
        &[(
            "spec.externalIPs[0]",
            "Invalid value: \"192.168.099.1\": must not have leading 0s",
        )],
    );
    check(
        "metadata: {name: a}\nspec: {ports: [{port: 80}], externalIPs: ['::ffff:192.168.99.1']}",
        &[(
            "spec.externalIPs[0]",
            "Invalid value: \"::ffff:192.168.99.1\": must not be an IPv4-mapped IPv6 address",
        )],
    );
    check(
        "metadata: {name: a}\nspec: {type: LoadBalancer, ports: [{port: 80}], loadBalancerSourceRanges: [10.1.2.3/16]}",
        &[(
            "spec.LoadBalancerSourceRanges[0]",
            "Invalid value: \"10.1.2.3/16\": must not have bits set beyond the prefix length",
        )],
    );
    check(
        "metadata: {name: a}\nspec: {type: LoadBalancer, ports: [{port: 80}], loadBalancerSourceRanges: [010.1.0.0/16]}",
        &[(
            "spec.LoadBalancerSourceRanges[0]",
            "Invalid value: \"010.1.0.0/16\": must not have leading 0s in IP or prefix length",
        )],
    );
    check(
        "metadata: {name: a}\nspec: {ports: [{port: 80}], clusterIP: 10.0.0.010}",
        &[(
            "spec.clusterIPs[0]",
            "Invalid value: \"10.0.0.010\": must not have leading 0s",
        )],
    );

    // stored before 1.33 with a legacy form: an update keeping it passes, one adding another fails
    let mut old = svc(
        "metadata: {name: legacy, resourceVersion: '1'}\nspec: {type: ClusterIP, clusterIP: 10.0.0.9, clusterIPs: [10.0.0.9], ipFamilies: [IPv4], ipFamilyPolicy: SingleStack, sessionAffinity: None, internalTrafficPolicy: Cluster, externalTrafficPolicy: Cluster, ports: [{port: 80, protocol: TCP, targetPort: 80}], externalIPs: [192.168.099.1]}",
    );
    old.metadata.uid = Some("u".into());
    let mut same = old.clone();
    same.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].port = 81;
    let errs = svcnet_core::service::validate::validate_service_update(&same, &old);
    assert!(errs.is_empty(), "{errs:?}");
    let mut added = old.clone();
    added.spec.as_mut().unwrap().external_ips = Some(vec!["192.168.099.1".into(), "192.168.099.2".into()]);
    let errs = svcnet_core::service::validate::validate_service_update(&added, &old);
    let got: Vec<String> = errs.iter().map(|e| format!("{}: {}", e.path, e.body())).collect();
    assert_eq!(
        got,
        ["spec.externalIPs[1]: Invalid value: \"192.168.099.2\": must not have leading 0s"]
    );
    // a proxy reads the old object as it is
    let model = svcnet_core::service::model::ServiceModel::from_service(&old).expect("a model of the old object");
    assert_eq!(
        model.external_ips,
        vec!["192.168.99.1".parse::<std::net::IpAddr>().unwrap()]
    );
}

#[test]
fn proxies_serve_vip_ingress_addresses_but_not_proxy_mode_ones() {
    let lb = svc(
        "metadata: {name: lb}\nspec: {type: LoadBalancer, clusterIP: 10.0.0.9, clusterIPs: [10.0.0.9], sessionAffinity: None, allocateLoadBalancerNodePorts: true, externalTrafficPolicy: Cluster, internalTrafficPolicy: Cluster, ports: [{port: 80, protocol: TCP, targetPort: 80, nodePort: 30080}]}\nstatus: {loadBalancer: {ingress: [{ip: 192.0.2.1, ipMode: VIP}, {ip: 192.0.2.2, ipMode: Proxy}, {ip: 192.0.2.3}]}}",
    );
    let model = svcnet_core::service::model::ServiceModel::from_service(&lb).expect("a model");
    let want: Vec<std::net::IpAddr> = vec!["192.0.2.1".parse().unwrap(), "192.0.2.3".parse().unwrap()];
    assert_eq!(model.load_balancer_ips, want);
}
