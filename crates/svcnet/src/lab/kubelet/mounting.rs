//! The kubelet's side of volumes that touches the world: reads what a pod's volumes need from
//! the API, makes them under the pod's sandbox directory (`volumes/<name>`, a directory only
//! root may enter: containers reach a volume through its mount only), keeps configMap,
//! secret and projected volumes up to date, and turns a container's `volumeMounts` into the
//! plan its sandbox binds ([`rootfs::VolumeMount`]); and reads what a container's
//! environment needs ([`container_env`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service, ServiceAccount};
use kube::api::PostParams;
use kube::{Api, Client};

use super::environment;
use super::rootfs::VolumeMount;
use super::volumes::{self, Content, Inputs};

/// A pod's volumes directory in its sandbox directory.
pub fn volumes_dir(sandbox: &Path) -> PathBuf {
    sandbox.join("volumes")
}

/// Why a pod's volumes are not ready: the volume and upstream's reason, or an API failure
/// (volume empty) to retry.
#[derive(Debug, PartialEq, Eq)]
pub struct MountFailure {
    pub volume: String,
    pub why: String,
}

impl MountFailure {
    /// The `FailedMount` event's message.
    pub fn message(&self) -> String {
        match self.volume.as_str() {
            "" => format!("MountVolume.SetUp failed: {}", self.why),
            volume => volumes::failed_mount(volume, &self.why),
        }
    }
}

/// The volumes made so far, to rewrite only what changed.
#[derive(Default)]
pub struct MadeVolumes {
    contents: BTreeMap<String, Content>,
}

impl MadeVolumes {
    /// Makes (or brings up to date) every volume of `pod` under `sandbox`; `stamp` names a
    /// new generation of files. Returns notes on what was left out (a token the API server
    /// does not issue). A failure leaves volumes made before as they were.
    pub async fn sync(
        &mut self,
        client: &Client,
        pod: &Pod,
        sandbox: &Path,
        stamp: &str,
    ) -> Result<Vec<String>, MountFailure> {
        let inputs = fetch(client, pod, &volumes::needs(pod))
            .await
            .map_err(|why| MountFailure {
                volume: String::new(),
                why,
            })?;
        let dir = volumes_dir(sandbox);
        private_dir(&dir).map_err(|e| MountFailure {
            volume: String::new(),
            why: format!("cannot make {}: {e}", dir.display()),
        })?;
        let mut notes = Vec::new();
        let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_deref()).unwrap_or_default();
        let mut made = Vec::new();
        for volume in volumes {
            let content = volumes::content(volume, pod, &inputs).map_err(|why| MountFailure {
                volume: volume.name.clone(),
                why,
            })?;
            made.push((volume.name.clone(), content));
        }
        for (name, content) in made {
            if let Content::Files { notes: left_out, .. } = &content {
                notes.extend(left_out.iter().map(|n| format!("volume {name:?}: {n}")));
            }
            if self.contents.get(&name) == Some(&content) {
                continue;
            }
            volumes::write(&dir.join(&name), &content, stamp).map_err(|e| MountFailure {
                volume: name.clone(),
                why: e.to_string(),
            })?;
            self.contents.insert(name, content);
        }
        Ok(notes)
    }

    /// Whether every volume has been made once.
    pub fn complete(&self, pod: &Pod) -> bool {
        let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_deref()).unwrap_or_default();
        volumes.iter().all(|v| self.contents.contains_key(&v.name))
    }
}

fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.is_dir() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    Ok(())
}

/// Reads what `needs` names from the API (objects not found are `None`; a token the server
/// will not issue is its reason). Any other API failure is an error, to retry.
async fn fetch(client: &Client, pod: &Pod, needs: &volumes::Needs) -> Result<Inputs, String> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut inputs = Inputs::default();
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    for name in &needs.config_maps {
        let got = config_maps.get_opt(name).await.map_err(|e| e.to_string())?;
        inputs.config_maps.insert(name.clone(), got);
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    for name in &needs.secrets {
        let got = secrets.get_opt(name).await.map_err(|e| e.to_string())?;
        inputs.secrets.insert(name.clone(), got);
    }
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let account = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    for key in &needs.tokens {
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                audiences: key.audience.clone().map(|a| vec![a]),
                expiration_seconds: Some(key.expiration_seconds),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: pod.metadata.name.clone(),
                    uid: pod.metadata.uid.clone(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let token = match accounts
            .create_token_request(&account, &PostParams::default(), &request)
            .await
        {
            Ok(answer) => Ok(answer.status.and_then(|s| s.token).unwrap_or_default()),
            // not served (svcnet's API server), or refused: the pod runs without it
            Err(kube::Error::Api(e)) if (400..500).contains(&e.code) => Err(e.message),
            Err(e) => return Err(e.to_string()),
        };
        inputs.tokens.insert(key.clone(), token);
    }
    Ok(inputs)
}

/// The file in a container's directory holding its resolved environment (0600: it may hold
/// Secrets), which `kubectl exec` starts from.
pub const ENV_FILE: &str = "env.json";

/// `container`'s environment (see [`environment::resolve`]) in `pod`, whose pod and host IPs
/// are given; the error is why the container cannot be configured.
pub async fn container_env(
    client: &Client,
    pod: &Pod,
    container: &Container,
    pod_ip: &str,
    host_ip: &str,
) -> Result<Vec<(String, String)>, String> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let inputs = fetch(client, pod, &environment::needs(container)).await?;
    let links = pod.spec.as_ref().and_then(|s| s.enable_service_links).unwrap_or(true);
    let mut services = Vec::new();
    if links {
        let listed = Api::<Service>::namespaced(client.clone(), namespace)
            .list(&Default::default())
            .await
            .map_err(|e| e.to_string())?;
        services.extend(listed.items);
    }
    if namespace != "default" || !links {
        let api = Api::<Service>::namespaced(client.clone(), "default");
        services.extend(api.get_opt("kubernetes").await.map_err(|e| e.to_string())?);
    }
    let mut with_addresses = pod.clone();
    let status = with_addresses.status.get_or_insert_with(Default::default);
    status.pod_ip = Some(pod_ip.to_owned());
    status.host_ip = Some(host_ip.to_owned());
    environment::resolve(&with_addresses, container, &inputs, &services)
}

