//! A pod's volumes, as the kubelet makes them before its containers start: `emptyDir`,
//! `configMap`, `secret`, `downwardAPI` and `projected` (those three, and service account
//! tokens). Each kind is one [`VolumeKind`]; what they read from the API is gathered first
//! ([`Needs`] → [`Inputs`]), so what a volume holds ([`content`]) is a pure function of the
//! pod and those inputs. [`write`] lays files out as upstream's atomic writer does (a
//! `..<time>` directory, a `..data` link to it and one link per entry), so a later
//! write replaces everything at once.
//!
//! Other kinds (hostPath, persistentVolumeClaim, …) are refused with a `FailedMount` reason:
//! the lab has no storage and gives pods none of the host's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapProjection, ConfigMapVolumeSource, DownwardAPIVolumeFile, DownwardAPIVolumeSource,
    EmptyDirVolumeSource, KeyToPath, Pod, ProjectedVolumeSource, Secret, SecretProjection, SecretVolumeSource,
    ServiceAccountTokenProjection, Volume,
};

/// Upstream's default file mode for volume files (0644).
pub const DEFAULT_MODE: u32 = 0o644;
/// Upstream's default token lifetime when a projection names none.
const DEFAULT_TOKEN_SECONDS: i64 = 3600;

/// A service account token asked for: its audience (the API server's when none) and lifetime.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TokenKey {
    pub audience: Option<String>,
    pub expiration_seconds: i64,
}

/// What a pod's volumes read from the API.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Needs {
    pub config_maps: BTreeSet<String>,
    pub secrets: BTreeSet<String>,
    pub tokens: BTreeSet<TokenKey>,
}

/// What the API answered for [`Needs`]: `None` for an object not found; a token or why
/// there is none.
#[derive(Debug, Default)]
pub struct Inputs {
    pub config_maps: BTreeMap<String, Option<ConfigMap>>,
    pub secrets: BTreeMap<String, Option<Secret>>,
    pub tokens: BTreeMap<TokenKey, Result<String, String>>,
}

/// One file of a volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeFile {
    /// Relative, without `..`.
    pub path: String,
    pub data: Vec<u8>,
    pub mode: u32,
}

/// What a volume holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    /// An empty, writable directory, kept for the pod's life.
    EmptyDir,
    /// Files the kubelet writes (and containers read only), and notes on what was left out.
    Files { files: Vec<VolumeFile>, notes: Vec<String> },
}

/// One kind of volume source.
trait VolumeKind {
    /// Adds what it reads from the API.
    fn needs(&self, needs: &mut Needs);
    /// What it holds for `pod`, or why it cannot be mounted (upstream's words after
    /// `MountVolume.SetUp failed for volume "NAME" : `).
    fn content(&self, pod: &Pod, inputs: &Inputs) -> Result<Content, String>;
    /// Whether containers may write to it.
    fn writable(&self) -> bool {
        false
    }
}

/// The kind of `volume`, or why the lab does not mount it.
fn kind_of(volume: &Volume) -> Result<&dyn VolumeKind, String> {
    if let Some(v) = &volume.empty_dir {
        Ok(v)
    } else if let Some(v) = &volume.config_map {
        Ok(v)
    } else if let Some(v) = &volume.secret {
        Ok(v)
    } else if let Some(v) = &volume.downward_api {
        Ok(v)
    } else if let Some(v) = &volume.projected {
        Ok(v)
    } else {
        Err(format!(
            "the lab mounts emptyDir, configMap, secret, downwardAPI and projected volumes only; volume {:?} is of another kind",
            volume.name
        ))
    }
}

/// Everything `pod`'s volumes read from the API.
pub fn needs(pod: &Pod) -> Needs {
    let mut needs = Needs::default();
    for volume in pod_volumes(pod) {
        if let Ok(kind) = kind_of(volume) {
            kind.needs(&mut needs);
        }
    }
    needs
}

fn pod_volumes(pod: &Pod) -> &[Volume] {
    pod.spec.as_ref().and_then(|s| s.volumes.as_deref()).unwrap_or_default()
}

