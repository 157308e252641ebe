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
}

/// Something that can apply a transaction of operations atomically.
pub trait Backend {
    /// Applies every operation, or none.
    fn apply(&mut self, ops: &[Op]) -> Result<(), BackendError>;

    /// Replaces our tables with `ruleset` in one transaction.
    fn replace(&mut self, ruleset: &dyn RulesetView) -> Result<(), BackendError>;
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

    /// Runs `nft` with `args` (through the same command prefix) and returns its output.
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<String, BackendError> {
        let mut child = Command::new(&self.command[0])
            .args(&self.command[1..])
            .args(args)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| BackendError::Spawn {
                program: self.command[0].clone(),
                source,
            })?;
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("stdin was piped");
            // a failed write shows up as nft's error below
            let _ = pipe.write_all(input.as_bytes());
        }
        let out = child.wait_with_output().map_err(|source| BackendError::Spawn {
            program: self.command[0].clone(),
            source,
        })?;
        if !out.status.success() {
            return Err(BackendError::Rejected {
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
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
