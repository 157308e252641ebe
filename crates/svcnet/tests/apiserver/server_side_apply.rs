//! Server-side apply with real kubectl: `apply --server-side` creates and updates, owners are
//! recorded, a field another manager set conflicts until forced, fields an applier stops
//! naming go, and two appliers share a keyed list.

use super::{Server, kubectl, kubectl_until};

fn deployment(replicas: u32, labels: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels: {{{labels}}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers: [{{name: c, image: nginx}}]\n"
    )
}

fn get(server: &Server, what: &str, jsonpath: &str) -> String {
    let (ok, text) = kubectl(
        server,
        &[
            "get",
            what,
            "--show-managed-fields",
            "-o",
            &format!("jsonpath={jsonpath}"),
        ],
    );
    assert!(ok, "{text}");
    text
}

#[test]
fn kubectl_apply_server_side_tracks_owners_and_refuses_conflicts_until_forced() {
    let server = Server::start();
    let manifest = server.dir.path().join("web.yaml");
    let path = manifest.to_str().unwrap();
    std::fs::write(&manifest, deployment(2, "tier: front, team: a")).unwrap();
    let (ok, text) = kubectl(&server, &["apply", "--server-side", "-f", path]);
    assert!(ok && text.contains("deployment.apps/web serverside-applied"), "{text}");
    assert_eq!(
        get(
            &server,
            "deploy/web",
            "{.metadata.managedFields[0].manager} {.metadata.managedFields[0].operation}"
        ),
        "kubectl Apply"
    );
    // another writer changes a field the applier owns; re-applying the old value conflicts
    let (ok, text) = kubectl(&server, &["scale", "deploy/web", "--replicas=5"]);
    assert!(ok, "{text}");
    let (ok, text) = kubectl(&server, &["apply", "--server-side", "-f", path]);
    assert!(
        !ok && text.contains(
            "Apply failed with 1 conflict: conflict with \"kubectl\" with subresource \"scale\" using apps/v1"
        ) && text.contains(".spec.replicas"),
        "{text}"
    );
    assert_eq!(
        get(&server, "deploy/web", "{.spec.replicas}"),
        "5",
        "a refused apply changed nothing"
    );
    // a server dry run of the forced apply changes nothing either
    let (ok, text) = kubectl(
        &server,
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--dry-run=server",
            "-f",
            path,
        ],
    );
    assert!(ok, "{text}");
    assert_eq!(get(&server, "deploy/web", "{.spec.replicas}"), "5");
    let (ok, text) = kubectl(&server, &["apply", "--server-side", "--force-conflicts", "-f", path]);
    assert!(ok, "{text}");
    assert_eq!(get(&server, "deploy/web", "{.spec.replicas}"), "2");
    assert!(
        !get(&server, "deploy/web", "{.metadata.managedFields[*].subresource}").contains("scale"),
        "the scaler lost the only field it owned"
    );
    // a label the applier stops naming is removed; one another manager set stays
    let (ok, text) = kubectl(&server, &["label", "deploy/web", "owner=ops"]);
    assert!(ok, "{text}");
    std::fs::write(&manifest, deployment(2, "tier: front")).unwrap();
    let (ok, text) = kubectl(&server, &["apply", "--server-side", "-f", path]);
    assert!(ok, "{text}");
    assert_eq!(
        get(&server, "deploy/web", "{.metadata.labels}"),
        r#"{"owner":"ops","tier":"front"}"#
    );
    // without a manager an apply is refused in upstream's words
    let (ok, text) = kubectl(&server, &["apply", "--server-side", "--field-manager=", "-f", path]);
    assert!(
        !ok && text.contains("fieldManager: Required value: is required for apply patch"),
        "{text}"
    );
}

#[test]
fn two_appliers_share_a_service_s_ports_each_owning_its_own() {
    let server = Server::start();
    let manifest = server.dir.path().join("svc.yaml");
    let path = manifest.to_str().unwrap();
    let service = |port: u16| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector: {{app: web}}\n  ports: [{{name: p{port}, port: {port}}}]\n"
        )
    };
    let apply = |port: u16, manager: &str| {
        std::fs::write(&manifest, service(port)).unwrap();
        let (ok, text) = kubectl(
            &server,
            &[
                "apply",
                "--server-side",
                &format!("--field-manager={manager}"),
                "-f",
                path,
            ],
        );
        assert!(ok, "{text}");
    };
    apply(80, "team-a");
    apply(443, "team-b");
    assert_eq!(get(&server, "svc/web", "{.spec.ports[*].port}"), "80 443");
    // team-a applies an empty port list: port 80, which only it owned, goes
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector: {app: web}\n",
    )
    .unwrap();
    let (ok, text) = kubectl(
        &server,
        &["apply", "--server-side", "--field-manager=team-a", "-f", path],
    );
    assert!(ok, "{text}");
    assert_eq!(get(&server, "svc/web", "{.spec.ports[*].port}"), "443");
    assert!(
        !get(&server, "svc/web", "{.spec.clusterIP}").is_empty(),
        "the apply-created service was allocated"
    );
}

