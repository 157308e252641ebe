//! A pod's volumes, as a learner meets them in the docs: a ConfigMap, a Secret and the
//! downward API as read-only files (laid out as upstream's kubelet does, updated while the
//! pod runs, a subPath file staying as it was), an emptyDir two containers share, mount paths
//! that do not exist on the host (one behind the host's `/var/run` link), a missing ConfigMap
//! that holds the pod in `ContainerCreating` with upstream's `FailedMount` event until it is
//! created, and the service account's token volume. Each container's root is its own: even
//! a root container that writes to `/usr` changes nothing on the host. And the environment
//! the kubelet makes: Services' variables, `envFrom`, `valueFrom` (ConfigMap and Secret keys,
//! the pod's fields), `$(VAR)` in values and in the command, nothing of the lab's own; a
//! missing key is `CreateContainerConfigError` with upstream's words.

use std::time::Duration;

use crate::support::{ControlPlane, Lab, wait_for};

const MANIFEST: &str = "apiVersion: v1
kind: ConfigMap
metadata: {name: app}
data: {greeting: hello, app.conf: \"listen 80\"}
---
apiVersion: v1
kind: Secret
metadata: {name: pw}
stringData: {password: s3cr3t}
---
apiVersion: v1
kind: Service
metadata: {name: web-api}
spec:
  selector: {app: nothing}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: vol, labels: {app: vol}}
spec:
  containers:
  - name: writer
    image: busybox
    command: [sh, -c, 'echo shared > /cache/from-writer; echo $(SAID) > /cache/said; sleep 3600']
    workingDir: /srv/work
    envFrom: [{configMapRef: {name: app}, prefix: APP_}]
    env:
    - {name: PASSWORD, valueFrom: {secretKeyRef: {name: pw, key: password}}}
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: SAID, value: '$(APP_greeting) from $(POD_IP) $(UNSET)'}
    volumeMounts:
    - {name: cache, mountPath: /cache}
    - {name: cfg, mountPath: /etc/app}
    - {name: pw, mountPath: /var/run/secrets/app}
    - {name: info, mountPath: /etc/podinfo}
    - {name: cfg, mountPath: /opt/conf/app.conf, subPath: app.conf}
  - name: root
    image: busybox
    securityContext: {runAsUser: 0}
    command: [sleep, '3600']
    volumeMounts:
    - {name: cache, mountPath: /cache}
    - {name: cfg, mountPath: /etc/app}
  volumes:
  - {name: cache, emptyDir: {}}
  - {name: cfg, configMap: {name: app}}
  - {name: pw, secret: {secretName: pw, defaultMode: 0440}}
  - name: info
    downwardAPI: {items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]}
";