/// What `volume` holds, or why it cannot be mounted.
pub fn content(volume: &Volume, pod: &Pod, inputs: &Inputs) -> Result<Content, String> {
    kind_of(volume)?.content(pod, inputs)
}

/// Whether containers may write to the volume named `name` of `pod` (emptyDir only).
pub fn writable(pod: &Pod, name: &str) -> bool {
    pod_volumes(pod)
        .iter()
        .find(|v| v.name == name)
        .and_then(|v| kind_of(v).ok())
        .is_some_and(VolumeKind::writable)
}

/// The message upstream's kubelet records (event `FailedMount`) for a volume it cannot mount.
pub fn failed_mount(volume: &str, why: &str) -> String {
    format!("MountVolume.SetUp failed for volume \"{volume}\" : {why}")
}

impl VolumeKind for EmptyDirVolumeSource {
    fn needs(&self, _: &mut Needs) {}
    fn content(&self, _: &Pod, _: &Inputs) -> Result<Content, String> {
        Ok(Content::EmptyDir)
    }
    fn writable(&self) -> bool {
        true
    }
}

fn files(files: Vec<VolumeFile>) -> Content {
    Content::Files {
        files,
        notes: Vec::new(),
    }
}

fn mode_of(mode: Option<i32>, default: u32) -> u32 {
    mode.and_then(|m| u32::try_from(m).ok()).map_or(default, |m| m & 0o777)
}

/// Keys of a ConfigMap or Secret as files: every key, or the listed `items` (each must exist
/// unless the source is optional).
fn key_files(
    what: &str,
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    optional: bool,
    default_mode: u32,
) -> Result<Vec<VolumeFile>, String> {
    let Some(items) = items.filter(|i| !i.is_empty()) else {
        return Ok(data
            .iter()
            .map(|(key, bytes)| VolumeFile {
                path: key.clone(),
                data: bytes.clone(),
                mode: default_mode,
            })
            .collect());
    };
    let mut out = Vec::new();
    for item in items {
        match data.get(&item.key) {
            Some(bytes) => out.push(VolumeFile {
                path: item.path.clone(),
                data: bytes.clone(),
                mode: mode_of(item.mode, default_mode),
            }),
            None if optional => {}
            None => return Err(format!("{what} references non-existent {what} key: {}", item.key)),
        }
    }
    Ok(out)
}

fn config_map_data(map: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let text = map
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()));
    let binary = map.binary_data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone()));
    text.chain(binary).collect()
}

fn secret_data(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    let data = secret.data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone()));
    let text = secret
        .string_data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()));
    data.chain(text).collect()
}

/// The files of the ConfigMap or Secret (`kind`: `configmap` or `secret`) `name`, whose
/// data is `data` when it exists.
fn object_files(
    kind: &str,
    name: &str,
    data: Option<BTreeMap<String, Vec<u8>>>,
    items: Option<&[KeyToPath]>,
    optional: bool,
    mode: u32,
) -> Result<Vec<VolumeFile>, String> {
    match data {
        Some(data) => key_files(kind, &data, items, optional, mode),
        None if optional => Ok(Vec::new()),
        None => Err(format!("{kind} \"{name}\" not found")),
    }
}

impl Inputs {
    /// ConfigMap `name`'s keys (text and binary), if it exists.
    fn config_map(&self, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        self.config_maps.get(name)?.as_ref().map(config_map_data)
    }

    /// Secret `name`'s keys, if it exists.
    fn secret(&self, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        self.secrets.get(name)?.as_ref().map(secret_data)
    }
}

impl VolumeKind for ConfigMapVolumeSource {
    fn needs(&self, needs: &mut Needs) {
        needs.config_maps.insert(self.name.clone());
    }
    fn content(&self, _: &Pod, inputs: &Inputs) -> Result<Content, String> {
        let mode = mode_of(self.default_mode, DEFAULT_MODE);
        let optional = self.optional.unwrap_or(false);
        let data = inputs.config_map(&self.name);
        object_files("configmap", &self.name, data, self.items.as_deref(), optional, mode).map(files)
    }
}

