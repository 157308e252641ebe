//! A running `svcnet apiserver` for tests: started on a free loopback port with a fresh data
//! directory, stopped on drop; JSON requests through curl with the server's CA and token.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

pub struct ApiServer {
    child: Child,
    /// Flags beyond the data directory and address, kept for restarts.
    extra: Vec<String>,
    pub url: String,
    pub kubeconfig: PathBuf,
    pub dir: tempfile::TempDir,
}

impl ApiServer {
    pub fn start() -> Self {
        Self::start_in(tempfile::tempdir().unwrap())
    }

    /// Starts the server on `dir` as its data directory.
    pub fn start_in(dir: tempfile::TempDir) -> Self {
        Self::start_with_in(dir, &[])
    }

    /// Starts the server with extra flags (`--service-cluster-ip-range ...`).
    #[allow(dead_code)]
    pub fn start_with(extra: &[&str]) -> Self {
        Self::start_with_in(tempfile::tempdir().unwrap(), extra)
    }

    fn start_with_in(dir: tempfile::TempDir, extra: &[&str]) -> Self {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let (child, url, kubeconfig) = spawn(dir.path(), "127.0.0.1:0", &extra);
        ApiServer {
            child,
            extra,
            url,
            kubeconfig,
            dir,
        }
    }

    /// Kills the server (SIGKILL) and starts it again on the same data directory and port.
    #[allow(dead_code)]
    pub fn restart(&mut self) {
        self.kill();
        self.start_again();
    }

    /// Kills the server (SIGKILL); [`start_again`](Self::start_again) brings it back.
    #[allow(dead_code)]
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same data directory and port (clients keep their
    /// kubeconfig).
    #[allow(dead_code)]
    pub fn start_again(&mut self) {
        let listen = self.url.trim_start_matches("https://").to_owned();
        let (child, url, kubeconfig) = spawn(self.dir.path(), &listen, &self.extra);
        self.child = child;
        self.url = url;
        self.kubeconfig = kubeconfig;
    }

    /// The server's process id.
    #[allow(dead_code)]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("token")).unwrap()
    }

    /// curl with the server's CA and token; returns (HTTP code, body).
    pub fn curl(&self, args: &[&str]) -> (u16, String) {
        let out = Command::new("curl")
            .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--cacert"])
            .arg(self.dir.path().join("ca.crt"))
            .args(["-H", &format!("Authorization: Bearer {}", self.token())])
            .args(args)
            .output()
            .expect("curl is needed");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (code.parse().unwrap(), body.to_owned())
    }

    /// A request with a JSON body that must answer `want`; returns the response body.
    #[allow(dead_code)]
    pub fn send(&self, method: &str, path: &str, body: &Value, want: u16) -> Value {
        let url = format!("{}{path}", self.url);
        let (code, text) = self.curl(&[
            "-X",
            method,
            &url,
            "-H",
            "Content-Type: application/json",
            "-d",
            &body.to_string(),
        ]);
        assert_eq!(code, want, "{method} {path}: {text}");
        serde_json::from_str(&text).unwrap()
    }
}

/// Starts `svcnet apiserver` on `dir` listening on `listen`; returns the process, its URL and its kubeconfig once it
/// serves.
fn spawn(dir: &std::path::Path, listen: &str, extra: &[String]) -> (Child, String, PathBuf) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_svcnet"))
        .args(["apiserver", "--data-dir"])
        .arg(dir)
        .args(["--listen", listen])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    let Some(url) = first.strip_prefix("serving on ") else {
        let _ = child.kill();
        panic!("svcnet apiserver did not start: {first:?}");
    };
    let url = url.to_owned();
    let kubeconfig = PathBuf::from(lines.next().unwrap().unwrap().strip_prefix("kubeconfig: ").unwrap());
    (child, url, kubeconfig)
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