/// Keeps `env` in the container's directory for `kubectl exec`.
pub fn save_env(container_dir: &Path, env: &[(String, String)]) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(env).map_err(std::io::Error::other)?;
    svcnet_apiserver::credentials::write_file(&container_dir.join(ENV_FILE), &bytes, 0o600)
}

/// The environment [`save_env`] kept (none when the container has not started).
pub fn saved_env(container_dir: &Path) -> Vec<(String, String)> {
    std::fs::read(container_dir.join(ENV_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// For the built-in cluster DNS, which reads the API with the lab's credentials: its
/// kubeconfig and the CA file that names, bound read-only at their own paths.
pub fn credentials_mounts(kubeconfig: &Path) -> Vec<VolumeMount> {
    let mut files = vec![kubeconfig.to_owned()];
    if let Ok(config) = kube::config::Kubeconfig::read_from(kubeconfig) {
        files.extend(
            config
                .clusters
                .iter()
                .filter_map(|c| c.cluster.as_ref()?.certificate_authority.clone())
                .map(PathBuf::from),
        );
    }
    files
        .into_iter()
        .map(|file| VolumeMount {
            target: file.to_string_lossy().into_owned(),
            source: file,
            read_only: true,
        })
        .collect()
}

/// The mounts of `container` of `pod`: each volume's directory (or the subPath in it) at its
/// mount path; read-only unless asked writable and the volume is an emptyDir. A missing
/// subPath of an emptyDir is made, as upstream's kubelet does.
pub fn container_mounts(pod: &Pod, container: &Container, sandbox: &Path) -> Result<Vec<VolumeMount>, String> {
    let dir = volumes_dir(sandbox);
    let mut out = Vec::new();
    for m in container.volume_mounts.iter().flatten() {
        if m.sub_path_expr.as_deref().is_some_and(|e| !e.is_empty()) {
            return Err(format!(
                "volumeMount {:?}: subPathExpr is not supported by the lab",
                m.name
            ));
        }
        let writable = volumes::writable(pod, &m.name);
        let mut source = dir.join(&m.name);
        if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            let clean = Path::new(sub)
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
            if !clean {
                return Err(format!(
                    "volumeMount {:?}: subPath {sub:?} must stay inside the volume",
                    m.name
                ));
            }
            source = source.join(sub);
            if writable && !source.exists() {
                make_shared_dir(&source).map_err(|e| format!("subPath {sub:?}: {e}"))?;
            }
        }
        out.push(VolumeMount {
            source,
            target: m.mount_path.clone(),
            read_only: m.read_only.unwrap_or(false) || !writable,
        });
    }
    Ok(out)
}

fn make_shared_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn mounts_are_read_only_unless_an_empty_dir_asked_writable() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "volumeMounts": [
                {"name": "cache", "mountPath": "/cache"},
                {"name": "cache", "mountPath": "/ro", "readOnly": true},
                {"name": "cfg", "mountPath": "/etc/app/app.conf", "subPath": "app.conf"},
            ]}], "volumes": [{"name": "cache", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "x"}}]}
        }))
        .unwrap();
        let sandbox = Path::new("/nonexistent/sb");
        let c = &pod.spec.as_ref().unwrap().containers[0];
        let got = container_mounts(&pod, c, sandbox).unwrap();
        let summary: Vec<_> = got
            .iter()
            .map(|m| (m.source.to_string_lossy().into_owned(), m.target.as_str(), m.read_only))
            .collect();
        assert_eq!(
            summary,
            [
                ("/nonexistent/sb/volumes/cache".into(), "/cache", false),
                ("/nonexistent/sb/volumes/cache".into(), "/ro", true),
                ("/nonexistent/sb/volumes/cfg/app.conf".into(), "/etc/app/app.conf", true),
            ]
        );
    }

    #[test]
    fn a_sub_path_may_not_leave_its_volume() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "volumeMounts": [
                {"name": "cfg", "mountPath": "/x", "subPath": "../../etc"},
            ]}], "volumes": [{"name": "cfg", "configMap": {"name": "x"}}]}
        }))
        .unwrap();
        let c = &pod.spec.as_ref().unwrap().containers[0];
        let err = container_mounts(&pod, c, Path::new("/nonexistent")).unwrap_err();
        assert!(err.contains("must stay inside"), "{err}");
    }
}
