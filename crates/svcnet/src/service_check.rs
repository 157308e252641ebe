//! `svcnet service check`: the Service write path (defaulting, allocation, validation) on
//! manifests, without a server.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Service;
use serde::Deserialize;
use svcnet_core::alloc::{Allocators, PortRange, RandomSource};
use svcnet_core::registry::plan_write;

/// Randomness from the operating system's generator, for allocation.
struct OsRandom(rand::rngs::ThreadRng);

impl RandomSource for OsRandom {
    fn below(&mut self, bound: usize) -> usize {
        rand::Rng::random_range(&mut self.0, 0..bound)
    }
}

fn read(path: &PathBuf) -> Result<String> {
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading standard input")?;
        Ok(s)
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
    }
}

fn documents(text: &str) -> Result<Vec<Service>> {
    let mut out = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let value = serde_yaml_ng::Value::deserialize(doc).context("parsing YAML")?;
        if value.is_null() {
            continue;
        }
        let mut svc: Service = serde_yaml_ng::from_value(value).context("not a Service")?;
        svc.metadata.namespace.get_or_insert_with(|| "default".to_owned());
        out.push(svc);
    }
    Ok(out)
}

pub fn run(files: &[PathBuf], cidrs: &[ipnet::IpNet], node_ports: &str) -> Result<ExitCode> {
    let range: PortRange = node_ports.parse()?;
    let mut allocators = Allocators::new(cidrs, range)?;
    let mut rng = OsRandom(rand::rng());
    let mut failed = false;
    for file in files {
        for svc in documents(&read(file)?).with_context(|| format!("in {}", file.display()))? {
            match plan_write(None, svc, &allocators, &mut rng) {
                Ok(planned) => {
                    allocators.commit(&planned.changes)?;
                    print!("---\n{}", serde_yaml_ng::to_string(&planned.service)?);
                }
                Err(status) => {
                    failed = true;
                    println!("---\n# rejected ({})\n{}", status.code, status.to_json());
                }
            }
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
