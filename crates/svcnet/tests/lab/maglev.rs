//! Consistent hashing (`svcnet.io/load-balancing: maglev`, beyond upstream) in a lab: the
//! same 200 flows (fixed client ports) reach the same pods run after run, and when one of
//! five pods goes, only the flows it served move (Maglev's ~1/N); with the default random
//! choice most flows move. svcnet's proxy only: kube-proxy has no such option.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::deployment;
use crate::support::{ControlPlane, Lab, wait_for};

const FLOWS: usize = 200;

/// `source port -> pod` for the 200 flows, once every flow is answered.
fn flows(lab: &Lab, target: &str) -> BTreeMap<String, String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let out = lab.ask_from_pod(
            "client",
            &[
                target,
                "--count",
                &FLOWS.to_string(),
                "--source-ports",
                "20000",
                "--timeout-ms",
                "1000",
            ],
        );
        let map: BTreeMap<String, String> = out
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(port, pod)| (port.to_owned(), pod.to_owned()))
            .collect();
        if map.len() == FLOWS && map.values().all(|p| !p.starts_with("ERROR")) {
            return map;
        }
        let errors: Vec<(&String, &String)> = map.iter().filter(|(_, p)| p.starts_with("ERROR")).take(5).collect();
        assert!(
            std::time::Instant::now() < deadline,
            "not every flow was answered: {} answers, errors {errors:?}; output starts {:?}",
            map.len(),
            out.chars().take(300).collect::<String>()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Waits until exactly `n` web pods exist and the Service's endpoints are their addresses,
/// then a second for the proxies (they program a change within their 100 ms minimum sync
/// interval): a Deployment may still replace a pod right after it first has `n` ready.
fn settled(lab: &Lab, n: usize) {
    wait_for(
        &format!("{n} web pods, all of them the endpoints"),
        Duration::from_secs(30),
        || {
            let mut pods: Vec<String> = lab
                .get(&["pods", "-l", "app=web"], "{.items[*].status.podIP}")
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            let mut endpoints: Vec<String> = lab
                .get(
                    &["endpointslices", "-l", "kubernetes.io/service-name=web"],
                    "{.items[*].endpoints[?(@.conditions.ready==true)].addresses[0]}",
                )
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            pods.sort();
            endpoints.sort();
            (pods.len() == n && pods == endpoints).then_some(())
        },
    );
    std::thread::sleep(Duration::from_secs(1));
}

fn pods(flows: &BTreeMap<String, String>) -> std::collections::BTreeSet<String> {
    flows.values().cloned().collect()
}

/// How many flows whose pod is still there reached another pod.
fn survivors_moved(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> (usize, usize) {
    let alive = pods(after);
    let survivors: Vec<&String> = before.keys().filter(|port| alive.contains(&before[*port])).collect();
    let moved = survivors.iter().filter(|port| before[**port] != after[**port]).count();
    (moved, survivors.len())
}

fn consistent_hashing(control_plane: ControlPlane) {
    let lab = Lab::up_on(2, control_plane);
    lab.apply(&deployment("web", 5, ""));
    lab.apply(&crate::support::client_pod("client", None));
    lab.apply(
        "apiVersion: v1
kind: Service
metadata: {name: web, annotations: {svcnet.io/load-balancing: maglev}}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
",
    );
    lab.wait_ready_pods("app=web", 5);
    lab.wait_ready_pods("app=client", 1);
    let target = format!("{}:80", lab.get(&["service", "web"], "{.spec.clusterIP}"));

    // the rules are in before any fixed-port flow starts: a first packet that no rule
    // rewrote would leave its ports a conntrack entry without DNAT for two minutes
    wait_for("the service to answer", Duration::from_secs(20), || {
        let answers = lab.ask_from_pod("client", &[&target, "--count", "5", "--timeout-ms", "1000"]);
        (!answers.contains("ERROR")).then_some(())
    });
    settled(&lab, 5);
    let first = wait_for("all five pods to be reached", Duration::from_secs(20), || {
        let f = flows(&lab, &target);
        (pods(&f).len() == 5).then_some(f)
    });
    let again = flows(&lab, &target);
    let changed: Vec<(&String, &String, &String)> = first
        .iter()
        .filter(|(port, pod)| again[*port] != **pod)
        .map(|(port, pod)| (port, pod, &again[port]))
        .collect();
    assert!(
        changed.is_empty(),
        "with nothing changed, flows reached other pods: {changed:?}"
    );

    // one of five pods goes. The flows are measured once it is gone: a connection attempt
    // that meets the dying pod leaves a SYN_SENT conntrack entry for its ports, which the
    // next attempt from the same ports would follow for two minutes (the test reuses ports;
    // real clients do not)
    lab.k(&["scale", "deployment", "web", "--replicas=4"]);
    settled(&lab, 4);
    let after = wait_for("the flows to reach the four pods left", Duration::from_secs(30), || {
        let f = flows(&lab, &target);
        (pods(&f).len() == 4).then_some(f)
    });
    let (moved, survivors) = survivors_moved(&first, &after);
    let total_moved = first.keys().filter(|p| first[*p] != after[*p]).count();
    println!(
        "maglev: {total_moved} of {FLOWS} flows moved when one of 5 pods went; {moved} of the {survivors} flows whose pod stayed"
    );
    // about 1/5 must move; of the rest, Maglev moves about 1% (a few flows of 160)
    assert!(
        moved <= 8,
        "{moved} of {survivors} flows moved although their pod stayed"
    );

    // the default random choice, for contrast: most flows land elsewhere on a new connection
    lab.k(&["annotate", "service", "web", "svcnet.io/load-balancing-"]);
    let random = wait_for("the random choice", Duration::from_secs(20), || {
        let f = flows(&lab, &target);
        let (moved, _) = survivors_moved(&after, &f);
        (moved > FLOWS / 4).then_some(moved)
    });
    println!("random: {random} of {FLOWS} flows reached another pod with the same four pods");
}

on_svcnet_and_upstream!(consistent_hashing);
