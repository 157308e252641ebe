//! Incremental compilation: the compiled model kept as the static tables plus reference
//! counts of what the service ports share, so a model update recompiles only the ports that
//! changed and yields the table changes directly, in time proportional to the change rather
//! than the model. A port's contribution (its [`Fragment`]) is not kept: compilation is
//! deterministic, so the fragment a port had is compiled again from the port the model still
//! holds. The whole ruleset is assembled only when needed (a full sync), a chunk of ports at
//! a time.
//!
//! Objects several ports share are reference-counted: the load-balancing chains and maps of
//! one endpoint count, and elements of `cluster-ips` and `hairpin-connections`. An object is
//! added when its count leaves zero and removed when it returns to zero; the net effect over
//! one update is what is reported.

use std::collections::{BTreeMap, BTreeSet};

use crate::compile::{Fragment, is_shared_set, merge, port_fragment, static_table};
use crate::diff::{Changes, Stale, TableChanges};
use crate::ir::{Chain, Element, Family, Ruleset, RulesetView, SetDecl, Table};
use crate::model::{ProxyModel, ServicePort};

const FAMILIES: [Family; 2] = [Family::Ip, Family::Ip6];

#[derive(Clone, Debug)]
pub struct CompiledModel {
    model: ProxyModel,
    statics: BTreeMap<Family, Table>,
    /// Chains the ports need, with how many ports need each.
    chains: BTreeMap<(Family, String), (usize, Chain)>,
    /// Sets the ports need, with how many ports need each.
    sets: BTreeMap<(Family, String), (usize, SetDecl)>,
    /// Elements of the shared sets, by set, with how many ports contribute each.
    shared_elements: BTreeMap<(Family, String), BTreeMap<Element, usize>>,
    /// How many elements of the other sets the ports contribute, kept as fragments are
    /// counted so that [`stats`](Self::stats) compiles nothing.
    port_elements: usize,
}

/// Counts before an update began, for objects the update touched.
#[derive(Default)]
struct Touched {
    chains: BTreeMap<(Family, String), (usize, Chain)>,
    sets: BTreeMap<(Family, String), (usize, SetDecl)>,
    elements: BTreeMap<(Family, String, Element), usize>,
}

/// Ports compiled at a time when the whole ruleset is read: their elements are grouped by
/// set, so a full sync writes few large element messages while holding only this many
/// ports' fragments.
const PORTS_PER_CHUNK: usize = 2048;

fn static_inputs_equal(a: &ProxyModel, b: &ProxyModel) -> bool {
    a.node_name == b.node_name
        && a.node_ips == b.node_ips
        && a.node_zone == b.node_zone
        && a.cluster_cidrs == b.cluster_cidrs
        && a.service_cidrs == b.service_cidrs
        && a.config == b.config
}

impl CompiledModel {
    /// Compiles a whole model.
    pub fn new(model: ProxyModel) -> Self {
        let mut c = CompiledModel {
            statics: FAMILIES.iter().map(|f| (*f, static_table(&model, *f))).collect(),
            chains: BTreeMap::new(),
            sets: BTreeMap::new(),
            shared_elements: BTreeMap::new(),
            port_elements: 0,
            model: ProxyModel::default(),
        };
        for fam in FAMILIES {
            for sp in model.ports.values() {
                let frag = port_fragment(&model, fam, sp);
                c.count(fam, &frag, 1, &mut None);
            }
        }
        c.model = model;
        c
    }

    /// What the port with this id contributes to a family's table now.
    fn fragment_of(&self, fam: Family, id: &str) -> Fragment {
        self.model
            .ports
            .get(id)
            .map(|sp| port_fragment(&self.model, fam, sp))
            .unwrap_or_default()
    }

    /// Calls `visit` with the fragments of every port, a chunk at a time.
    fn for_each_chunk(&self, fam: Family, visit: &mut dyn FnMut(&[Fragment])) {
        let ports: Vec<&ServicePort> = self.model.ports.values().collect();
        for chunk in ports.chunks(PORTS_PER_CHUNK) {
            let frags: Vec<Fragment> = chunk.iter().map(|sp| port_fragment(&self.model, fam, sp)).collect();
            visit(&frags);
        }
    }

    /// The whole ruleset, assembled from the static tables and every port's fragment.
    pub fn ruleset(&self) -> Ruleset {
        let mut rs = Ruleset {
            tables: self.statics.clone(),
        };
        for fam in FAMILIES {
            let table = rs.tables.get_mut(&fam).expect("both families");
            self.for_each_chunk(fam, &mut |frags| frags.iter().for_each(|frag| merge(table, frag)));
        }
        rs
    }

