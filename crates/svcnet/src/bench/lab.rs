//! A lab a benchmark brings up for itself (`svcnet lab up` under a name of this run, on the
//! chosen control plane and proxy) and always takes down, also on failure.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::ValueEnum;

use crate::lab::control_plane::ControlPlane;
use crate::lab::daemon::{Ready, read_ready};
use crate::lab::plan::state_dir;
use crate::lab::supervisor::NodeProxy;

/// How `value` is written on the command line.
pub fn flag_value(value: impl ValueEnum) -> String {
    value
        .to_possible_value()
        .map(|p| p.get_name().to_owned())
        .unwrap_or_default()
}

/// What lab to bring up.
pub struct LabSetup {
    pub nodes: usize,
    pub control_plane: ControlPlane,
    pub proxy: NodeProxy,
    /// Upstream's binaries.
    pub upstream_bin: PathBuf,
}

/// A lab of this run, taken down on drop.
pub struct BenchLab {
    pub name: String,
}

impl BenchLab {
    pub fn up(setup: &LabSetup) -> Result<(Self, Ready)> {
        let exe = std::env::current_exe()?;
        let lab = BenchLab {
            name: format!("b{}", std::process::id()),
        };
        let out = Command::new(&exe)
            .args(["lab", "up", "--name", &lab.name, "--nodes", &setup.nodes.to_string()])
            .args(["--control-plane", &flag_value(setup.control_plane)])
            .args(["--proxy", &flag_value(setup.proxy)])
            // the cluster DNS would watch every Service too: not what is measured
            .arg("--no-dns")
            .arg("--upstream-bin")
            .arg(&setup.upstream_bin)
            .output()?;
        if !out.status.success() {
            bail!("lab up failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let ready = read_ready(&state_dir(&lab.name)).context("the lab is not ready")?;
        Ok((lab, ready))
    }
}

impl Drop for BenchLab {
    fn drop(&mut self) {
        if let Ok(exe) = std::env::current_exe() {
            let _ = Command::new(exe).args(["lab", "down", "--name", &self.name]).output();
        }
    }
}
