//! Incremental compilation: the compiled ruleset kept together with what each service port
//! contributed, so a model update recompiles only the ports that changed and yields the
//! table changes directly, in time proportional to the change rather than the model.
//!
//! Objects several ports share are reference-counted: the load-balancing chains and maps of
//! one endpoint count, and elements of `cluster-ips` and `hairpin-connections`. An object is
//! added when its count leaves zero and removed when it returns to zero; the net effect over
//! one update is what is reported.

use std::collections::{BTreeMap, BTreeSet};

use crate::compile::{Fragment, is_shared_set, merge, port_fragment, static_table};
use crate::diff::{Changes, TableChanges};
use crate::ir::{Element, Family, Ruleset};
use crate::model::ProxyModel;

const FAMILIES: [Family; 2] = [Family::Ip, Family::Ip6];

#[derive(Clone, Debug)]
pub struct CompiledModel {
    model: ProxyModel,
    ruleset: Ruleset,
    fragments: BTreeMap<(Family, String), Fragment>,
    chain_refs: BTreeMap<(Family, String), usize>,
    set_refs: BTreeMap<(Family, String), usize>,
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
        && a.cluster_cidrs == b.cluster_cidrs
        && a.service_cidrs == b.service_cidrs
        && a.config == b.config
}

impl CompiledModel {
    /// Compiles a whole model.
    pub fn new(model: ProxyModel) -> Self {
        let mut c = CompiledModel {
            ruleset: Ruleset::default(),
            fragments: BTreeMap::new(),
            chain_refs: BTreeMap::new(),
            set_refs: BTreeMap::new(),
            shared_elements: BTreeMap::new(),
            model: ProxyModel::default(),
        };
        for fam in FAMILIES {
            let mut table = static_table(&model, fam);
            for (id, sp) in &model.ports {
                let frag = port_fragment(&model, fam, sp);
                if frag == Fragment::default() {
                    continue;
                }
                merge(&mut table, &frag);
                c.count(fam, &frag, 1, &mut None);
                c.fragments.insert((fam, id.clone()), frag);
            }
            c.ruleset.tables.insert(fam, table);
        }
        c.model = model;
        c
    }

    pub fn ruleset(&self) -> &Ruleset {
        &self.ruleset
    }

    pub fn model(&self) -> &ProxyModel {
        &self.model
    }

