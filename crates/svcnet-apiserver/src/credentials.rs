//! The data directory's credentials: a CA (created on first start, kept for ten years), the
//! admin's bearer token (created on first start), a serving certificate the CA signs anew at
//! every start (valid for a year, for `localhost` and the listen address), and `kubeconfig`,
//! rewritten at every start so it names the current address.
//!
//! Nothing secret is ever readable by another user, not even for an instant: the directory is
//! made `0700`, and each private file is created `0600` under a temporary name and renamed into
//! place ([`write_file`]), so no reader can open a half-written or widely readable file.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::Rng;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use time::{Duration, OffsetDateTime};

pub struct Credentials {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    pub token: String,
    pub kubeconfig: PathBuf,
}

/// Mode of the data directory and of every file holding a secret.
pub const PRIVATE_DIR: u32 = 0o700;
pub const PRIVATE_FILE: u32 = 0o600;
/// Certificates are public.
const PUBLIC_FILE: u32 = 0o644;

/// How long the CA is valid; the serving certificate is reissued at every start.
const CA_VALIDITY: Duration = Duration::days(3650);
const SERVING_VALIDITY: Duration = Duration::days(365);
/// Certificates start a little in the past, for clocks that are slightly behind.
const CLOCK_SKEW: Duration = Duration::hours(1);

const CA_NAME: &str = "svcnet-ca";

/// Creates `dir` (and its missing parents) with mode `0700`, and tightens it to `0700` if it
/// already existed, before anything is written into it.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new().recursive(true).mode(PRIVATE_DIR).create(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(PRIVATE_DIR))
}

/// Writes `contents` to `path` with `mode` from the first byte: a new file is created with that
/// mode under a temporary name, synced, then renamed over `path`.
pub fn write_file(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let mut temporary_name = file_name.to_owned();
    temporary_name.push(format!(".tmp-{}", std::process::id()));
    let temporary = path.with_file_name(temporary_name);
    // a leftover of a crashed write of ours may exist; it is ours to remove
    let _ = fs::remove_file(&temporary);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temporary)?;
    let written = file.write_all(contents).and_then(|()| file.sync_all());
    if let Err(e) = written.and_then(|()| fs::rename(&temporary, path)) {
        let _ = fs::remove_file(&temporary);
        return Err(e);
    }
    Ok(())
}

fn rcgen_error(e: rcgen::Error) -> io::Error {
    io::Error::other(e.to_string())
}

fn ca_params(now: OffsetDateTime) -> Result<CertificateParams, rcgen::Error> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, CA_NAME);
    ca.not_before = now - CLOCK_SKEW;
    ca.not_after = now + CA_VALIDITY;
    Ok(ca)
}

/// The CA and the admin token, created once per data directory.
fn create_authority(dir: &Path, now: OffsetDateTime) -> io::Result<()> {
    let ca_key = KeyPair::generate().map_err(rcgen_error)?;
    let ca_cert = ca_params(now)
        .and_then(|p| p.self_signed(&ca_key))
        .map_err(rcgen_error)?;
    let token: String = (0..32).map(|_| format!("{:02x}", rand::rng().random::<u8>())).collect();
    write_file(&dir.join("ca.key"), ca_key.serialize_pem().as_bytes(), PRIVATE_FILE)?;
    write_file(&dir.join("ca.crt"), ca_cert.pem().as_bytes(), PUBLIC_FILE)?;
    // the token last: its presence marks a complete authority
    write_file(&dir.join("token"), token.as_bytes(), PRIVATE_FILE)
}

/// A serving certificate for `hosts`, valid from `now` for [`SERVING_VALIDITY`], signed by the
/// CA key in `dir`. Returns (certificate, key) as PEM.
fn issue_serving_certificate(dir: &Path, hosts: &[String], now: OffsetDateTime) -> io::Result<(String, String)> {
    issue(dir, "svcnet-apiserver", hosts, &[], now)
}