impl VolumeKind for SecretVolumeSource {
    fn needs(&self, needs: &mut Needs) {
        needs.secrets.extend(self.secret_name.clone());
    }
    fn content(&self, _: &Pod, inputs: &Inputs) -> Result<Content, String> {
        let mode = mode_of(self.default_mode, DEFAULT_MODE);
        let optional = self.optional.unwrap_or(false);
        let name = self.secret_name.as_deref().unwrap_or_default();
        object_files(
            "secret",
            name,
            inputs.secret(name),
            self.items.as_deref(),
            optional,
            mode,
        )
        .map(files)
    }
}

impl VolumeKind for DownwardAPIVolumeSource {
    fn needs(&self, _: &mut Needs) {}
    fn content(&self, pod: &Pod, _: &Inputs) -> Result<Content, String> {
        let mode = mode_of(self.default_mode, DEFAULT_MODE);
        downward_files(self.items.as_deref().unwrap_or_default(), pod, mode).map(files)
    }
}

fn downward_files(items: &[DownwardAPIVolumeFile], pod: &Pod, default_mode: u32) -> Result<Vec<VolumeFile>, String> {
    items
        .iter()
        .map(|item| {
            let data = match (&item.field_ref, &item.resource_field_ref) {
                (Some(field), _) => pod_field(pod, &field.field_path)?,
                (None, Some(_)) => {
                    return Err(format!(
                        "the lab sets no resource limits, so resourceFieldRef ({}) has no value",
                        item.path
                    ));
                }
                (None, None) => return Err(format!("downwardAPI item {} names no field", item.path)),
            };
            Ok(VolumeFile {
                path: item.path.clone(),
                data: data.into_bytes(),
                mode: mode_of(item.mode, default_mode),
            })
        })
        .collect()
}

/// A metadata field of `pod` as the downward API renders it: maps as sorted `key="value"`
/// lines (values quoted as Go quotes them).
pub fn pod_field(pod: &Pod, path: &str) -> Result<String, String> {
    let meta = &pod.metadata;
    let map_line = |(k, v): (&String, &String)| format!("{k}={}", go_quote(v));
    let map =
        |m: Option<&BTreeMap<String, String>>| m.into_iter().flatten().map(map_line).collect::<Vec<_>>().join("\n");
    let subscript = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix("['"))
            .and_then(|rest| rest.strip_suffix("']"))
            .map(str::to_owned)
    };
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => map(meta.labels.as_ref()),
        "metadata.annotations" => map(meta.annotations.as_ref()),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()).unwrap_or_default(),
        "status.podIP" => status.and_then(|s| s.pod_ip.clone()).unwrap_or_default(),
        "status.hostIP" => status.and_then(|s| s.host_ip.clone()).unwrap_or_default(),
        _ => {
            if let Some(key) = subscript("metadata.labels") {
                meta.labels
                    .as_ref()
                    .and_then(|m| m.get(&key))
                    .cloned()
                    .unwrap_or_default()
            } else if let Some(key) = subscript("metadata.annotations") {
                meta.annotations
                    .as_ref()
                    .and_then(|m| m.get(&key))
                    .cloned()
                    .unwrap_or_default()
            } else {
                return Err(format!("unsupported fieldPath: {path}"));
            }
        }
    })
}

/// `strconv.Quote` for the text the downward API writes: double quotes, Go's escapes.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn token_key(projection: &ServiceAccountTokenProjection) -> TokenKey {
    TokenKey {
        audience: projection.audience.clone().filter(|a| !a.is_empty()),
        expiration_seconds: projection.expiration_seconds.unwrap_or(DEFAULT_TOKEN_SECONDS),
    }
}

