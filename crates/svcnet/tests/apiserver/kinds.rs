//! The kinds real manifests reach for first: ConfigMaps, Secrets, ServiceAccounts (a `default`
//! one in every namespace), RBAC objects, DaemonSets, StatefulSets and Jobs are stored and
//! validated; `kubectl auth can-i` and `auth whoami` are answered. The agent's own DaemonSet
//! manifest applies whole.

use serde_json::Value;

use crate::api::ApiServer as Server;
use crate::{kubectl, kubectl_until};

fn run(server: &Server, args: &[&str]) -> String {
    let (ok, text) = kubectl(server, args);
    assert!(ok, "kubectl {args:?} failed:\n{text}");
    text
}

#[test]
fn configmaps_secrets_and_service_accounts() {
    let server = Server::start();
    // kubectl's generators send protobuf
    run(
        &server,
        &[
            "create",
            "configmap",
            "settings",
            "--from-literal=mode=fast",
            "--from-literal=size=3",
        ],
    );
    run(
        &server,
        &["create", "secret", "generic", "creds", "--from-literal=user=admin"],
    );
    let listed = run(&server, &["get", "configmaps,secrets"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("configmap/settings") && l.split_whitespace().nth(1) == Some("2")),
        "{listed}"
    );
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("secret/creds") && l.contains("Opaque")),
        "{listed}"
    );
    let user = run(&server, &["get", "secret", "creds", "-o", "jsonpath={.data.user}"]);
    assert_eq!(user, "YWRtaW4=");
    // stringData is folded into data and never stored
    let manifest = server.dir.path().join("secret.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: plain}\nstringData: {token: abc}\n",
    )
    .unwrap();
    run(&server, &["apply", "-f", manifest.to_str().unwrap()]);
    let (_, body) = server.curl(&[&format!("{}/api/v1/namespaces/default/secrets/plain", server.url)]);
    let secret: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(secret["data"]["token"], "YWJj", "{body}");
    assert!(secret.get("stringData").is_none(), "{body}");
    // data that is not base64 is refused
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: bad}\ndata: {k: 'not base64!'}\n",
    )
    .unwrap();
    let (ok, text) = kubectl(&server, &["apply", "-f", manifest.to_str().unwrap()]);
    assert!(!ok, "{text}");
    // every namespace gets its default ServiceAccount
    run(&server, &["create", "namespace", "team"]);
    kubectl_until(
        &server,
        &["get", "serviceaccount", "default", "-n", "team", "-o", "name"],
        |t| t.trim() == "serviceaccount/default",
    );
    kubectl_until(&server, &["get", "sa", "-n", "default", "-o", "name"], |t| {
        t.contains("serviceaccount/default")
    });
    // and the cluster's CA in `kube-root-ca.crt`, as kube-controller-manager publishes it,
    // put back when deleted
    let ca = std::fs::read_to_string(server.dir.path().join("ca.crt")).unwrap();
    let published = |ns: &str| {
        kubectl_until(
            &server,
            &[
                "get",
                "configmap",
                "kube-root-ca.crt",
                "-n",
                ns,
                "-o",
                "jsonpath={.data.ca\\.crt}",
            ],
            |t| t.contains("BEGIN CERTIFICATE"),
        )
    };
    assert_eq!(published("team").trim(), ca.trim());
    run(&server, &["delete", "configmap", "kube-root-ca.crt", "-n", "team"]);
    assert_eq!(published("team").trim(), ca.trim());
}

#[test]
fn auth_can_i_and_whoami_answer_for_the_admin() {
    let server = Server::start();
    assert_eq!(run(&server, &["auth", "can-i", "create", "pods"]).trim(), "yes");
    assert_eq!(
        run(&server, &["auth", "can-i", "delete", "nodes", "--all-namespaces"]).trim(),
        "yes"
    );
    let whoami = run(&server, &["auth", "whoami"]);
    assert!(
        whoami.contains("svcnet:admin") && whoami.contains("system:masters"),
        "{whoami}"
    );
    // reviews are answered, never stored or listed
    let (code, _) = server.curl(&[&format!(
        "{}/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        server.url
    )]);
    assert_eq!(code, 405);
}

#[test]
fn the_agents_daemonset_manifest_applies_whole() {
    let server = Server::start();
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/svcnet-proxy.yaml");
    let applied = run(&server, &["apply", "-f", manifest]);
    for created in [
        "serviceaccount/",
        "clusterrole.rbac.authorization.k8s.io/",
        "clusterrolebinding.rbac.authorization.k8s.io/",
        "daemonset.apps/",
    ] {
        assert!(applied.contains(created), "{created} missing from:\n{applied}");
    }
    let binding = run(&server, &["get", "clusterrolebindings"]);
    assert!(binding.contains("ClusterRole/"), "{binding}");
    // applying again changes nothing
    let again = run(&server, &["apply", "-f", manifest]);
    assert!(again.lines().all(|l| l.ends_with("unchanged")), "{again}");
    // a binding to a Role from a ClusterRoleBinding is refused with upstream's message
    let bad = server.dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: bad}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: x}\nsubjects: []\n",
    )
    .unwrap();
    let (ok, text) = kubectl(&server, &["apply", "-f", bad.to_str().unwrap()]);
    assert!(
        !ok && text.contains("roleRef.kind: Unsupported value: \"Role\""),
        "{text}"
    );
    // StatefulSets and Jobs are stored too
    let workloads = server.dir.path().join("workloads.yaml");
    std::fs::write(
        &workloads,
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec:\n  serviceName: db\n  selector: {matchLabels: {app: db}}\n  template:\n    metadata: {labels: {app: db}}\n    spec: {containers: [{name: c, image: agnhost}]}\n---\napiVersion: batch/v1\nkind: Job\nmetadata: {name: once}\nspec:\n  template:\n    spec: {restartPolicy: Never, containers: [{name: c, image: agnhost}]}\n",
    )
    .unwrap();
    run(&server, &["apply", "-f", workloads.to_str().unwrap()]);
    let listed = run(&server, &["get", "statefulsets,jobs", "-o", "name"]);
    assert!(
        listed.contains("statefulset.apps/db") && listed.contains("job.batch/once"),
        "{listed}"
    );
}
