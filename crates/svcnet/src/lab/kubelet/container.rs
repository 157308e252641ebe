//! What process a container becomes. Images are not pulled or run; the lab knows a few:
//!
//! - upstream's test image agnhost: `netexec`, `serve-hostname` and `pause` run built-in
//!   equivalents (this binary's `agnhost` subcommands);
//! - `nginx`: its welcome page on port 80 (built in), unless a command other than nginx is
//!   given;
//! - CoreDNS: the cluster DNS, `svcnet dns` (see [`cluster_dns_argv`]);
//! - `busybox` and `alpine`: their `command` and `args` run from the host's programs inside
//!   the pod's sandbox (`sh` when none is given, as those images do).
//!
//! Any other image cannot be pulled ([`CannotRun::Pull`]): the pod shows `ErrImagePull`, then
//! `ImagePullBackOff`, with a Warning event that names the image.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use k8s_openapi::api::core::v1::{Container, PodSecurityContext};

/// The user and group a container runs as when its pod asks for none: `nobody`. The lab runs
/// as root; a pasted manifest must not.
pub const UNPRIVILEGED: u32 = 65534;

/// The (uid, gid) a container's processes run as: `runAsUser`/`runAsGroup` of the container,
/// else of the pod, else [`UNPRIVILEGED`] (root only when asked for with `runAsUser: 0`).
pub fn identity(container: &Container, pod: Option<&PodSecurityContext>) -> (u32, u32) {
    let own = container.security_context.as_ref();
    let id = |v: Option<i64>| v.and_then(|n| u32::try_from(n).ok());
    let uid = id(own.and_then(|c| c.run_as_user))
        .or_else(|| id(pod.and_then(|p| p.run_as_user)))
        .unwrap_or(UNPRIVILEGED);
    let gid = id(own.and_then(|c| c.run_as_group))
        .or_else(|| id(pod.and_then(|p| p.run_as_group)))
        .unwrap_or(if uid == 0 { 0 } else { UNPRIVILEGED });
    (uid, gid)
}

/// Whether any user may run the program at `path`: every directory above it searchable and
/// the file executable by others.
pub fn runnable_by_anyone(path: &Path) -> bool {
    let others_may = |p: &Path, bits: u32| std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & bits == bits);
    others_may(path, 0o005)
        && path
            .ancestors()
            .skip(1)
            .all(|dir| dir.as_os_str().is_empty() || others_may(dir, 0o001))
}

/// Whether `container` runs this binary (built-in agnhost or cluster DNS) rather than a
/// command of its own.
pub fn is_built_in(container: &Container) -> bool {
    let image = container.image.as_deref().unwrap_or("");
    is_agnhost(image) || is_cluster_dns(container)
}

/// Whether `container` is CoreDNS, which the lab runs as `svcnet dns` (its arguments, a
/// Corefile, are not read).
pub fn is_cluster_dns(container: &Container) -> bool {
    repository(container.image.as_deref().unwrap_or("")).rsplit('/').next() == Some("coredns")
}

/// The command of the built-in cluster DNS: `svcnet dns` on port 53 with the lab's API
/// credentials for reading Services and EndpointSlices.
pub fn cluster_dns_argv(exe: &str, kubeconfig: &Path, domain: &str) -> Vec<String> {
    [
        exe,
        "dns",
        "--kubeconfig",
        &kubeconfig.to_string_lossy(),
        "--listen",
        "0.0.0.0:53",
        "--cluster-domain",
        domain,
        "--exit-after-secs",
        &SERVER_LIFETIME_SECS.to_string(),
    ]
    .map(str::to_owned)
    .to_vec()
}

/// How long a built-in server runs before it exits by itself (the kubelet restarts it per
/// the pod's restart policy): a week.
const SERVER_LIFETIME_SECS: u64 = 7 * 24 * 3600;

/// The value of `--flag=V` or `--flag V` in `words`, if given.
fn flag<'a>(words: &'a [String], name: &str) -> Option<&'a str> {
    let long = format!("--{name}");
    let eq = format!("--{name}=");
    words.iter().enumerate().find_map(|(i, w)| {
        if let Some(v) = w.strip_prefix(&eq) {
            Some(v)
        } else if *w == long {
            words.get(i + 1).map(String::as_str)
        } else {
            None
        }
    })
}