    /// Counts of chains, rules, sets and elements, for reports.
    pub fn stats(&self) -> crate::ir::RulesetStats {
        let mut st = crate::ir::RulesetStats::default();
        for f in FAMILIES {
            for (_, chain) in self.chains(f) {
                st.chains += 1;
                st.rules += chain.rules.len();
            }
            st.sets += self.sets(f).len();
            st.elements += self.statics[&f].sets.values().map(|s| s.elements.len()).sum::<usize>();
        }
        st.elements += self.shared_elements.values().map(BTreeMap::len).sum::<usize>() + self.port_elements;
        st
    }

    pub fn model(&self) -> &ProxyModel {
        &self.model
    }

    /// Whether the current ruleset has this object.
    pub fn has(&self, s: &Stale) -> bool {
        match s {
            Stale::Chain(f, name) => {
                self.statics[f].chains.contains_key(name) || self.chains.contains_key(&(*f, name.clone()))
            }
            Stale::Set { family, name, .. } => {
                self.statics[family].sets.contains_key(name) || self.sets.contains_key(&(*family, name.clone()))
            }
        }
    }

    /// Moves to `new`, returning what changed in the tables; gives `new` back when node-wide
    /// inputs (node, CIDRs, config) changed and the model must be compiled anew.
    pub fn update(&mut self, mut new: ProxyModel) -> Result<Changes, Box<ProxyModel>> {
        if !static_inputs_equal(&self.model, &new) {
            return Err(Box::new(new));
        }
        let mut changed: Vec<(String, Option<ServicePort>)> = Vec::new();
        for (id, old) in &self.model.ports {
            match new.ports.remove(id) {
                Some(sp) if sp == *old => {}
                other => changed.push((id.clone(), other)),
            }
        }
        changed.extend(new.ports.into_iter().map(|(id, sp)| (id, Some(sp))));
        Ok(self.update_ports(changed))
    }

    /// Applies per-port changes (`None` removes the port) to the model in place, returning
    /// what changed in the tables. Costs time in the number of changed ports only.
    pub fn update_ports(&mut self, changed: impl IntoIterator<Item = (String, Option<ServicePort>)>) -> Changes {
        let mut touched = Some(Touched::default());
        let mut changes: Changes = FAMILIES.iter().map(|f| (*f, TableChanges::default())).collect();
        for (id, next_port) in changed {
            if self.model.ports.get(&id) == next_port.as_ref() {
                continue;
            }
            for fam in FAMILIES {
                let old = self.fragment_of(fam, &id);
                let next = next_port
                    .as_ref()
                    .map(|sp| port_fragment(&self.model, fam, sp))
                    .unwrap_or_default();
                if old == next {
                    continue;
                }
                let c = changes.get_mut(&fam).expect("both families");
                // per-port chains present before and after with other rules
                for (name, chain) in &next.chains {
                    if old.chain(name).is_some_and(|o| o.rules != chain.rules) {
                        c.changed_chains.insert(name.clone(), chain.clone());
                    }
                }
                // elements of sets no other port contributes to
                let sets: BTreeSet<&String> = old.elements.iter().chain(&next.elements).map(|(n, _)| n).collect();
                for set in sets.into_iter().filter(|s| !is_shared_set(s)) {
                    let (before, after) = (old.elements_of(set), next.elements_of(set));
                    let gone: Vec<Element> = missing_from(before, after);
                    let added: Vec<Element> = missing_from(after, before);
                    if !gone.is_empty() {
                        c.removed_elements.entry(set.clone()).or_default().extend(gone);
                    }
                    if !added.is_empty() {
                        c.added_elements.entry(set.clone()).or_default().extend(added);
                    }
                }
                self.count(fam, &old, -1, &mut touched);
                self.count(fam, &next, 1, &mut touched);
            }
            match next_port {
                Some(sp) => self.model.ports.insert(id, sp),
                None => self.model.ports.remove(&id),
            };
        }
        self.settle(touched.expect("set above"), &mut changes);
        changes
    }

    /// Adjusts reference counts by `delta` for everything `frag` holds; with `touched`, also
    /// remembers counts (and definitions) as they were before the update's first change.
    fn count(&mut self, fam: Family, frag: &Fragment, delta: isize, touched: &mut Option<Touched>) {
        let bump = |n: &mut usize| *n = n.checked_add_signed(delta).expect("reference counts never go negative");
        for (name, chain) in &frag.chains {
            let key = (fam, name.clone());
            let entry = self.chains.entry(key.clone()).or_insert_with(|| (0, chain.clone()));
            if let Some(t) = touched {
                t.chains.entry(key).or_insert_with(|| entry.clone());
            }
            if entry.0 == 0 || (delta > 0 && entry.1 != *chain) {
                // a chain's definition is the latest port's (they are identical for shared ones)
                entry.1 = chain.clone();
            }
            bump(&mut entry.0);
        }
        for (name, decl) in &frag.sets {
            let key = (fam, name.clone());
            let entry = self.sets.entry(key.clone()).or_insert_with(|| (0, decl.clone()));
            if let Some(t) = touched {
                t.sets.entry(key).or_insert_with(|| entry.clone());
            }
            bump(&mut entry.0);
        }
        let own: usize = frag
            .elements
            .iter()
            .filter(|(s, _)| !is_shared_set(s))
            .map(|(_, e)| e.len())
            .sum();
        self.port_elements = self
            .port_elements
            .checked_add_signed(delta * own as isize)
            .expect("element counts never go negative");
        for (set, elements) in frag.elements.iter().filter(|(s, _)| is_shared_set(s)) {
            let counts = self.shared_elements.entry((fam, set.clone())).or_default();
            for e in elements {
                let n = counts.entry(e.clone()).or_default();
                if let Some(t) = touched {
                    t.elements.entry((fam, set.clone(), e.clone())).or_insert(*n);
                }
                bump(n);
            }
        }
    }

