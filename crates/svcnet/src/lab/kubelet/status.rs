//! A pod's status from what the kubelet knows of its containers: a pure function, so phase,
//! conditions and container states follow upstream's rules the same way every time.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, HostIP,
    PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// Where one container is in its life.
#[derive(Debug, Clone, PartialEq)]
pub enum RunState {
    Waiting {
        reason: String,
        message: String,
    },
    Running {
        started_at: Timestamp,
    },
    Terminated {
        exit_code: i32,
        started_at: Timestamp,
        finished_at: Timestamp,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContainerRun {
    pub name: String,
    pub image: String,
    pub state: RunState,
    pub restarts: i32,
    pub ready: bool,
    /// Whether it will be started again (restart policy) once terminated.
    pub will_restart: bool,
    /// How its previous run ended (`lastState`), once it has restarted or waits to.
    pub last_termination: Option<RunState>,
}

pub struct PodRun<'a> {
    /// The pod's addresses, IPv4 first (none before its network exists).
    pub pod_ips: &'a [IpAddr],
    /// The node's addresses, IPv4 first.
    pub host_ips: &'a [IpAddr],
    pub start_time: Timestamp,
    pub containers: &'a [ContainerRun],
    pub now: Timestamp,
    /// The status sent last, whose condition transition times are kept when unchanged.
    pub previous: Option<&'a PodStatus>,
}

fn phase(containers: &[ContainerRun]) -> &'static str {
    let finished: Vec<i32> = containers
        .iter()
        .filter_map(|c| match c.state {
            RunState::Terminated { exit_code, .. } if !c.will_restart => Some(exit_code),
            _ => None,
        })
        .collect();
    if !containers.is_empty() && finished.len() == containers.len() {
        return if finished.iter().all(|&code| code == 0) {
            "Succeeded"
        } else {
            "Failed"
        };
    }
    let all_started = containers
        .iter()
        .all(|c| c.restarts > 0 || c.last_termination.is_some() || !matches!(c.state, RunState::Waiting { .. }));
    if all_started { "Running" } else { "Pending" }
}

fn container_state(state: &RunState) -> ContainerState {
    match state {
        RunState::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: (!message.is_empty()).then(|| message.clone()),
            }),
            ..Default::default()
        },
        RunState::Running { started_at } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(Time(*started_at)),
            }),
            ..Default::default()
        },
        RunState::Terminated {
            exit_code,
            started_at,
            finished_at,
        } => ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: *exit_code,
                reason: Some(if *exit_code == 0 { "Completed" } else { "Error" }.into()),
                started_at: Some(Time(*started_at)),
                finished_at: Some(Time(*finished_at)),
                ..Default::default()
            }),
            ..Default::default()
        },
    }
}

fn container_status(c: &ContainerRun) -> ContainerStatus {
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone(),
        image_id: String::new(),
        ready: c.ready,
        restart_count: c.restarts,
        started: Some(matches!(c.state, RunState::Running { .. })),
        state: Some(container_state(&c.state)),
        last_state: Some(c.last_termination.as_ref().map(container_state).unwrap_or_default()),
        ..Default::default()
    }
}

fn condition(run: &PodRun, type_: &str, ok: bool) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let since = run
        .previous
        .and_then(|p| p.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_ && c.status == status))
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(Time(run.now));
    PodCondition {
        type_: type_.into(),
        status: status.into(),
        last_transition_time: Some(since),
        ..Default::default()
    }
}