fn bool_flag(words: &[String], name: &str, default: bool) -> bool {
    let eq = format!("--{name}=");
    words
        .iter()
        .rev()
        .find_map(|w| {
            if *w == format!("--{name}") {
                Some(true)
            } else {
                w.strip_prefix(&eq).map(|v| v == "true")
            }
        })
        .unwrap_or(default)
}

fn port(words: &[String], name: &str, default: u16) -> Result<u16, String> {
    match flag(words, name) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| format!("--{name}: {v:?} is not a port")),
    }
}

/// An image reference without its tag and digest.
fn repository(image: &str) -> &str {
    let path = image.split(['@']).next().unwrap_or(image);
    path.rsplit_once(':')
        .filter(|(_, tag)| !tag.contains('/'))
        .map_or(path, |(r, _)| r)
}

fn is_agnhost(image: &str) -> bool {
    repository(image).rsplit('/').next() == Some("agnhost")
}

/// Why a container cannot start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CannotRun {
    /// Its image is none the lab runs (`ErrImagePull`).
    Pull(String),
    /// Its command or arguments make no sense for its image (`CreateContainerConfigError`).
    Config(String),
}

/// What the lab says of images it does not run.
pub const IMAGES_THE_LAB_RUNS: &str = "the svcnet lab pulls no images; it runs agnhost (netexec, serve-hostname, pause), nginx and coredns built in, and busybox or alpine commands from the host";

/// The images whose commands run from the host's programs.
fn runs_host_commands(repo_name: &str) -> bool {
    matches!(repo_name, "busybox" | "alpine")
}