/// An object written by more than ten managers keeps ten update entries, the oldest merged
/// into `ancient-changes` with the fields they owned (kubectl label, with a manager each).
#[test]
fn more_than_ten_updaters_leave_ten_entries_the_oldest_merged() {
    let server = Server::start();
    let (ok, text) = kubectl(&server, &["create", "configmap", "many"]);
    assert!(ok, "{text}");
    for i in 1..=12 {
        let (ok, text) = kubectl(
            &server,
            &[
                "label",
                "configmap",
                "many",
                &format!("l{i:02}=x"),
                &format!("--field-manager=m{i:02}"),
            ],
        );
        assert!(ok, "{text}");
    }
    let managers = get(
        &server,
        "configmap/many",
        "{range .metadata.managedFields[*]}{.manager}:{.operation} {end}",
    );
    let names: Vec<&str> = managers.split_whitespace().collect();
    assert_eq!(names.len(), 10, "{managers}");
    assert!(names.contains(&"ancient-changes:Update"), "{managers}");
    assert!(
        names.contains(&"m12:Update") && !names.contains(&"m01:Update"),
        "{managers}"
    );
    let ancient = get(
        &server,
        "configmap/many",
        "{.metadata.managedFields[?(@.manager==\"ancient-changes\")].fieldsV1}",
    );
    // kubectl-create made the object; it and the oldest labels are owned by the bucket now
    assert!(ancient.contains("f:l01") && ancient.contains("f:l02"), "{ancient}");
}

/// Moving from client-side to server-side apply, as kubectl's docs describe it: `apply
/// --server-side` takes over what `apply` last applied without a conflict, even where it
/// changes a value, and rewrites the annotation; a value someone else changed since still
/// conflicts.
#[test]
fn kubectl_apply_server_side_takes_over_from_client_side_apply() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("web.yaml");
    let write = |replicas: u32, labels: &str| std::fs::write(&manifest, deployment(replicas, labels)).unwrap();
    let file = manifest.to_str().unwrap();
    write(2, "app: web");
    let (ok, text) = kubectl(&server, &["apply", "-f", file]);
    assert!(ok, "{text}");
    // a changed value in a field client-side apply set: taken over, no --force-conflicts
    write(3, "app: web");
    let (ok, text) = kubectl(&server, &["apply", "--server-side", "-f", file]);
    assert!(ok, "{text}");
    let replicas = get(&server, "deployment/web", "{.spec.replicas}");
    assert_eq!(replicas.trim(), "3");
    let annotation = get(
        &server,
        "deployment/web",
        "{.metadata.annotations.kubectl\\.kubernetes\\.io/last-applied-configuration}",
    );
    assert!(
        annotation.contains("\"replicas\":3"),
        "the annotation follows the apply: {annotation}"
    );
    // client-side apply still works from the rewritten annotation
    write(4, "app: web");
    let (ok, text) = kubectl(&server, &["apply", "-f", file]);
    assert!(ok, "{text}");
    assert_eq!(get(&server, "deployment/web", "{.spec.replicas}").trim(), "4");
    // a field changed by another manager since is not handed over
    let (ok, text) = kubectl(&server, &["scale", "deployment/web", "--replicas=6"]);
    assert!(ok, "{text}");
    write(5, "app: web");
    let (ok, text) = kubectl(&server, &["apply", "--server-side", "-f", file]);
    assert!(!ok && text.contains("conflict"), "{text}");
}

/// What the API server's controllers write is theirs in managedFields, under upstream's
/// name for them (GitOps tools ignore kube-controller-manager's fields by that name): the
/// ReplicaSet and Pods a Deployment makes, the Deployment's status, a Service's
/// EndpointSlice; the system namespaces are kube-apiserver's.
#[test]
fn the_controllers_writes_are_recorded_as_kube_controller_manager() {
    let server = Server::start();
    let (ok, text) = kubectl(
        &server,
        &["create", "deployment", "web", "--image=nginx", "--replicas=2"],
    );
    assert!(ok, "{text}");
    let (ok, text) = kubectl(&server, &["expose", "deployment", "web", "--port=80"]);
    assert!(ok, "{text}");
    let managers = "{range .items[*].metadata.managedFields[*]}{.manager}/{.operation}/{.subresource};{end}";
    let sets = kubectl_until(
        &server,
        &["get", "replicasets", "-o", &format!("jsonpath={managers}")],
        |t| t.contains("kube-controller-manager/Update/;"),
    );
    assert!(sets.contains("kube-controller-manager/Update/status;"), "{sets}");
    let pods = kubectl_until(&server, &["get", "pods", "-o", &format!("jsonpath={managers}")], |t| {
        t.matches("kube-controller-manager/Update/;").count() == 2
    });
    assert!(!pods.contains("kubectl"), "{pods}");
    let deployment = kubectl_until(
        &server,
        &[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={range .metadata.managedFields[*]}{.manager}/{.operation}/{.subresource};{end}",
        ],
        |t| t.contains("kube-controller-manager/Update/status;"),
    );
    assert!(deployment.contains("kubectl-create/Update/;"), "{deployment}");
    kubectl_until(
        &server,
        &["get", "endpointslices", "-o", &format!("jsonpath={managers}")],
        |t| t.contains("kube-controller-manager/Update/;"),
    );
    let namespaces = get(&server, "namespace/kube-system", "{.metadata.managedFields[*].manager}");
    assert_eq!(namespaces.trim(), "kube-apiserver");
}