/// The pod's status as upstream's kubelet would report it.
pub fn pod_status(run: &PodRun) -> PodStatus {
    let phase = phase(run.containers);
    let ready = phase == "Running" && run.containers.iter().all(|c| c.ready);
    PodStatus {
        phase: Some(phase.into()),
        host_ip: run.host_ips.first().map(ToString::to_string),
        host_ips: Some(run.host_ips.iter().map(|ip| HostIP { ip: ip.to_string() }).collect()),
        pod_ip: run.pod_ips.first().map(ToString::to_string),
        pod_ips: (!run.pod_ips.is_empty()).then(|| run.pod_ips.iter().map(|ip| PodIP { ip: ip.to_string() }).collect()),
        start_time: Some(Time(run.start_time)),
        conditions: Some(vec![
            condition(run, "PodReadyToStartContainers", !run.pod_ips.is_empty()),
            condition(run, "Initialized", true),
            condition(run, "Ready", ready),
            condition(run, "ContainersReady", ready),
            condition(run, "PodScheduled", true),
        ]),
        container_statuses: Some(run.containers.iter().map(container_status).collect()),
        qos_class: Some("BestEffort".into()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn run_state(state: RunState, ready: bool, restarts: i32, will_restart: bool) -> ContainerRun {
        ContainerRun {
            name: "c".into(),
            image: "agnhost".into(),
            state,
            restarts,
            ready,
            will_restart,
            last_termination: None,
        }
    }

    fn status(containers: &[ContainerRun], previous: Option<&PodStatus>, now: i64) -> PodStatus {
        pod_status(&PodRun {
            pod_ips: &["10.244.1.2".parse().unwrap(), "fd00:244:0:1::2".parse().unwrap()],
            host_ips: &["10.240.0.11".parse().unwrap()],
            start_time: at(0),
            containers,
            now: at(now),
            previous,
        })
    }

    fn cond(s: &PodStatus, t: &str) -> (String, Timestamp) {
        let c = s.conditions.as_ref().unwrap().iter().find(|c| c.type_ == t).unwrap();
        (c.status.clone(), c.last_transition_time.clone().unwrap().0)
    }

    #[test]
    fn phases_follow_the_containers() {
        let waiting = RunState::Waiting {
            reason: "ContainerCreating".into(),
            message: String::new(),
        };
        assert_eq!(
            status(&[run_state(waiting, false, 0, true)], None, 0).phase.unwrap(),
            "Pending"
        );
        let running = RunState::Running { started_at: at(1) };
        assert_eq!(
            status(&[run_state(running, true, 0, true)], None, 0).phase.unwrap(),
            "Running"
        );
        let done = |code| RunState::Terminated {
            exit_code: code,
            started_at: at(1),
            finished_at: at(2),
        };
        assert_eq!(
            status(&[run_state(done(0), false, 0, false)], None, 0).phase.unwrap(),
            "Succeeded"
        );
        assert_eq!(
            status(&[run_state(done(3), false, 0, false)], None, 0).phase.unwrap(),
            "Failed"
        );
        // a crashed container that will restart keeps the pod Running
        assert_eq!(
            status(&[run_state(done(3), false, 1, true)], None, 0).phase.unwrap(),
            "Running"
        );
    }

    #[test]
    fn ready_needs_every_container_ready_and_keeps_transition_times() {
        let running = || RunState::Running { started_at: at(1) };
        let first = status(&[run_state(running(), false, 0, true)], None, 5);
        assert_eq!(cond(&first, "Ready"), ("False".into(), at(5)));
        let same = status(&[run_state(running(), false, 0, true)], Some(&first), 9);
        assert_eq!(cond(&same, "Ready"), ("False".into(), at(5)));
        let ready = status(&[run_state(running(), true, 0, true)], Some(&same), 12);
        assert_eq!(cond(&ready, "Ready"), ("True".into(), at(12)));
        assert_eq!(cond(&ready, "ContainersReady"), ("True".into(), at(12)));
        assert_eq!(cond(&ready, "PodScheduled"), ("True".into(), at(5)));
        let two = [
            run_state(running(), true, 0, true),
            run_state(running(), false, 0, true),
        ];
        assert_eq!(cond(&status(&two, None, 0), "Ready").0, "False");
        assert_eq!(ready.pod_ip.as_deref(), Some("10.244.1.2"));
        let ips: Vec<&str> = ready.pod_ips.iter().flatten().map(|p| p.ip.as_str()).collect();
        assert_eq!(ips, ["10.244.1.2", "fd00:244:0:1::2"], "both families, IPv4 first");
        assert_eq!(ready.container_statuses.unwrap()[0].started, Some(true));
    }
}
