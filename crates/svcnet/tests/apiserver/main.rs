//! The API server against real clients: the official Kubernetes Python client and kubectl
//! (installed into `.venv` by `cargo xtask prereqs`) and raw HTTP for malformed and oversized
//! bodies.

#[path = "../common/api.rs"]
mod api;
mod bad_bodies;
mod delete_options;
mod dry_run;
mod fidelity;
mod kinds;
mod openapi_v2;
mod protocol;
mod raw;
mod rollout;
mod safety;
mod server_side_apply;
mod service_cidrs;

use std::path::PathBuf;
use std::process::Command;

use api::ApiServer as Server;

fn venv_python() -> PathBuf {
    let python = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv/bin/python"));
    assert!(
        python.exists(),
        "{} is missing: `cargo xtask prereqs` installs the Python client",
        python.display()
    );
    python
}

#[test]
fn official_python_client() {
    let server = Server::start();
    let out = Command::new(venv_python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/apiserver/python_client.py"))
        .arg(&server.kubeconfig)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python client failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("all checks passed"));
}

fn kubectl(server: &Server, args: &[&str]) -> (bool, String) {
    let binary = venv_python().with_file_name("kubectl");
    let out = Command::new(&binary)
        .env("KUBECONFIG", &server.kubeconfig)
        .env("KUBECACHEDIR", server.dir.path().join("kubectl-cache"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (`cargo xtask prereqs` installs kubectl)", binary.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn kubectl_gets_labels_annotates_and_deletes() {
    let server = Server::start();
    let run = |args: &[&str]| {
        let (ok, text) = kubectl(&server, args);
        assert!(ok, "kubectl {args:?} failed:\n{text}");
        text
    };
    let listed = run(&["get", "services"]);
    let header: Vec<&str> = listed.lines().next().unwrap_or("").split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"],
        "{listed}"
    );
    let row: Vec<&str> = listed.lines().nth(1).unwrap_or("").split_whitespace().collect();
    assert_eq!(
        row[..5],
        ["kubernetes", "ClusterIP", "10.96.0.1", "<none>", "443/TCP"],
        "{listed}"
    );
    assert!(run(&["get", "service", "kubernetes", "-o", "wide"]).contains("SELECTOR"));
    let namespaces = run(&["get", "namespaces", "-o", "name"]);
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(namespaces.contains(&format!("namespace/{ns}\n")), "{namespaces}");
    }
    assert!(run(&["label", "service", "kubernetes", "tier=control"]).contains("labeled"));
    assert!(run(&["annotate", "service", "kubernetes", "owner=svcnet"]).contains("annotated"));
    let meta = run(&[
        "get",
        "service",
        "kubernetes",
        "-o",
        "jsonpath={.metadata.labels.tier} {.metadata.annotations.owner} {.spec.clusterIP}",
    ]);
    assert_eq!(meta, "control svcnet 10.96.0.1");
    assert!(run(&["get", "services", "-l", "tier=control", "-o", "name"]).contains("service/kubernetes"));
    // label columns come from the rows' object metadata
    let labelled = run(&["get", "services", "-L", "tier"]);
    assert!(labelled.lines().next().unwrap_or("").ends_with("TIER"), "{labelled}");
    assert!(labelled.lines().nth(1).unwrap_or("").ends_with("control"), "{labelled}");
    // `get -w` prints a row per change from Table watch events; kubectl runs until killed
    let watcher = Command::new("timeout")
        .args(["4", venv_python().with_file_name("kubectl").to_str().unwrap()])
        .args(["get", "services", "-w", "--output-watch-events"])
        .env("KUBECONFIG", &server.kubeconfig)
        .env("KUBECACHEDIR", server.dir.path().join("kubectl-cache"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    run(&["label", "service", "kubernetes", "watched=yes"]);
    let out = watcher.wait_with_output().unwrap();
    let watched = String::from_utf8_lossy(&out.stdout);
    let events: Vec<Vec<&str>> = watched
        .lines()
        .map(|l| l.split_whitespace().take(4).collect())
        .collect();
    assert_eq!(
        events,
        [
            vec!["EVENT", "NAME", "TYPE", "CLUSTER-IP"],
            vec!["ADDED", "kubernetes", "ClusterIP", "10.96.0.1"],
            vec!["MODIFIED", "kubernetes", "ClusterIP", "10.96.0.1"],
        ],
        "{watched}"
    );
    let uid = run(&["get", "service", "kubernetes", "-o", "jsonpath={.metadata.uid}"]);
    assert!(run(&["delete", "service", "kubernetes"]).contains("deleted"));
    // the API server recreates its own Service, as upstream's does
    kubectl_until(
        &server,
        &["get", "service", "kubernetes", "-o", "jsonpath={.metadata.uid}"],
        |t| !t.is_empty() && t != uid,
    );
}

#[test]
fn kubectl_creates_and_applies_manifests_with_server_side_validation() {
    let server = Server::start();
    let manifest = server.dir.path().join("web.yaml");
    let write = |labels: &str, port: u16, selector_key: &str| {
        std::fs::write(
            &manifest,
            format!(
                "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  labels: {{{labels}}}\nspec:\n  {selector_key}: {{app: web}}\n  ports: [{{port: {port}, targetPort: 8080}}]\n"
            ),
        )
        .unwrap();
    };
    let path = manifest.to_str().unwrap();
    write("tier: front", 80, "selector");
    let (ok, text) = kubectl(&server, &["apply", "-f", path]);
    assert!(ok && text.contains("service/web created"), "{text}");
    // a changed manifest is applied as a three-way patch
    write("tier: back", 81, "selector");
    let (ok, text) = kubectl(&server, &["apply", "-f", path]);
    assert!(ok && text.contains("service/web configured"), "{text}");
    let (ok, text) = kubectl(
        &server,
        &[
            "get",
            "service",
            "web",
            "-o",
            "jsonpath={.metadata.labels.tier} {.spec.ports[0].port} {.spec.selector.app}",
        ],
    );
    assert!(ok && text == "back 81 web", "{text}");
    // a typo is refused by the server (kubectl leaves validation to it), on apply and create
    write("tier: back", 81, "selectr");
    let (ok, text) = kubectl(&server, &["apply", "-f", path]);
    assert!(
        !ok && text.contains(r#"strict decoding error: unknown field "spec.selectr""#),
        "{text}"
    );
    let (ok, text) = kubectl(&server, &["create", "-f", path]);
    assert!(
        !ok && text.contains(r#"strict decoding error: unknown field "spec.selectr""#),
        "{text}"
    );
    let (ok, text) = kubectl(
        &server,
        &["get", "service", "web", "-o", "jsonpath={.spec.selector.app}"],
    );
    assert!(ok && text == "web", "the refused apply changed the service: {text}");
    // a dry run shows the result and changes nothing
    write("tier: dry", 81, "selector");
    let (ok, text) = kubectl(&server, &["apply", "--dry-run=server", "-f", path]);
    assert!(ok && text.contains("(server dry run)"), "{text}");
    let (ok, text) = kubectl(
        &server,
        &["get", "service", "web", "-o", "jsonpath={.metadata.labels.tier}"],
    );
    assert!(ok && text == "back", "{text}");
}

#[test]
fn kubectl_explains_the_served_kinds_from_openapi_schemas() {
    let server = Server::start();
    let (ok, text) = kubectl(&server, &["explain", "service.spec"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("KIND:       Service") && text.contains("FIELD: spec <ServiceSpec>"),
        "{text}"
    );
    assert!(
        text.contains("clusterIP\t<string>") && text.contains("clusterIP is the IP address of the service"),
        "{text}"
    );
    let (ok, text) = kubectl(&server, &["explain", "deployment.spec.strategy.rollingUpdate.maxSurge"]);
    assert!(
        ok && text.contains("GROUP:      apps") && text.contains("<IntOrString>"),
        "{text}"
    );
    let (ok, text) = kubectl(&server, &["explain", "endpointslices.endpoints.conditions.ready"]);
    assert!(ok && text.contains("<boolean>"), "{text}");
    // a field that does not exist is named in the error
    let (ok, text) = kubectl(&server, &["explain", "service.spec.nope"]);
    assert!(!ok && text.contains("nope"), "{text}");
}

/// Runs kubectl until `done` accepts its output (the controllers act after the write).
fn kubectl_until(server: &Server, args: &[&str], done: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (ok, text) = kubectl(server, args);
        if ok && done(&text) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "kubectl {args:?} never satisfied: {text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn controllers_record_events_that_kubectl_lists_and_describes() {
    let server = Server::start();
    let (ok, text) = kubectl(
        &server,
        &["create", "deployment", "web", "--image=nginx", "--replicas=2"],
    );
    assert!(ok, "{text}");
    kubectl_until(&server, &["get", "pods", "-o", "name"], |t| t.lines().count() == 2);
    let (ok, text) = kubectl(&server, &["scale", "deployment", "web", "--replicas=1"]);
    assert!(ok, "{text}");
    let events = kubectl_until(&server, &["get", "events"], |t| t.contains("SuccessfulDelete"));
    let header = events.lines().next().unwrap_or("");
    assert!(
        header.split_whitespace().collect::<Vec<_>>() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        "{events}"
    );
    assert_eq!(events.matches("SuccessfulCreate").count(), 2, "{events}");
    assert!(
        events.contains("deployment/web") && events.contains("Scaled up replica set web-"),
        "{events}"
    );
    // describe finds a deployment's events by field selector on the involved object
    let (ok, text) = kubectl(&server, &["describe", "deployment", "web"]);
    assert!(ok, "{text}");
    let described = text.split("Events:").nth(1).unwrap_or("");
    assert!(
        described.contains("deployment-controller") && described.contains("Scaled down replica set web-"),
        "{text}"
    );
    assert!(
        !described.contains("SuccessfulCreate"),
        "another object's events: {text}"
    );
    let (ok, text) = kubectl(
        &server,
        &[
            "get",
            "events",
            "--field-selector",
            "reason=SuccessfulDelete,source=replicaset-controller",
            "-o",
            "name",
        ],
    );
    assert!(ok && text.lines().count() == 1, "{text}");
}

#[test]
fn finalizers_hold_deleted_objects_until_removed() {
    let server = Server::start();
    let manifest = server.dir.path().join("held.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1
kind: Service
metadata: {name: held, finalizers: [example.com/hold]}
spec: {clusterIP: 10.96.0.77, ports: [{port: 80}]}
---
apiVersion: v1
kind: Pod
metadata: {name: held, finalizers: [example.com/hold]}
spec: {containers: [{name: c, image: busybox}]}
",
    )
    .unwrap();
    let (ok, text) = kubectl(&server, &["apply", "-f", manifest.to_str().unwrap()]);
    assert!(ok, "{text}");
    for kind in ["service", "pod"] {
        let (ok, text) = kubectl(&server, &["delete", kind, "held", "--wait=false"]);
        assert!(ok, "{text}");
        // still there, marked
        let (ok, text) = kubectl(
            &server,
            &[
                "get",
                kind,
                "held",
                "-o",
                "jsonpath={.metadata.deletionTimestamp} {.metadata.deletionGracePeriodSeconds}",
            ],
        );
        assert!(ok && text.ends_with(" 0") && text.len() > 10, "{kind}: {text}");
        // a marked object takes no new finalizers
        let (ok, text) = kubectl(
            &server,
            &[
                "patch",
                kind,
                "held",
                "--type=merge",
                "-p",
                r#"{"metadata":{"finalizers":["example.com/hold","example.com/more"]}}"#,
            ],
        );
        assert!(
            !ok && text.contains("no new finalizers can be added if the object is being deleted"),
            "{kind}: {text}"
        );
    }
    // the status subresource cannot take finalizers away either
    for kind in ["service", "pod"] {
        let (ok, text) = kubectl(
            &server,
            &[
                "patch",
                kind,
                "held",
                "--subresource=status",
                "--type=merge",
                "-p",
                r#"{"metadata":{"finalizers":null}}"#,
            ],
        );
        assert!(ok, "{kind}: {text}");
        let (ok, text) = kubectl(&server, &["get", kind, "held", "-o", "jsonpath={.metadata.finalizers}"]);
        assert!(ok && text.contains("example.com/hold"), "{kind}: {text}");
    }
    // the marked Service keeps its address: another Service cannot take it
    let (ok, text) = kubectl(
        &server,
        &[
            "create",
            "service",
            "clusterip",
            "thief",
            "--clusterip=10.96.0.77",
            "--tcp=80",
        ],
    );
    assert!(!ok && text.contains("provided IP is already allocated"), "{text}");
    // removing the last finalizer removes the object, and frees the Service's address
    for kind in ["service", "pod"] {
        let (ok, text) = kubectl(
            &server,
            &[
                "patch",
                kind,
                "held",
                "--type=json",
                "-p",
                r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
            ],
        );
        assert!(ok, "{kind}: {text}");
        let (ok, text) = kubectl(&server, &["get", kind, "held"]);
        assert!(!ok && text.contains("NotFound"), "{kind}: {text}");
    }
    let (ok, text) = kubectl(
        &server,
        &[
            "create",
            "service",
            "clusterip",
            "thief",
            "--clusterip=10.96.0.77",
            "--tcp=80",
        ],
    );
    assert!(ok, "{text}");
}

#[test]
fn deletion_propagates_in_the_background_the_foreground_or_not_at_all() {
    let server = Server::start();
    for name in ["orphaning", "foreground", "background"] {
        let (ok, text) = kubectl(
            &server,
            &["create", "deployment", name, "--image=nginx", "--replicas=2"],
        );
        assert!(ok, "{text}");
    }
    kubectl_until(&server, &["get", "pods", "-o", "name"], |t| t.lines().count() == 6);
    let (ok, text) = kubectl(&server, &["delete", "deployment", "orphaning", "--cascade=orphan"]);
    assert!(ok, "{text}");
    // kubectl waits for the foreground deletion to finish: dependents first, then the owner
    let (ok, text) = kubectl(&server, &["delete", "deployment", "foreground", "--cascade=foreground"]);
    assert!(ok, "{text}");
    let (ok, text) = kubectl(&server, &["delete", "deployment", "background"]);
    assert!(ok, "{text}");
    let names = kubectl_until(&server, &["get", "deployments,replicasets,pods", "-o", "name"], |t| {
        t.lines().count() == 3
    });
    // only the orphaned ReplicaSet and its pods remain, no longer owned by the deployment
    assert!(names.lines().all(|l| l.contains("/orphaning-")), "{names}");
    let (ok, owners) = kubectl(
        &server,
        &[
            "get",
            "replicasets",
            "-o",
            "jsonpath={.items[*].metadata.ownerReferences}",
        ],
    );
    assert!(ok && owners.is_empty(), "{owners}");
    let (ok, text) = kubectl(
        &server,
        &[
            "get",
            "pods",
            "-o",
            "jsonpath={.items[*].metadata.ownerReferences[0].kind}",
        ],
    );
    assert!(ok && text == "ReplicaSet ReplicaSet", "{text}");
    // deleting the last ReplicaSet still collects its pods
    let (ok, rs) = kubectl(&server, &["get", "replicasets", "-o", "name"]);
    assert!(ok, "{rs}");
    let (ok, text) = kubectl(&server, &["delete", rs.trim()]);
    assert!(ok, "{text}");
    kubectl_until(&server, &["get", "pods", "-o", "name"], str::is_empty);
    // an unknown policy is refused
    let (code, body) = server.curl(&[
        "-X",
        "DELETE",
        &format!(
            "{}/apis/apps/v1/namespaces/default/replicasets/x?propagationPolicy=Sideways",
            server.url
        ),
    ]);
    assert_eq!(code, 422, "{body}");
    assert!(body.contains(r#"Unsupported value: \"Sideways\""#), "{body}");
}

#[test]
fn namespaces_admit_content_and_take_it_with_them() {
    let server = Server::start();
    let (ok, text) = kubectl(
        &server,
        &["create", "service", "clusterip", "s", "--tcp=80", "-n", "nope"],
    );
    assert!(!ok && text.contains(r#"namespaces "nope" not found"#), "{text}");
    let (ok, text) = kubectl(&server, &["create", "namespace", "team"]);
    assert!(ok, "{text}");
    let manifest = server.dir.path().join("team.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1
kind: Service
metadata: {name: web, namespace: team}
spec: {clusterIP: 10.96.0.88, ports: [{port: 80}], selector: {app: web}}
---
apiVersion: v1
kind: Service
metadata: {name: held, namespace: team, finalizers: [example.com/hold]}
spec: {ports: [{port: 80}]}
",
    )
    .unwrap();
    let (ok, text) = kubectl(&server, &["apply", "-f", manifest.to_str().unwrap()]);
    assert!(ok, "{text}");
    let (ok, text) = kubectl(&server, &["create", "deployment", "web", "--image=nginx", "-n", "team"]);
    assert!(ok, "{text}");
    kubectl_until(&server, &["get", "pods", "-n", "team", "-o", "name"], |t| {
        t.lines().count() == 1
    });
    let (ok, text) = kubectl(&server, &["delete", "namespace", "team", "--wait=false"]);
    assert!(ok, "{text}");
    // the held Service keeps the namespace Terminating; nothing new may be created in it
    kubectl_until(&server, &["get", "all", "-n", "team", "-o", "name"], |t| {
        t.trim() == "service/held"
    });
    let (ok, text) = kubectl(&server, &["get", "namespace", "team", "-o", "jsonpath={.status.phase}"]);
    assert!(ok && text == "Terminating", "{text}");
    let (ok, text) = kubectl(
        &server,
        &["create", "service", "clusterip", "late", "--tcp=80", "-n", "team"],
    );
    assert!(
        !ok && text.contains("unable to create new content in namespace team because it is being terminated"),
        "{text}"
    );
    // once the last finalizer goes, so does the namespace, and the addresses are free again
    let (ok, text) = kubectl(
        &server,
        &[
            "patch",
            "service",
            "held",
            "-n",
            "team",
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
        ],
    );
    assert!(ok, "{text}");
    kubectl_until(&server, &["get", "namespaces", "-o", "name"], |t| {
        !t.contains("namespace/team")
    });
    let (ok, text) = kubectl(
        &server,
        &[
            "create",
            "service",
            "clusterip",
            "reuse",
            "--clusterip=10.96.0.88",
            "--tcp=80",
        ],
    );
    assert!(ok, "{text}");
    // the system namespaces stay, and default/kubernetes comes back when deleted
    let (ok, text) = kubectl(&server, &["delete", "namespace", "default"]);
    assert!(
        !ok && text.contains(r#"namespaces "default" is forbidden: this namespace may not be deleted"#),
        "{text}"
    );
    let (ok, text) = kubectl(&server, &["delete", "service", "kubernetes"]);
    assert!(ok, "{text}");
    kubectl_until(
        &server,
        &["get", "service", "kubernetes", "-o", "jsonpath={.spec.ports[0].port}"],
        |t| t == "443",
    );
}

/// `namespaces/NAME/finalize`, the one path that changes `spec.finalizers`: a finalizer of
/// one's own holds a deleted namespace `Terminating` after its content is gone (the
/// controller takes out `kubernetes` only), and finalizing it away removes the namespace;
/// names are checked as upstream checks them, and an ordinary update leaves them alone.
#[test]
fn a_namespace_s_finalizers_change_through_finalize_only() {
    let server = Server::start();
    let manifest = server.dir.path().join("ns.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: held}\nspec: {finalizers: [example.com/hold]}\n",
    )
    .unwrap();
    let (ok, text) = kubectl(&server, &["apply", "-f", manifest.to_str().unwrap()]);
    assert!(ok, "{text}");
    let finalizers = |server: &Server| {
        let (ok, text) = kubectl(
            server,
            &["get", "namespace", "held", "-o", "jsonpath={.spec.finalizers}"],
        );
        assert!(ok, "{text}");
        text
    };
    assert_eq!(finalizers(&server), r#"["example.com/hold","kubernetes"]"#);

    // an ordinary update cannot drop them
    let (ok, text) = kubectl(
        &server,
        &[
            "patch",
            "namespace",
            "held",
            "--type=merge",
            "-p",
            r#"{"spec":{"finalizers":[]},"metadata":{"labels":{"x":"y"}}}"#,
        ],
    );
    assert!(ok, "{text}");
    assert_eq!(finalizers(&server), r#"["example.com/hold","kubernetes"]"#);

    // /finalize checks the names as upstream does
    let bad = server.dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"held"},"spec":{"finalizers":["hold"]}}"#,
    )
    .unwrap();
    let (ok, text) = kubectl(
        &server,
        &[
            "replace",
            "--raw",
            "/api/v1/namespaces/held/finalize",
            "-f",
            bad.to_str().unwrap(),
        ],
    );
    assert!(
        !ok && text.contains("name is neither a standard finalizer name nor is it fully qualified"),
        "{text}"
    );

    // deleted, it empties and loses `kubernetes`, but our finalizer holds it
    let (ok, text) = kubectl(&server, &["delete", "namespace", "held", "--wait=false"]);
    assert!(ok, "{text}");
    kubectl_until(
        &server,
        &[
            "get",
            "namespace",
            "held",
            "-o",
            "jsonpath={.status.phase} {.spec.finalizers}",
        ],
        |t| t == r#"Terminating ["example.com/hold"]"#,
    );
    std::thread::sleep(std::time::Duration::from_secs(2));
    let (ok, text) = kubectl(&server, &["get", "namespace", "held", "-o", "name"]);
    assert!(ok && text.trim() == "namespace/held", "{text}");

    // finalizing it away removes it, and the answer is the namespace as it was finalized
    let empty = server.dir.path().join("empty.json");
    std::fs::write(
        &empty,
        r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"held"},"spec":{"finalizers":[]}}"#,
    )
    .unwrap();
    let (ok, text) = kubectl(
        &server,
        &[
            "replace",
            "--raw",
            "/api/v1/namespaces/held/finalize",
            "-f",
            empty.to_str().unwrap(),
        ],
    );
    assert!(ok && text.contains(r#""finalizers":[]"#), "{text}");
    kubectl_until(&server, &["get", "namespaces", "-o", "name"], |t| {
        !t.contains("namespace/held")
    });
}

/// ServiceAccount admission: a new Pod mounts its account's token volume, a Pod naming an
/// account that does not exist is forbidden in upstream's words, and a namespace created a
/// moment ago already admits pods (its `default` account is made at the first need).
#[test]
fn pods_are_admitted_with_their_service_account() {
    let server = Server::start();
    let (ok, text) = kubectl(
        &server,
        &[
            "run",
            "p",
            "--image=nginx",
            r#"--overrides={"spec":{"serviceAccountName":"nobody"}}"#,
        ],
    );
    assert!(
        !ok && text.contains(
            r#"pods "p" is forbidden: error looking up service account default/nobody: serviceaccount "nobody" not found"#
        ),
        "{text}"
    );
    let (ok, text) = kubectl(&server, &["create", "namespace", "fresh"]);
    assert!(ok, "{text}");
    let (ok, text) = kubectl(&server, &["run", "q", "-n", "fresh", "--image=nginx"]);
    assert!(ok, "{text}");
    let (ok, text) = kubectl(
        &server,
        &[
            "get",
            "pod",
            "q",
            "-n",
            "fresh",
            "-o",
            "jsonpath={.spec.serviceAccountName} {.spec.volumes[0].name} {.spec.containers[0].volumeMounts[0].mountPath}",
        ],
    );
    let words: Vec<&str> = text.split_whitespace().collect();
    assert!(ok && words.len() == 3, "{text}");
    assert_eq!(words[0], "default");
    assert!(
        words[1].starts_with("kube-api-access-") && words[1].len() == 21,
        "{text}"
    );
    assert_eq!(words[2], "/var/run/secrets/kubernetes.io/serviceaccount");
    // with automounting off, no volume
    let (ok, text) = kubectl(
        &server,
        &[
            "run",
            "r",
            "--image=nginx",
            r#"--overrides={"spec":{"automountServiceAccountToken":false}}"#,
        ],
    );
    assert!(ok, "{text}");
    let (ok, text) = kubectl(&server, &["get", "pod", "r", "-o", "jsonpath={.spec.volumes}"]);
    assert!(ok && text.is_empty(), "{text}");
}

#[test]
fn kubectl_exposes_a_pod_and_shows_its_endpoints_every_way() {
    let server = Server::start();
    // slices list only pods on a known node, as upstream's controller
    let node = server.dir.path().join("node.yaml");
    std::fs::write(&node, "apiVersion: v1\nkind: Node\nmetadata: {name: node-1}\n").unwrap();
    let (ok, text) = kubectl(&server, &["apply", "-f", node.to_str().unwrap()]);
    assert!(ok, "{text}");
    let (ok, text) = kubectl(
        &server,
        &[
            "run",
            "web",
            "--image=nginx",
            "--labels=app=web",
            "--port=8080",
            r#"--overrides={"spec":{"nodeName":"node-1"}}"#,
        ],
    );
    assert!(ok, "{text}");
    let (ok, text) = kubectl(&server, &["expose", "pod", "web", "--port=80", "--target-port=8080"]);
    assert!(ok && text.contains("service/web exposed"), "{text}");
    // the pod becomes ready (as a kubelet would report it) and the controllers follow
    let status = r#"{"status":{"phase":"Running","podIP":"10.244.1.5","podIPs":[{"ip":"10.244.1.5"}],"conditions":[{"type":"Ready","status":"True"}]}}"#;
    let (ok, text) = kubectl(
        &server,
        &[
            "patch",
            "pod",
            "web",
            "--subresource=status",
            "--type=merge",
            "-p",
            status,
        ],
    );
    assert!(ok, "{text}");
    let wide = kubectl_until(&server, &["get", "svc,pods,ep,endpointslices", "-o", "wide"], |t| {
        t.contains("10.244.1.5:8080")
    });
    for row in [
        "service/web",
        "pod/web",
        "endpoints/web",
        "endpointslice.discovery.k8s.io/web-",
    ] {
        assert!(
            wide.contains(row),
            "{row} missing:
{wide}"
        );
    }
    assert!(wide.contains("app=web") && wide.contains("10.244.1.5"), "{wide}");
    let (ok, text) = kubectl(&server, &["get", "svc,pods,ep,endpointslices", "-o", "json"]);
    assert!(ok, "{text}");
    // kubectl prints upstream's deprecation warning for v1 Endpoints before the JSON
    assert!(
        text.contains("Warning: v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice"),
        "{text}"
    );
    let json: String = text
        .lines()
        .filter(|l| !l.starts_with("Warning: "))
        .collect::<Vec<_>>()
        .join("\n");
    let list: serde_json::Value = serde_json::from_str(&json).expect("kubectl's JSON");
    let kinds: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["kind"].as_str())
        .collect();
    for kind in ["Service", "Pod", "Endpoints", "EndpointSlice"] {
        assert!(kinds.contains(&kind), "{kind} missing: {kinds:?}");
    }
    let (ok, text) = kubectl(
        &server,
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
            "-o",
            "yaml",
        ],
    );
    assert!(
        ok && text.contains("- 10.244.1.5") && text.contains("port: 8080"),
        "{text}"
    );
    let (ok, text) = kubectl(&server, &["describe", "svc", "web"]);
    assert!(ok, "{text}");
    for line in [
        "Selector:",
        "app=web",
        "TargetPort:",
        "8080/TCP",
        "Endpoints:",
        "10.244.1.5:8080",
    ] {
        assert!(
            text.contains(line),
            "{line} missing:
{text}"
        );
    }
}

#[test]
fn kubectl_generators_send_protobuf_and_are_understood() {
    let server = Server::start();
    // `create deployment` and `create service` post protobuf bodies, as client-go's typed
    // clients do; the server decodes them, defaults and validates them as JSON ones
    let (ok, text) = kubectl(
        &server,
        &[
            "create",
            "deployment",
            "web",
            "--image=nginx",
            "--replicas=0",
            "--port=80",
            "--",
            "/bin/web",
            "-v",
        ],
    );
    assert!(ok && text.contains("deployment.apps/web created"), "{text}");
    let (ok, text) = kubectl(
        &server,
        &[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.spec.replicas} {.spec.selector.matchLabels.app} {.spec.strategy.type} {.spec.strategy.rollingUpdate.maxSurge} {.spec.template.spec.containers[0].command} {.spec.template.spec.containers[0].ports[0].containerPort}",
        ],
    );
    assert!(
        ok && text == r#"0 web RollingUpdate 25% ["/bin/web","-v"] 80"#,
        "{text}"
    );
    let (ok, text) = kubectl(
        &server,
        &[
            "create",
            "service",
            "nodeport",
            "np",
            "--tcp=80:8080",
            "--node-port=30123",
        ],
    );
    assert!(ok && text.contains("service/np created"), "{text}");
    let (ok, text) = kubectl(
        &server,
        &[
            "get",
            "service",
            "np",
            "-o",
            "jsonpath={.spec.type} {.spec.ports[0].nodePort} {.spec.ports[0].targetPort}",
        ],
    );
    assert!(ok && text == "NodePort 30123 8080", "{text}");
    // Go's non-pointer numbers travel at zero in protobuf and are left out of JSON, as
    // upstream's encoder leaves them out: no `nodePort: 0` on a ClusterIP Service
    let (ok, text) = kubectl(&server, &["create", "service", "clusterip", "cip", "--tcp=80:8080"]);
    assert!(ok && text.contains("service/cip created"), "{text}");
    let (ok, text) = kubectl(&server, &["get", "service", "cip", "-o", "json"]);
    let cip: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert!(ok && cip["spec"]["ports"][0]["port"] == 80, "{text}");
    assert!(cip["spec"]["ports"][0].get("nodePort").is_none(), "{text}");
    assert!(cip["metadata"].get("generation").is_none(), "{text}");
    // validation errors come back the same way as for JSON bodies
    let (ok, text) = kubectl(&server, &["create", "deployment", "bad", "--image=x", "--replicas=-1"]);
    assert!(
        !ok && text.contains("spec.replicas: Invalid value: -1: must be greater than or equal to 0"),
        "{text}"
    );
}

#[test]
fn malformed_and_oversized_bodies_get_status_errors() {
    let server = Server::start();
    let services = format!("{}/api/v1/namespaces/default/services", server.url);
    let json = "Content-Type: application/json";
    let (code, body) = server.curl(&["-X", "POST", &services, "-H", json, "-d", "{not json"]);
    assert_eq!(code, 400, "{body}");
    assert!(
        body.starts_with(
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"json parse error"#
        ),
        "{body}"
    );
    let (code, body) = server.curl(&[
        "-X",
        "POST",
        &services,
        "-H",
        json,
        "-d",
        r#"{"kind":"Pod","metadata":{"name":"p"}}"#,
    ]);
    assert_eq!(code, 400, "{body}");
    let big = format!(
        "{{\"metadata\":{{\"name\":\"big\",\"annotations\":{{\"a\":\"{}\"}}}}}}",
        "x".repeat(4 * 1024 * 1024)
    );
    let file = server.dir.path().join("big.json");
    std::fs::write(&file, big).unwrap();
    let (code, body) = server.curl(&[
        "-X",
        "POST",
        &services,
        "-H",
        json,
        "--data-binary",
        &format!("@{}", file.display()),
    ]);
    assert_eq!(code, 413, "{body}");
    assert!(body.contains(r#""reason":"RequestEntityTooLarge""#), "{body}");
    // a protobuf body that is not one is a 400; an encoding the server lacks is a 415
    let (code, body) = server.curl(&[
        "-X",
        "POST",
        &services,
        "-H",
        "Content-Type: application/vnd.kubernetes.protobuf",
        "--data-binary",
        "k8s-protobuf-bytes",
    ]);
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("the body does not start with the Kubernetes protobuf prefix"),
        "{body}"
    );
    let (code, body) = server.curl(&[
        "-X",
        "POST",
        &services,
        "-H",
        "Content-Type: application/cbor",
        "--data-binary",
        "cbor-bytes",
    ]);
    assert_eq!(code, 415, "{body}");
    assert!(body.contains(r#""reason":"UnsupportedMediaType""#), "{body}");
    let (code, body) = server.curl(&[&format!("{}/api/v1/namespaces/default/widgets", server.url)]);
    assert_eq!(code, 404, "{body}");
    // the server is still healthy after all that
    let (code, _) = server.curl(&[&services]);
    assert_eq!(code, 200);
}