    /// Moves to `new`, returning what changed in the tables; gives `new` back when node-wide
    /// inputs (node, CIDRs, config) changed and the model must be compiled anew.
    pub fn update(&mut self, new: ProxyModel) -> Result<Changes, Box<ProxyModel>> {
        if !static_inputs_equal(&self.model, &new) {
            return Err(Box::new(new));
        }
        let ids: BTreeSet<String> = self.model.ports.keys().chain(new.ports.keys()).cloned().collect();
        let mut touched = Some(Touched::default());
        let mut changes: Changes = FAMILIES.iter().map(|f| (*f, TableChanges::default())).collect();
        for id in ids {
            if self.model.ports.get(&id) == new.ports.get(&id) {
                continue;
            }
            for fam in FAMILIES {
                let old = self.fragments.remove(&(fam, id.clone())).unwrap_or_default();
                let next = new
                    .ports
                    .get(&id)
                    .map(|sp| port_fragment(&new, fam, sp))
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
                    if old.chains.get(name).is_some_and(|o| o.rules != chain.rules) {
                        c.changed_chains.insert(name.clone(), chain.clone());
                    }
                }
                // elements of sets no other port contributes to
                for (set, e) in old
                    .elements
                    .difference(&next.elements)
                    .filter(|(s, _)| !is_shared_set(s))
                {
                    c.removed_elements.entry(set.clone()).or_default().push(e.clone());
                }
                for (set, e) in next
                    .elements
                    .difference(&old.elements)
                    .filter(|(s, _)| !is_shared_set(s))
                {
                    c.added_elements.entry(set.clone()).or_default().push(e.clone());
                }
                self.count(fam, &old, -1, &mut touched);
                self.count(fam, &next, 1, &mut touched);
                if next != Fragment::default() {
                    self.fragments.insert((fam, id.clone()), next);
                }
            }
        }
        self.model = new;
        self.settle(touched.expect("set above"), &mut changes);
        self.apply_to_ruleset(&changes);
        Ok(changes)
    }

    /// Adjusts reference counts by `delta` for everything `frag` holds; with `touched`, also
    /// remembers counts as they were before the update's first change.
    fn count(&mut self, fam: Family, frag: &Fragment, delta: isize, touched: &mut Option<Touched>) {
        let bump = |n: &mut usize| *n = n.checked_add_signed(delta).expect("reference counts never go negative");
        for name in frag.chains.keys() {
            let key = (fam, name.clone());
            let n = self.chain_refs.entry(key.clone()).or_default();
            if let Some(t) = touched {
                t.chains.entry(key).or_insert(*n);
            }
            bump(n);
        }
        for name in frag.sets.keys() {
            let key = (fam, name.clone());
            let n = self.set_refs.entry(key.clone()).or_default();
            if let Some(t) = touched {
                t.sets.entry(key).or_insert(*n);
            }
            bump(n);
        }
        for (set, e) in frag.elements.iter().filter(|(s, _)| is_shared_set(s)) {
            let key = (fam, set.clone(), e.clone());
            let n = self.shared_elements.entry(key.clone()).or_default();
            if let Some(t) = touched {
                t.elements.entry(key).or_insert(*n);
            }
            bump(n);
        }
    }

    /// Turns count transitions into added and removed objects.
    fn settle(&mut self, touched: Touched, changes: &mut Changes) {
        for ((fam, name), before) in touched.chains {
            let after = self.chain_refs.get(&(fam, name.clone())).copied().unwrap_or(0);
            let c = changes.get_mut(&fam).expect("both families");
            if before == 0 && after > 0 {
                let chain = self.find_chain(fam, &name);
                c.changed_chains.remove(&name);
                c.added_chains.insert(name, chain);
            } else if before > 0 && after == 0 {
                c.changed_chains.remove(&name);
                c.removed_chains.insert(name.clone());
                self.chain_refs.remove(&(fam, name));
            }
        }
        for ((fam, name), before) in touched.sets {
            let after = self.set_refs.get(&(fam, name.clone())).copied().unwrap_or(0);
            let c = changes.get_mut(&fam).expect("both families");
            if before == 0 && after > 0 {
                c.added_sets.insert(name.clone(), self.find_set(fam, &name));
            } else if before > 0 && after == 0 {
                let decl = self.ruleset.tables[&fam].sets[&name].decl.clone();
                c.removed_sets.insert(name.clone(), decl);
                c.removed_elements.remove(&name);
                self.set_refs.remove(&(fam, name));
            }
        }
        for ((fam, set, e), before) in touched.elements {
            let after = self
                .shared_elements
                .get(&(fam, set.clone(), e.clone()))
                .copied()
                .unwrap_or(0);
            let c = changes.get_mut(&fam).expect("both families");
            if before == 0 && after > 0 {
                c.added_elements.entry(set).or_default().push(e);
            } else if before > 0 && after == 0 {
                self.shared_elements.remove(&(fam, set.clone(), e.clone()));
                c.removed_elements.entry(set).or_default().push(e);
            }
        }
    }

    fn find_chain(&self, fam: Family, name: &str) -> crate::ir::Chain {
        self.fragments
            .iter()
            .filter(|((f, _), _)| *f == fam)
            .find_map(|(_, frag)| frag.chains.get(name).cloned())
            .expect("a counted chain belongs to a fragment")
    }

    fn find_set(&self, fam: Family, name: &str) -> crate::ir::SetDecl {
        self.fragments
            .iter()
            .filter(|((f, _), _)| *f == fam)
            .find_map(|(_, frag)| frag.sets.get(name).cloned())
            .expect("a counted set belongs to a fragment")
    }

    fn apply_to_ruleset(&mut self, changes: &Changes) {
        for (fam, c) in changes {
            let table = self.ruleset.tables.get_mut(fam).expect("both families");
            for name in &c.removed_chains {
                table.chains.remove(name);
            }
            for name in c.removed_sets.keys() {
                table.sets.remove(name);
            }
            for (name, chain) in c.added_chains.iter().chain(&c.changed_chains) {
                table.chains.insert(name.clone(), chain.clone());
            }
            for (name, decl) in &c.added_sets {
                table.sets.insert(
                    name.clone(),
                    crate::ir::Set {
                        decl: decl.clone(),
                        elements: BTreeSet::new(),
                    },
                );
            }
            for (set, elements) in &c.removed_elements {
                if let Some(s) = table.sets.get_mut(set) {
                    for e in elements {
                        s.elements.remove(e);
                    }
                }
            }
            for (set, elements) in &c.added_elements {
                let s = table.sets.get_mut(set).expect("elements go into declared sets");
                s.elements.extend(elements.iter().cloned());
            }
        }
    }
}