/// The argument vector for `container` of pod `pod_name`; `exe` is this binary (for the
/// built-in images).
pub fn argv(container: &Container, pod_name: &str, exe: &str) -> Result<Vec<String>, CannotRun> {
    let mut words: Vec<String> = container.command.clone().unwrap_or_default();
    words.extend(container.args.clone().unwrap_or_default());
    let image = container.image.as_deref().unwrap_or("");
    let repo_name = repository(image).rsplit('/').next().unwrap_or("");
    if repo_name == "nginx" && words.first().is_none_or(|w| w == "nginx" || w.ends_with("/nginx")) {
        let lifetime = SERVER_LIFETIME_SECS.to_string();
        return Ok([exe, "agnhost", "nginx", "--port", "80", "--exit-after", &lifetime]
            .map(str::to_owned)
            .to_vec());
    }
    if runs_host_commands(repo_name) || (repo_name == "nginx" && !words.is_empty()) {
        return Ok(if words.is_empty() { vec!["sh".into()] } else { words });
    }
    if !is_agnhost(image) {
        return Err(CannotRun::Pull(format!(
            "failed to pull and unpack image \"{image}\": {IMAGES_THE_LAB_RUNS}"
        )));
    }
    if words.first().is_some_and(|w| w == "/agnhost" || w == "agnhost") {
        words.remove(0);
    }
    let sub = words.first().cloned().unwrap_or_default();
    let rest = &words[words.len().min(1)..];
    let lifetime = SERVER_LIFETIME_SECS.to_string();
    let mut out = vec![
        exe.to_owned(),
        "agnhost".into(),
        "netexec".into(),
        "--name".into(),
        pod_name.into(),
    ];
    match sub.as_str() {
        "netexec" => {
            out.extend([
                "--http-port".into(),
                port(rest, "http-port", 8080).map_err(CannotRun::Config)?.to_string(),
            ]);
            out.extend([
                "--udp-port".into(),
                port(rest, "udp-port", 8081).map_err(CannotRun::Config)?.to_string(),
            ]);
        }
        "serve-hostname" => {
            let p = port(rest, "port", 9376).map_err(CannotRun::Config)?.to_string();
            if bool_flag(rest, "http", true) || bool_flag(rest, "tcp", false) {
                out.extend(["--http-port".into(), p.clone()]);
            }
            if bool_flag(rest, "udp", false) {
                out.extend(["--udp-port".into(), p]);
            }
        }
        "pause" => return Ok(vec!["sleep".into(), "infinity".into()]),
        other => {
            return Err(CannotRun::Config(format!(
                "container {:?}: agnhost {other:?} is not built in (netexec, serve-hostname and pause are)",
                container.name
            )));
        }
    }
    out.extend(["--exit-after".into(), lifetime]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(image: &str, command: &[&str], args: &[&str]) -> Container {
        Container {
            name: "c".into(),
            image: Some(image.into()),
            command: (!command.is_empty()).then(|| command.iter().map(|s| s.to_string()).collect()),
            args: (!args.is_empty()).then(|| args.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn agnhost_netexec_maps_its_ports() {
        let c = container(
            "registry.k8s.io/e2e-test-images/agnhost:2.53",
            &[],
            &["netexec", "--http-port=9000", "--udp-port", "9001"],
        );
        let v = argv(&c, "web-1", "/bin/svcnet").unwrap();
        assert_eq!(
            v.join(" "),
            "/bin/svcnet agnhost netexec --name web-1 --http-port 9000 --udp-port 9001 --exit-after 604800"
        );
        let defaults = argv(&container("agnhost", &["/agnhost", "netexec"], &[]), "p", "x").unwrap();
        assert!(defaults.join(" ").contains("--http-port 8080 --udp-port 8081"));
    }

    #[test]
    fn agnhost_serve_hostname_serves_http_and_optionally_udp() {
        let c = container("registry.k8s.io/e2e-test-images/agnhost:2.53", &[], &["serve-hostname"]);
        let v = argv(&c, "p", "x").unwrap().join(" ");
        assert!(v.contains("--http-port 9376") && !v.contains("--udp-port"), "{v}");
        let c = container(
            "agnhost:2.53",
            &[],
            &["serve-hostname", "--udp", "--http=false", "--port=80"],
        );
        let v = argv(&c, "p", "x").unwrap().join(" ");
        assert!(v.contains("--udp-port 80") && !v.contains("--http-port"), "{v}");
    }

    #[test]
    fn busybox_and_alpine_run_their_command_and_nginx_is_built_in() {
        let c = container("busybox", &["sleep"], &["3600"]);
        assert_eq!(argv(&c, "p", "x").unwrap(), ["sleep", "3600"]);
        assert_eq!(argv(&container("alpine:3.20", &[], &[]), "p", "x").unwrap(), ["sh"]);
        let nginx = argv(&container("nginx:1.27", &[], &[]), "p", "/bin/svcnet").unwrap();
        assert_eq!(nginx[..4], ["/bin/svcnet", "agnhost", "nginx", "--port"]);
        let nginx = argv(&container("nginx", &["nginx", "-g", "daemon off;"], &[]), "p", "x").unwrap();
        assert_eq!(nginx[2], "nginx");
        assert_eq!(
            argv(&container("nginx", &["sleep"], &["5"]), "p", "x").unwrap(),
            ["sleep", "5"]
        );
    }

    #[test]
    fn other_images_cannot_be_pulled() {
        let Err(CannotRun::Pull(why)) = argv(&container("redis:7", &["redis-server"], &[]), "p", "x") else {
            panic!("redis ran");
        };
        assert!(why.contains("\"redis:7\"") && why.contains("busybox"), "{why}");
        let Err(CannotRun::Config(why)) = argv(&container("agnhost", &[], &["porter"]), "p", "x") else {
            panic!("agnhost porter ran");
        };
        assert!(why.contains("\"porter\" is not built in"), "{why}");
    }

    #[test]
    fn containers_run_unprivileged_unless_asked() {
        let plain = container("busybox", &["sleep"], &["1"]);
        assert_eq!(identity(&plain, None), (UNPRIVILEGED, UNPRIVILEGED));
        let pod: PodSecurityContext = serde_json::from_value(serde_json::json!({"runAsUser": 0})).unwrap();
        assert_eq!(identity(&plain, Some(&pod)), (0, 0));
        let mut own = plain.clone();
        own.security_context =
            Some(serde_json::from_value(serde_json::json!({"runAsUser": 1000, "runAsGroup": 2000})).unwrap());
        assert_eq!(identity(&own, Some(&pod)), (1000, 2000));
        assert!(runnable_by_anyone(Path::new("/bin/sh")));
    }

    #[test]
    fn only_the_agnhost_repository_is_agnhost() {
        assert!(is_agnhost("registry.k8s.io/e2e-test-images/agnhost:2.53"));
        assert!(is_agnhost("localhost:5000/agnhost"));
        assert!(!is_agnhost("agnhost-fork:1"));
        assert!(!is_agnhost("docker.io/library/busybox"));
        assert!(is_cluster_dns(&container(
            "registry.k8s.io/coredns/coredns:v1.12.1",
            &[],
            &[]
        )));
        assert!(!is_cluster_dns(&container("coredns-fork", &[], &[])));
    }
}
