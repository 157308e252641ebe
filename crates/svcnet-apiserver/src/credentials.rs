//! The data directory's credentials, created on first start and reused after: a CA, a serving
//! certificate it signed (for `localhost` and the listen address), and the admin's bearer
//! token; plus `kubeconfig`, rewritten at every start so it names the current address.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rand::Rng;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

pub struct Credentials {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    pub token: String,
    pub kubeconfig: PathBuf,
}

fn write_private(path: &Path, contents: &str) -> io::Result<()> {
    fs::write(path, contents)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
}

fn generate(dir: &Path, hosts: &[String]) -> io::Result<()> {
    let err = |e: rcgen::Error| io::Error::other(e.to_string());
    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "svcnet-ca");
    let ca_cert = ca.self_signed(&ca_key).map_err(err)?;
    let key = KeyPair::generate().map_err(err)?;
    let mut params = CertificateParams::new(hosts.to_vec()).map_err(err)?;
    params.distinguished_name.push(DnType::CommonName, "svcnet-apiserver");
    let cert = params.signed_by(&key, &ca_cert, &ca_key).map_err(err)?;
    let token: String = (0..32).map(|_| format!("{:02x}", rand::rng().random::<u8>())).collect();
    fs::write(dir.join("ca.crt"), ca_cert.pem())?;
    fs::write(dir.join("apiserver.crt"), cert.pem())?;
    write_private(&dir.join("apiserver.key"), &key.serialize_pem())?;
    write_private(&dir.join("token"), &token)
}

/// Loads the credentials in `dir`, creating them first if absent, and writes `kubeconfig`
/// for `server_url`. `hosts` are the names and addresses the certificate is valid for.
pub fn ensure(dir: &Path, server_url: &str, hosts: &[String]) -> io::Result<Credentials> {
    fs::create_dir_all(dir)?;
    if !dir.join("token").exists() {
        generate(dir, hosts)?;
    }
    let ca_path = dir.join("ca.crt").canonicalize()?;
    let creds = Credentials {
        ca_pem: fs::read_to_string(&ca_path)?,
        cert_pem: fs::read_to_string(dir.join("apiserver.crt"))?,
        key_pem: fs::read_to_string(dir.join("apiserver.key"))?,
        token: fs::read_to_string(dir.join("token"))?.trim().to_owned(),
        kubeconfig: dir.join("kubeconfig"),
    };
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: svcnet\n  cluster:\n    server: {server_url}\n    certificate-authority: {}\nusers:\n- name: admin\n  user:\n    token: {}\ncontexts:\n- name: svcnet\n  context:\n    cluster: svcnet\n    user: admin\n    namespace: default\ncurrent-context: svcnet\n",
        ca_path.display(),
        creds.token
    );
    write_private(&creds.kubeconfig, &kubeconfig)?;
    Ok(creds)
}