    /// Turns count transitions into added and removed objects, and forgets zero counts.
    fn settle(&mut self, touched: Touched, changes: &mut Changes) {
        for ((fam, name), (before, _)) in touched.chains {
            let key = (fam, name.clone());
            let after = self.chains.get(&key).map_or(0, |(n, _)| *n);
            let c = changes.get_mut(&fam).expect("both families");
            if before == 0 && after > 0 {
                c.changed_chains.remove(&name);
                c.added_chains.insert(name, self.chains[&key].1.clone());
            } else if before > 0 && after == 0 {
                c.changed_chains.remove(&name);
                c.removed_chains.insert(name);
            }
            if after == 0 {
                self.chains.remove(&key);
            }
        }
        for ((fam, name), (before, decl)) in touched.sets {
            let key = (fam, name.clone());
            let after = self.sets.get(&key).map_or(0, |(n, _)| *n);
            let c = changes.get_mut(&fam).expect("both families");
            if before == 0 && after > 0 {
                c.added_sets.insert(name.clone(), self.sets[&key].1.clone());
            } else if before > 0 && after == 0 {
                c.removed_sets.insert(name.clone(), decl);
                c.removed_elements.remove(&name);
            }
            if after == 0 {
                self.sets.remove(&key);
            }
        }
        for ((fam, set, e), before) in touched.elements {
            let counts = self.shared_elements.get_mut(&(fam, set.clone()));
            let after = counts.as_ref().and_then(|c| c.get(&e)).copied().unwrap_or(0);
            if after == 0
                && let Some(counts) = counts
            {
                counts.remove(&e);
            }
            let c = changes.get_mut(&fam).expect("both families");
            if before == 0 && after > 0 {
                c.added_elements.entry(set).or_default().push(e);
            } else if before > 0 && after == 0 {
                c.removed_elements.entry(set).or_default().push(e);
            }
        }
    }
}

/// The elements of sorted `a` that are not in sorted `b`.
fn missing_from(a: &[Element], b: &[Element]) -> Vec<Element> {
    a.iter().filter(|e| b.binary_search(e).is_err()).cloned().collect()
}

impl RulesetView for CompiledModel {
    fn families(&self) -> Vec<Family> {
        FAMILIES.to_vec()
    }

    fn chains(&self, family: Family) -> Vec<(&str, &Chain)> {
        let statics = self.statics[&family].chains.iter().map(|(n, c)| (n.as_str(), c));
        let ported = self
            .chains
            .iter()
            .filter(|((f, _), _)| *f == family)
            .map(|((_, n), (_, c))| (n.as_str(), c));
        statics.chain(ported).collect()
    }

    fn sets(&self, family: Family) -> Vec<(&str, &SetDecl)> {
        let statics = self.statics[&family].sets.iter().map(|(n, s)| (n.as_str(), &s.decl));
        let ported = self
            .sets
            .iter()
            .filter(|((f, _), _)| *f == family)
            .map(|((_, n), (_, d))| (n.as_str(), d));
        statics.chain(ported).collect()
    }

    fn for_each_element(&self, family: Family, visit: &mut dyn FnMut(&str, &mut dyn Iterator<Item = &Element>)) {
        for (name, set) in &self.statics[&family].sets {
            if !set.elements.is_empty() {
                visit(name, &mut set.elements.iter());
            }
        }
        for ((f, name), counts) in &self.shared_elements {
            if *f == family && !counts.is_empty() {
                visit(name, &mut counts.keys());
            }
        }
        self.for_each_chunk(family, &mut |frags| {
            let mut by_set: BTreeMap<&str, Vec<&Element>> = BTreeMap::new();
            for frag in frags {
                for (set, elements) in frag.elements.iter().filter(|(s, _)| !is_shared_set(s)) {
                    by_set.entry(set.as_str()).or_default().extend(elements);
                }
            }
            for (set, elements) in by_set {
                visit(set, &mut elements.into_iter());
            }
        });
    }
}