fn volumes_are_mounted_as_upstream_s_kubelet_mounts_them(control_plane: ControlPlane) {
    let lab = Lab::up_on(1, control_plane);
    lab.apply(MANIFEST);
    lab.wait_ready_pods("app=vol", 1);
    let exec = |container: &str, script: &str| lab.kubectl(&["exec", "vol", "-c", container, "--", "sh", "-c", script]);
    let (_, seen) = exec(
        "writer",
        "pwd; cat /etc/app/greeting; echo; cat /etc/podinfo/labels; echo; cat /opt/conf/app.conf; echo; readlink /etc/app/..data; readlink /etc/app/greeting; stat -c %a /var/run/secrets/app/..data/password",
    );
    let lines: Vec<&str> = seen.lines().collect();
    assert_eq!(lines.first(), Some(&"/srv/work"), "{seen}");
    assert_eq!(
        lines.get(1..4),
        Some(&["hello", "app=\"vol\"", "listen 80"][..]),
        "{seen}"
    );
    assert!(lines.get(4).is_some_and(|l| l.starts_with("..20")), "{seen}");
    assert_eq!(lines.get(5..7), Some(&["..data/greeting", "440"][..]), "{seen}");
    // the secret is the container user's only through its mode: 0440 root-owned, unreadable
    let (read, _) = exec("writer", "cat /var/run/secrets/app/password");
    assert!(!read, "an unprivileged container read a 0440 secret file");

    // the emptyDir is shared and writable; configMap volumes are read-only even to root
    let (_, shared) = exec(
        "root",
        "cat /cache/from-writer; echo x > /etc/app/new 2>&1 || echo refused",
    );
    assert!(shared.contains("shared"), "{shared}");
    assert!(
        shared.contains("Read-only file system") || shared.contains("refused"),
        "{shared}"
    );
    // a root container's writes stay in its own layer
    let probe = format!("/usr/svcnet-probe-{}", std::process::id());
    let (wrote, out) = exec(
        "root",
        &format!("echo layer > {probe} && cat {probe} && ls /tmp | wc -l"),
    );
    assert!(wrote && out.starts_with("layer\n"), "{out}");
    assert!(
        !std::path::Path::new(&probe).exists(),
        "a root container's write reached the host"
    );
    assert!(!std::path::Path::new("/srv/work").exists() && !std::path::Path::new("/etc/app").exists());
    assert!(
        !std::path::Path::new("/var/run/secrets/app").exists(),
        "a mount path followed /var/run onto the host"
    );

    // the environment: Services', envFrom, valueFrom, references; nothing of the lab's
    let (_, env) = exec("writer", "env");
    let var = |name: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in:\n{env}"))
            .to_owned()
    };
    let pod_ip = lab.get(&["pod", "vol"], "{.status.podIP}");
    let service_ip = lab.get(&["service", "web-api"], "{.spec.clusterIP}");
    assert_eq!(var("APP_greeting"), "hello");
    assert_eq!(var("PASSWORD"), "s3cr3t");
    assert_eq!(var("POD_IP"), pod_ip);
    assert_eq!(var("SAID"), format!("hello from {pod_ip} $(UNSET)"));
    assert_eq!(var("WEB_API_SERVICE_HOST"), service_ip);
    assert_eq!(var("WEB_API_SERVICE_PORT_HTTP"), "8080");
    assert_eq!(var("WEB_API_PORT_8080_TCP"), format!("tcp://{service_ip}:8080"));
    assert!(var("KUBERNETES_SERVICE_HOST").starts_with("10.96."), "{env}");
    assert_eq!(
        var("PATH"),
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    );
    assert!(
        !env.contains("KUBECONFIG=") && !env.contains("MALLOC_ARENA_MAX="),
        "the lab's environment leaked:\n{env}"
    );
    // the kubelet expanded $(SAID) in the command; the shell then ran `$(UNSET)` as a command
    assert_eq!(exec("writer", "cat /cache/said").1, format!("hello from {pod_ip}\n"));

    // an update reaches the volume, not the subPath file (as upstream)
    lab.k(&[
        "patch",
        "configmap",
        "app",
        "-p",
        r#"{"data":{"greeting":"bye","app.conf":"listen 81"}}"#,
    ]);
    wait_for("the ConfigMap update in the volume", Duration::from_secs(40), || {
        (exec("writer", "cat /etc/app/greeting").1 == "bye").then_some(())
    });
    assert_eq!(exec("writer", "cat /opt/conf/app.conf").1, "listen 80");

    // the service account's token volume: the namespace and the cluster's CA everywhere, a
    // token where the API server issues one (kube-apiserver; svcnet's does not)
    let (_, sa) = exec(
        "writer",
        "cd /var/run/secrets/kubernetes.io/serviceaccount && cat namespace && echo && head -1 ca.crt && ls",
    );
    assert!(sa.starts_with("default\n-----BEGIN CERTIFICATE-----"), "{sa}");
    match control_plane {
        ControlPlane::Svcnet => assert!(!sa.contains("token"), "{sa}"),
        _ => assert!(sa.lines().any(|l| l == "token"), "{sa}"),
    }

    // a missing ConfigMap holds the pod, with upstream's event, until it exists
    lab.apply(
        "apiVersion: v1
kind: Pod
metadata: {name: waits, labels: {app: waits}}
spec:
  containers:
  - {name: c, image: busybox, command: [sleep, '3600'], volumeMounts: [{name: later, mountPath: /later}]}
  volumes:
  - {name: later, configMap: {name: later}}
",
    );
    let event = wait_for("a FailedMount event", Duration::from_secs(30), || {
        lab.k(&[
            "get",
            "events",
            "--field-selector=involvedObject.name=waits,reason=FailedMount",
            "-o",
            "jsonpath={.items[*].message}",
        ])
        .lines()
        .next()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
    });
    assert_eq!(
        event,
        "MountVolume.SetUp failed for volume \"later\" : configmap \"later\" not found"
    );
    let waiting = lab.get(&["pod", "waits"], "{.status.containerStatuses[0].state.waiting.reason}");
    assert_eq!(waiting, "ContainerCreating");
    lab.k(&["create", "configmap", "later", "--from-literal=k=v"]);
    lab.wait_ready_pods("app=waits", 1);
    assert_eq!(lab.kubectl(&["exec", "waits", "--", "cat", "/later/k"]).1, "v");

    // a key that is not there: the container cannot be configured, in upstream's words
    lab.apply(
        "apiVersion: v1
kind: Pod
metadata: {name: misconfigured}
spec:
  containers:
  - name: c
    image: busybox
    command: [sleep, '3600']
    env: [{name: X, valueFrom: {configMapKeyRef: {name: app, key: nope}}}]
",
    );
    let why = wait_for("CreateContainerConfigError", Duration::from_secs(30), || {
        let state = lab.get(
            &["pod", "misconfigured"],
            "{.status.containerStatuses[0].state.waiting}",
        );
        state.contains("CreateContainerConfigError").then_some(state)
    });
    assert!(why.contains("couldn't find key nope in ConfigMap default/app"), "{why}");
}

on_svcnet_and_upstream!(volumes_are_mounted_as_upstream_s_kubelet_mounts_them);