/// A certificate named `common_name` for `hosts` with `usages` (none: any), valid from `now`
/// for [`SERVING_VALIDITY`], signed by the CA key in `dir`. Returns (certificate, key) as PEM.
fn issue(
    dir: &Path,
    common_name: &str,
    hosts: &[String],
    usages: &[ExtendedKeyUsagePurpose],
    now: OffsetDateTime,
) -> io::Result<(String, String)> {
    let ca_key = KeyPair::from_pem(&fs::read_to_string(dir.join("ca.key"))?).map_err(rcgen_error)?;
    // the issuer's name and key are what a signature names; the stored ca.crt stays the anchor
    let issuer = ca_params(now)
        .and_then(|p| p.self_signed(&ca_key))
        .map_err(rcgen_error)?;
    let key = KeyPair::generate().map_err(rcgen_error)?;
    let mut params = CertificateParams::new(hosts.to_vec()).map_err(rcgen_error)?;
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.extended_key_usages = usages.to_vec();
    params.not_before = now - CLOCK_SKEW;
    params.not_after = now + SERVING_VALIDITY;
    let cert = params.signed_by(&key, &issuer, &ca_key).map_err(rcgen_error)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A certificate for `name` that both serves `hosts` and authenticates as a client, signed by
/// the CA in `dir` (made by [`ensure`] first): for a store such as etcd that must accept only
/// clients holding the CA's certificates. Written as `<name>.crt` (public) and `<name>.key`
/// (private) in `dir`; returns their paths.
pub fn issue_mutual_tls(dir: &Path, name: &str, hosts: &[String]) -> io::Result<(PathBuf, PathBuf)> {
    let usages = [ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let (cert, key) = issue(dir, name, hosts, &usages, OffsetDateTime::now_utc())?;
    let (cert_path, key_path) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    write_file(&cert_path, cert.as_bytes(), PUBLIC_FILE)?;
    write_file(&key_path, key.as_bytes(), PRIVATE_FILE)?;
    Ok((cert_path, key_path))
}

/// Loads the credentials in `dir`, creating the CA and token first if absent, issues a fresh
/// serving certificate, and writes `kubeconfig` for `server_url`. `hosts` are the names and
/// addresses the certificate is valid for.
pub fn ensure(dir: &Path, server_url: &str, hosts: &[String]) -> io::Result<Credentials> {
    private_dir(dir)?;
    let now = OffsetDateTime::now_utc();
    // a data directory of an older svcnet has no CA key: start a new authority
    if !dir.join("token").exists() || !dir.join("ca.key").exists() {
        create_authority(dir, now)?;
    }
    let (cert_pem, key_pem) = issue_serving_certificate(dir, hosts, now)?;
    write_file(&dir.join("apiserver.crt"), cert_pem.as_bytes(), PUBLIC_FILE)?;
    write_file(&dir.join("apiserver.key"), key_pem.as_bytes(), PRIVATE_FILE)?;
    let ca_path = dir.join("ca.crt").canonicalize()?;
    let creds = Credentials {
        ca_pem: fs::read_to_string(&ca_path)?,
        cert_pem,
        key_pem,
        token: fs::read_to_string(dir.join("token"))?.trim().to_owned(),
        kubeconfig: dir.join("kubeconfig"),
    };
    write_kubeconfig(&creds.kubeconfig, server_url, &ca_path, "admin", &creds.token)?;
    Ok(creds)
}

/// Writes (privately) a kubeconfig for `user` holding bearer `token`, trusting the CA at
/// `ca_path` for `server_url`, in namespace `default`.
pub fn write_kubeconfig(path: &Path, server_url: &str, ca_path: &Path, user: &str, token: &str) -> io::Result<()> {
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: svcnet\n  cluster:\n    server: {server_url}\n    certificate-authority: {}\nusers:\n- name: {user}\n  user:\n    token: {token}\ncontexts:\n- name: svcnet\n  context:\n    cluster: svcnet\n    user: {user}\n    namespace: default\ncurrent-context: svcnet\n",
        ca_path.display(),
    );
    write_file(path, kubeconfig.as_bytes(), PRIVATE_FILE)
}

/// A key pair for signing ServiceAccount tokens, created once in `dir`: `sa.key` (private) and
/// `sa.pub` (its public key, which verifies the tokens). What an upstream kube-apiserver run
/// beside ours (the lab's upstream control plane) signs with. Returns both paths.
pub fn service_account_key(dir: &Path) -> io::Result<(PathBuf, PathBuf)> {
    private_dir(dir)?;
    let (private, public) = (dir.join("sa.key"), dir.join("sa.pub"));
    if !private.exists() || !public.exists() {
        let key = KeyPair::generate().map_err(rcgen_error)?;
        write_file(&private, key.serialize_pem().as_bytes(), PRIVATE_FILE)?;
        write_file(&public, key.public_key_pem().as_bytes(), PUBLIC_FILE)?;
    }
    Ok((private, public))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn mutual_tls_certificates_are_signed_and_their_keys_private() {
        let dir = tempfile::tempdir().unwrap();
        ensure(dir.path(), "https://127.0.0.1:1", &["localhost".into()]).unwrap();
        let (cert, key) = issue_mutual_tls(dir.path(), "etcd", &["127.0.0.1".into()]).unwrap();
        assert_eq!((mode(&cert), mode(&key)), (0o644, 0o600));
        assert!(
            fs::read_to_string(&cert)
                .unwrap()
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
    }

    #[test]
    fn the_service_account_key_is_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (private, public) = service_account_key(dir.path()).unwrap();
        assert_eq!((mode(&private), mode(&public)), (0o600, 0o644));
        let first = fs::read_to_string(&private).unwrap();
        assert!(first.starts_with("-----BEGIN PRIVATE KEY-----"), "{first}");
        assert!(
            fs::read_to_string(&public)
                .unwrap()
                .starts_with("-----BEGIN PUBLIC KEY-----")
        );
        service_account_key(dir.path()).unwrap();
        assert_eq!(fs::read_to_string(&private).unwrap(), first);
    }

    #[test]
    fn secrets_and_directory_are_private_and_certificates_public() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("data");
        ensure(&dir, "https://127.0.0.1:6443", &["localhost".into()]).unwrap();
        assert_eq!(mode(&dir), 0o700);
        for secret in ["token", "ca.key", "apiserver.key", "kubeconfig"] {
            assert_eq!(mode(&dir.join(secret)), 0o600, "{secret}");
        }
        for public in ["ca.crt", "apiserver.crt"] {
            assert_eq!(mode(&dir.join(public)), 0o644, "{public}");
        }
        // no temporary file is left behind
        let names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".tmp-")), "{names:?}");
    }

    #[test]
    fn a_widely_readable_existing_directory_and_file_are_tightened() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        fs::write(&kubeconfig, "old").unwrap();
        fs::set_permissions(&kubeconfig, fs::Permissions::from_mode(0o644)).unwrap();
        ensure(dir.path(), "https://127.0.0.1:6443", &["localhost".into()]).unwrap();
        assert_eq!(mode(dir.path()), 0o700);
        assert_eq!(mode(&kubeconfig), 0o600);
    }

    #[test]
    fn restarts_keep_the_authority_and_token_and_reissue_the_serving_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let first = ensure(dir.path(), "https://127.0.0.1:1", &["localhost".into()]).unwrap();
        let second = ensure(dir.path(), "https://127.0.0.1:2", &["localhost".into()]).unwrap();
        assert_eq!(first.token, second.token);
        assert_eq!(first.ca_pem, second.ca_pem);
        assert_ne!(first.key_pem, second.key_pem);
        assert!(
            fs::read_to_string(&second.kubeconfig)
                .unwrap()
                .contains("https://127.0.0.1:2")
        );
    }
}
