//! Backends apply planned operations to the kernel as one atomic transaction.

use std::io::Write;
use std::process::{Command, Stdio};

use thiserror::Error;

use crate::diff::Op;
use crate::ir::RulesetView;
use crate::nft_text;

#[derive(Debug, Error)]
pub enum BackendError {
    #[error("cannot run {program}: {source}")]
    Spawn { program: String, source: std::io::Error },
    #[error("nft rejected the transaction: {stderr}")]
    Rejected { stderr: String },
    #[error("netlink: {what}: {source}")]
    Netlink { what: String, source: std::io::Error },
    #[error("no full sync has been applied yet")]
    NotInitialized,
}

/// Something that can apply a transaction of operations atomically.
pub trait Backend {
    /// Applies every operation, or none.
    fn apply(&mut self, ops: &[Op]) -> Result<(), BackendError>;

    /// Replaces our tables with `ruleset` in one transaction.
    fn replace(&mut self, ruleset: &dyn RulesetView) -> Result<(), BackendError>;
}

impl<B: Backend + ?Sized> Backend for Box<B> {
    fn apply(&mut self, ops: &[Op]) -> Result<(), BackendError> {
        (**self).apply(ops)
    }

    fn replace(&mut self, ruleset: &dyn RulesetView) -> Result<(), BackendError> {
        (**self).replace(ruleset)
    }
}

/// The backends to choose from (`--backend`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// nf_tables over netlink: no external program.
    Netlink,
    /// `nft -f -`: a debugging aid, and the reference the netlink backend is checked against.
    NftText,
}

impl BackendKind {
    pub const ALL: [BackendKind; 2] = [BackendKind::NftText, BackendKind::Netlink];

    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Netlink => "netlink",
            BackendKind::NftText => "nft-text",
        }
    }

    /// This backend acting in the named network namespace, or in the current one.
    pub fn open(self, netns: Option<&str>) -> Result<Box<dyn Backend + Send>, BackendError> {
        Ok(match (self, netns) {
            (BackendKind::Netlink, Some(ns)) => Box::new(crate::netlink::Netlink::in_netns(ns)?),
            (BackendKind::Netlink, None) => Box::new(crate::netlink::Netlink::open(None)?),
            (BackendKind::NftText, Some(ns)) => Box::new(NftText::in_netns(ns)),
            (BackendKind::NftText, None) => Box::new(NftText::new(vec!["nft".into()])),
        })
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for BackendKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        BackendKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("unknown backend {s:?} (netlink or nft-text)"))
    }
}

/// Pipes nft scripts to `nft -f -`. `command` is the program and leading arguments, e.g.
/// `["nft"]`, or `["ip", "netns", "exec", "node1", "nft"]` to act in another namespace.
#[derive(Clone, Debug)]
pub struct NftText {
    pub command: Vec<String>,
}

impl NftText {
    pub fn new(command: Vec<String>) -> Self {
        assert!(!command.is_empty(), "a command is needed");
        NftText { command }
    }

    /// `nft` run inside the named network namespace (`ip netns exec NS nft`).
    pub fn in_netns(ns: &str) -> Self {
        NftText::new(vec![
            "ip".into(),
            "netns".into(),
            "exec".into(),
            ns.to_owned(),
            "nft".into(),
        ])
    }

    /// Runs `nft` with `args` (through the same command prefix) and returns its output.
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<String, BackendError> {
        match stdin {
            Some(input) => self.run_feeding(args, &mut |w| w.write_str(input)),
            None => self.run_feeding(args, &mut |_| Ok(())),
        }
    }

    /// Runs `nft` with `args`, streaming its standard input from `feed` as it is produced.
    pub fn run_feeding(
        &self,
        args: &[&str],
        feed: &mut dyn FnMut(&mut dyn std::fmt::Write) -> std::fmt::Result,
    ) -> Result<String, BackendError> {
        let spawn_error = |source| BackendError::Spawn {
            program: self.command[0].clone(),
            source,
        };
        let mut child = Command::new(&self.command[0])
            .args(&self.command[1..])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_error)?;
        {
            let pipe = child.stdin.take().expect("stdin was piped");
            let mut writer = FmtToIo(std::io::BufWriter::with_capacity(1 << 16, pipe));
            // nft reads its whole input before acting, so writing cannot deadlock on its output;
            // a failed write shows up as nft's error below
            let _ = feed(&mut writer).map(|()| writer.0.flush());
        }
        let out = child.wait_with_output().map_err(spawn_error)?;
        if !out.status.success() {
            return Err(BackendError::Rejected {
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// Lets text renderers write into a byte stream.
struct FmtToIo<W: Write>(W);

impl<W: Write> std::fmt::Write for FmtToIo<W> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.write_all(s.as_bytes()).map_err(|_| std::fmt::Error)
    }
}

impl Backend for NftText {
    fn apply(&mut self, ops: &[Op]) -> Result<(), BackendError> {
        if ops.is_empty() {
            return Ok(());
        }
        self.run(&["-f", "-"], Some(&nft_text::script(ops))).map(drop)
    }

    /// Renders straight from the ruleset, without an intermediate copy of every element.
    fn replace(&mut self, ruleset: &dyn RulesetView) -> Result<(), BackendError> {
        self.run(&["-f", "-"], Some(&nft_text::replace_script(ruleset)))
            .map(drop)
    }
}
