//! Incremental compilation: the compiled model kept as the static tables plus what each
//! service port contributed, so a model update recompiles only the ports that changed and
//! yields the table changes directly, in time proportional to the change rather than the
//! model. The whole ruleset is assembled only when needed (a full sync).
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
    fragments: BTreeMap<(Family, String), Fragment>,
    chain_refs: BTreeMap<(Family, String), usize>,
    set_refs: BTreeMap<(Family, String), usize>,
    /// Declarations of the counted sets, for reporting their removal.
    set_decls: BTreeMap<(Family, String), SetDecl>,
    shared_elements: BTreeMap<(Family, String, Element), usize>,
}

/// Counts before an update began, for objects the update touched.
#[derive(Default)]
struct Touched {
    chains: BTreeMap<(Family, String), usize>,
    sets: BTreeMap<(Family, String), usize>,
    elements: BTreeMap<(Family, String, Element), usize>,
}

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
            fragments: BTreeMap::new(),
            chain_refs: BTreeMap::new(),
            set_refs: BTreeMap::new(),
            set_decls: BTreeMap::new(),
            shared_elements: BTreeMap::new(),
            model: ProxyModel::default(),
        };
        for fam in FAMILIES {
            for (id, sp) in &model.ports {
                let frag = port_fragment(&model, fam, sp);
                if frag == Fragment::default() {
                    continue;
                }
                c.count(fam, &frag, 1, &mut None);
                c.fragments.insert((fam, id.clone()), frag);
            }
        }
        c.model = model;
        c
    }

    /// The whole ruleset, assembled from the static tables and every fragment.
    pub fn ruleset(&self) -> Ruleset {
        let mut rs = Ruleset {
            tables: self.statics.clone(),
        };
        for ((fam, _), frag) in &self.fragments {
            merge(rs.tables.get_mut(fam).expect("both families"), frag);
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
            for (name, _) in self.sets(f) {
                st.sets += 1;
                self.for_each_element(f, name, &mut |_| st.elements += 1);
            }
        }
        st
    }

    pub fn model(&self) -> &ProxyModel {
        &self.model
    }

    /// Whether the current ruleset has this object.
    pub fn has(&self, s: &Stale) -> bool {
        match s {
            Stale::Chain(f, name) => {
                self.statics[f].chains.contains_key(name) || self.chain_refs.contains_key(&(*f, name.clone()))
            }
            Stale::Set { family, name, .. } => {
                self.statics[family].sets.contains_key(name) || self.set_refs.contains_key(&(*family, name.clone()))
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
                let old = self.fragments.remove(&(fam, id.clone())).unwrap_or_default();
                let next = next_port
                    .as_ref()
                    .map(|sp| port_fragment(&self.model, fam, sp))
                    .unwrap_or_default();
                if old == next {
                    if old != Fragment::default() {
                        self.fragments.insert((fam, id.clone()), old);
                    }
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
                if next != Fragment::default() {
                    self.fragments.insert((fam, id.clone()), next);
                }
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
    /// remembers counts as they were before the update's first change.
    fn count(&mut self, fam: Family, frag: &Fragment, delta: isize, touched: &mut Option<Touched>) {
        let bump = |n: &mut usize| *n = n.checked_add_signed(delta).expect("reference counts never go negative");
        for (name, _) in &frag.chains {
            let key = (fam, name.clone());
            let n = self.chain_refs.entry(key.clone()).or_default();
            if let Some(t) = touched {
                t.chains.entry(key).or_insert(*n);
            }
            bump(n);
        }
        for (name, decl) in &frag.sets {
            let key = (fam, name.clone());
            self.set_decls.entry(key.clone()).or_insert_with(|| decl.clone());
            let n = self.set_refs.entry(key.clone()).or_default();
            if let Some(t) = touched {
                t.sets.entry(key).or_insert(*n);
            }
            bump(n);
        }
        for (set, elements) in frag.elements.iter().filter(|(s, _)| is_shared_set(s)) {
            for e in elements {
                let key = (fam, set.clone(), e.clone());
                let n = self.shared_elements.entry(key.clone()).or_default();
                if let Some(t) = touched {
                    t.elements.entry(key).or_insert(*n);
                }
                bump(n);
            }
        }
    }

    /// Turns count transitions into added and removed objects, and forgets zero counts.
    fn settle(&mut self, touched: Touched, changes: &mut Changes) {
        for ((fam, name), before) in touched.chains {
            let after = self.chain_refs.get(&(fam, name.clone())).copied().unwrap_or(0);
            let c = changes.get_mut(&fam).expect("both families");
            if after == 0 {
                self.chain_refs.remove(&(fam, name.clone()));
            }
            if before == 0 && after > 0 {
                let chain = self.find_chain(fam, &name);
                c.changed_chains.remove(&name);
                c.added_chains.insert(name, chain);
            } else if before > 0 && after == 0 {
                c.changed_chains.remove(&name);
                c.removed_chains.insert(name);
            }
        }
        for ((fam, name), before) in touched.sets {
            let key = (fam, name.clone());
            let after = self.set_refs.get(&key).copied().unwrap_or(0);
            let c = changes.get_mut(&fam).expect("both families");
            if before == 0 && after > 0 {
                c.added_sets.insert(name.clone(), self.set_decls[&key].clone());
            } else if before > 0 && after == 0 {
                c.removed_sets.insert(name.clone(), self.set_decls[&key].clone());
                c.removed_elements.remove(&name);
            }
            if after == 0 {
                self.set_refs.remove(&key);
                self.set_decls.remove(&key);
            }
        }
        for ((fam, set, e), before) in touched.elements {
            let key = (fam, set.clone(), e.clone());
            let after = self.shared_elements.get(&key).copied().unwrap_or(0);
            let c = changes.get_mut(&fam).expect("both families");
            if after == 0 {
                self.shared_elements.remove(&key);
            }
            if before == 0 && after > 0 {
                c.added_elements.entry(set).or_default().push(e);
            } else if before > 0 && after == 0 {
                c.removed_elements.entry(set).or_default().push(e);
            }
        }
    }

    fn find_chain(&self, fam: Family, name: &str) -> Chain {
        self.fragments
            .iter()
            .filter(|((f, _), _)| *f == fam)
            .find_map(|(_, frag)| frag.chain(name).cloned())
            .expect("a counted chain belongs to a fragment")
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
        let mut out: Vec<(&str, &Chain)> = self.statics[&family]
            .chains
            .iter()
            .map(|(n, c)| (n.as_str(), c))
            .collect();
        let mut seen = BTreeSet::new();
        for ((f, _), frag) in &self.fragments {
            if *f == family {
                for (name, chain) in &frag.chains {
                    if seen.insert(name.as_str()) {
                        out.push((name.as_str(), chain));
                    }
                }
            }
        }
        out
    }

    fn sets(&self, family: Family) -> Vec<(&str, &SetDecl)> {
        let mut out: Vec<(&str, &SetDecl)> = self.statics[&family]
            .sets
            .iter()
            .map(|(n, s)| (n.as_str(), &s.decl))
            .collect();
        out.extend(
            self.set_decls
                .iter()
                .filter(|((f, _), _)| *f == family)
                .map(|((_, n), d)| (n.as_str(), d)),
        );
        out
    }

    fn for_each_element(&self, family: Family, set: &str, visit: &mut dyn FnMut(&Element)) {
        if let Some(s) = self.statics[&family].sets.get(set) {
            s.elements.iter().for_each(&mut *visit);
        }
        if is_shared_set(set) {
            for (f, name, e) in self.shared_elements.keys() {
                if *f == family && name == set {
                    visit(e);
                }
            }
            return;
        }
        for ((f, _), frag) in &self.fragments {
            if *f == family {
                frag.elements_of(set).iter().for_each(&mut *visit);
            }
        }
    }
}