impl VolumeKind for ProjectedVolumeSource {
    fn needs(&self, needs: &mut Needs) {
        for source in self.sources.iter().flatten() {
            if let Some(ConfigMapProjection { name, .. }) = &source.config_map {
                needs.config_maps.insert(name.clone());
            }
            if let Some(SecretProjection { name, .. }) = &source.secret {
                needs.secrets.insert(name.clone());
            }
            if let Some(token) = &source.service_account_token {
                needs.tokens.insert(token_key(token));
            }
        }
    }
    fn content(&self, pod: &Pod, inputs: &Inputs) -> Result<Content, String> {
        let mode = mode_of(self.default_mode, DEFAULT_MODE);
        let (mut out, mut notes) = (Vec::new(), Vec::new());
        for source in self.sources.iter().flatten() {
            if let Some(c) = &source.config_map {
                let optional = c.optional.unwrap_or(false);
                let data = inputs.config_map(&c.name);
                out.extend(object_files(
                    "configmap",
                    &c.name,
                    data,
                    c.items.as_deref(),
                    optional,
                    mode,
                )?);
            } else if let Some(s) = &source.secret {
                let optional = s.optional.unwrap_or(false);
                let data = inputs.secret(&s.name);
                out.extend(object_files(
                    "secret",
                    &s.name,
                    data,
                    s.items.as_deref(),
                    optional,
                    mode,
                )?);
            } else if let Some(d) = &source.downward_api {
                out.extend(downward_files(d.items.as_deref().unwrap_or_default(), pod, mode)?);
            } else if let Some(t) = &source.service_account_token {
                match inputs.tokens.get(&token_key(t)) {
                    Some(Ok(token)) => out.push(VolumeFile {
                        path: t.path.clone(),
                        data: token.clone().into_bytes(),
                        mode,
                    }),
                    Some(Err(why)) => notes.push(format!("no service account token at {}: {why}", t.path)),
                    None => return Err(format!("no token was fetched for {}", t.path)),
                }
            } else {
                return Err(
                    "the lab projects configMap, secret, downwardAPI and serviceAccountToken sources only".into(),
                );
            }
        }
        Ok(Content::Files { files: out, notes })
    }
}

/// Whether `path` is relative and stays inside (no `..`, not empty).
fn is_inside(path: &str) -> bool {
    let p = Path::new(path);
    !path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)))
}

/// Makes volume `content` in `dir` (the volume's directory). An emptyDir is made once (0777,
/// as upstream's); files are written as upstream's atomic writer lays them out, into
/// `..<stamp>` (a fresh name per write: the caller's time), then `..data` is switched to it.
pub fn write(dir: &Path, content: &Content, stamp: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let files = match content {
        Content::EmptyDir => {
            if !dir.is_dir() {
                std::fs::create_dir_all(dir)?;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))?;
            }
            return Ok(());
        }
        Content::Files { files, .. } => files,
    };
    if let Some(bad) = files.iter().find(|f| !is_inside(&f.path)) {
        return Err(std::io::Error::other(format!(
            "volume path {:?} leaves the volume",
            bad.path
        )));
    }
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    let generation = format!("..{stamp}");
    let target = dir.join(&generation);
    std::fs::create_dir(&target)?;
    for file in files {
        let path = target.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // private from the first byte, then the mode asked for (the umask may not narrow it)
        let mut out = std::fs::OpenOptions::new();
        std::os::unix::fs::OpenOptionsExt::mode(&mut out, 0o600);
        std::io::Write::write_all(&mut out.write(true).create_new(true).open(&path)?, &file.data)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(file.mode))?;
    }
    let staged = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&staged);
    std::os::unix::fs::symlink(&generation, &staged)?;
    std::fs::rename(&staged, dir.join("..data"))?;
    let tops: BTreeSet<&str> = files.iter().filter_map(|f| f.path.split('/').next()).collect();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("..") {
            if name != "..data" && name != generation {
                std::fs::remove_dir_all(entry.path())?;
            }
        } else if !tops.contains(name.as_str()) {
            std::fs::remove_file(entry.path())?;
        }
    }
    for top in tops {
        let link = dir.join(top);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(PathBuf::from("..data").join(top), link)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
