//! An explanation as data (`-o json`) and as text: the API view, the rule walk, the verdict,
//! and the kernel check.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use serde::Serialize;
use svcnet_dataplane::eval::{Evaluation, Fate};

use super::kernel::KernelCheck;
use super::target::Source;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub from: Source,
    pub to: SocketAddr,
    pub protocol: String,
    pub service: Option<ServiceView>,
    pub walk: Vec<Path>,
    /// The ends, each with its probability.
    pub verdicts: Vec<Verdict>,
    pub kernel: Result<KernelCheck, String>,
    /// `--probe`: a real connection, traced.
    pub probe: Option<Result<super::probe::Probe, String>>,
    pub notes: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceView {
    pub service: String,
    pub port: String,
    pub service_type: String,
    pub reached_as: String,
    pub external_traffic_policy: String,
    pub internal_traffic_policy: String,
    pub session_affinity: Option<String>,
    /// Which endpoints the rules pick from, and why.
    pub view: String,
    pub endpoints: Vec<EndpointView>,
    pub when_none: Option<String>,
    /// For a NodePort: the node addresses that serve it on this node.
    pub node_port_addresses: Vec<IpAddr>,
    pub notes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct EndpointView {
    pub address: SocketAddr,
    pub pod: Option<String>,
    pub node: Option<String>,
    pub used: bool,
    pub reason: String,
}

/// One path through the rules (a random choice makes several).
#[derive(Debug, Serialize)]
pub struct Path {
    pub probability: f64,
    pub steps: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    pub probability: f64,
    /// `dnat`, `delivered`, `forwarded`, `dropped` or `rejected`.
    pub fate: String,
    pub endpoint: Option<SocketAddr>,
    pub masquerade: bool,
    pub why: String,
}

/// The walk's paths and verdicts.
pub fn walk(evaluation: &Evaluation, name_of: impl Fn(SocketAddr) -> Option<String>) -> (Vec<Path>, Vec<Verdict>) {
    let mut paths = Vec::new();
    let mut verdicts: Vec<Verdict> = Vec::new();
    let mut branches: Vec<_> = evaluation.branches.iter().collect();
    branches.sort_by_key(|b| (b.dnat, b.fate));
    for b in branches {
        let steps = b
            .steps
            .iter()
            .map(|s| {
                let mark = if s.matched { "=>" } else { "  " };
                let note = if s.note.is_empty() {
                    String::new()
                } else {
                    format!("  [{}]", s.note)
                };
                format!(
                    "{mark} {:<11} {}[{}]: {}{note}",
                    s.hook.keyword(),
                    s.chain,
                    s.rule,
                    s.text
                )
            })
            .collect();
        paths.push(Path {
            probability: b.probability,
            steps,
        });
        let masquerade_by = b
            .steps
            .iter()
            .filter(|s| s.matched && s.note.contains("masquerade"))
            .map(|s| s.chain.as_str())
            .next_back();
        let marked_by = b
            .steps
            .iter()
            .find(|s| s.matched && s.note.contains("mark bit"))
            .map(|s| format!("{}[{}]", s.chain, s.rule));
        let why = match (b.fate, b.dnat, b.masquerade) {
            (Fate::Rejected, _, _) => "rejected by a REJECT rule: the client sees \"connection refused\"".to_owned(),
            (Fate::Dropped, _, _) => "dropped: the client sees a timeout".to_owned(),
            (_, Some(ep), masq) => {
                let who = name_of(ep).map(|n| format!(" ({n})")).unwrap_or_default();
                let masq = match (masq, marked_by) {
                    (true, Some(rule)) => format!("; masqueraded: {rule} marked it, {} rewrote the source", masquerade_by.unwrap_or("postrouting")),
                    (true, None) => "; masqueraded (hairpin: the endpoint is the client itself)".to_owned(),
                    (false, _) => "; the client's address is kept".to_owned(),
                };
                format!("DNAT to {ep}{who}{masq}")
            }
            (Fate::Delivered, None, _) => "no rule rewrote it: delivered to the node itself (a process listening there answers, or the node refuses)".to_owned(),
            (_, None, _) => "no rule rewrote it: routed on unchanged".to_owned(),
        };
        let fate = match (b.fate, b.dnat) {
            (Fate::Rejected, _) => "rejected",
            (Fate::Dropped, _) => "dropped",
            (_, Some(_)) => "dnat",
            (Fate::Delivered, None) => "delivered",
            (Fate::Forwarded, None) => "forwarded",
        };
        match verdicts.iter_mut().find(|v| v.why == why) {
            Some(v) => v.probability += b.probability,
            None => verdicts.push(Verdict {
                probability: b.probability,
                fate: fate.to_owned(),
                endpoint: b.dnat,
                masquerade: b.masquerade,
                why,
            }),
        }
    }
    (paths, verdicts)
}

impl Report {
    pub fn text(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "{} ({}) -> {} {}, through the rules of node {}",
            self.from.name, self.from.address, self.to, self.protocol, self.from.node
        );
        for n in &self.notes {
            let _ = writeln!(t, "  note: {n}");
        }
        match &self.service {
            None => {
                let _ = writeln!(t, "\nAPI view: {} is no service's address and port here", self.to);
            }
            Some(s) => {
                let _ = writeln!(
                    t,
                    "\nAPI view: service {} port {} ({}), reached as {}",
                    s.service, s.port, s.service_type, s.reached_as
                );
                let _ = writeln!(
                    t,
                    "  externalTrafficPolicy {}, internalTrafficPolicy {}{}",
                    s.external_traffic_policy,
                    s.internal_traffic_policy,
                    s.session_affinity
                        .as_deref()
                        .map(|a| format!(", {a}"))
                        .unwrap_or_default()
                );
                if !s.node_port_addresses.is_empty() {
                    let addrs: Vec<String> = s.node_port_addresses.iter().map(ToString::to_string).collect();
                    let _ = writeln!(t, "  the node port is served on {}", addrs.join(", "));
                }
                let _ = writeln!(t, "  endpoints ({}):", s.view);
                if s.endpoints.is_empty() {
                    let _ = writeln!(
                        t,
                        "    none: no EndpointSlice lists an endpoint for this port (does the selector match any pod?)"
                    );
                }
                for e in &s.endpoints {
                    let who = match (&e.pod, &e.node) {
                        (Some(p), Some(n)) => format!(" {p} on {n}"),
                        (Some(p), None) => format!(" {p}"),
                        (None, Some(n)) => format!(" on {n}"),
                        (None, None) => String::new(),
                    };
                    let state = if e.used {
                        "used".to_owned()
                    } else {
                        format!("not used: {}", e.reason)
                    };
                    let _ = writeln!(t, "    {}{who}: {state}", e.address);
                }
                if let Some(none) = &s.when_none {
                    let _ = writeln!(t, "  {none}");
                }
                for n in &s.notes {
                    let _ = writeln!(t, "  note: {n}");
                }
            }
        }
        let _ = writeln!(
            t,
            "\nRule walk (=> the rule matched and acted; the rest did not match):"
        );
        // the first path whole; the others from where they part from it
        let first = self.walk.first().map(|p| p.steps.as_slice()).unwrap_or_default();
        for (i, p) in self.walk.iter().enumerate().take(4) {
            let shared = if i == 0 {
                0
            } else {
                first.iter().zip(&p.steps).take_while(|(a, b)| a == b).count()
            };
            if self.walk.len() > 1 {
                let from = if shared > 0 {
                    format!(", as path 1 for {shared} steps, then")
                } else {
                    String::new()
                };
                let _ = writeln!(t, "  path {} (probability {:.3}{from}):", i + 1, p.probability);
            }
            for s in &p.steps[shared..] {
                let _ = writeln!(t, "  {s}");
            }
        }
        if self.walk.len() > 4 {
            let _ = writeln!(t, "  ({} more paths; -o json lists them)", self.walk.len() - 4);
        }
        let _ = writeln!(t, "\nVerdict:");
        for v in &self.verdicts {
            let _ = writeln!(t, "  {:>5.1}%  {}", v.probability * 100.0, v.why);
        }
        let _ = writeln!(t, "\nKernel:");
        match &self.kernel {
            Err(e) => {
                let _ = writeln!(t, "  not checked: {e}");
            }
            Ok(k) => {
                if k.rules_match {
                    let _ = writeln!(t, "  the node's rules equal the rules compiled from the API objects");
                }
                for d in &k.drift {
                    let _ = writeln!(t, "  drift: {d}");
                }
                if k.conntrack.is_empty() {
                    let _ = writeln!(t, "  no conntrack entry for {}", self.to);
                }
                for c in &k.conntrack {
                    let _ = writeln!(t, "  conntrack: {c}");
                }
            }
        }
        match &self.probe {
            None => {}
            Some(Err(e)) => {
                let _ = writeln!(t, "\nProbe: not run: {e}");
            }
            Some(Ok(p)) => {
                let endpoint = p.endpoint.map(|e| format!(", to {}", e.ip())).unwrap_or_default();
                let _ = writeln!(t, "\nProbe: a real connection: {}{endpoint}", p.connection);
                let _ = writeln!(t, "  kernel trace: {}", p.kernel_chains.join(" > "));
                let agreement = if p.agrees {
                    "agrees with the walk"
                } else {
                    "DIFFERS from the walk"
                };
                let _ = writeln!(t, "  {agreement}: {}", p.detail);
            }
        }
        t
    }
}
