//! The pod subresources that stream over WebSocket, each checked like upstream's before the
//! upgrade:
//! - `pods/exec` (`kubectl exec`, which speaks `v5.channel.k8s.io`): the pod, the container, a
//!   command and a stream, then the command runs in an [`exec_session`](crate::exec_session);
//! - `pods/attach` (`kubectl attach`, `kubectl run -i`): the pod, the container and a stream,
//!   then an [`attach_session`](crate::attach_session) on what the hook attaches to;
//! - `pods/portforward` (`kubectl port-forward`, SPDY tunnelled in a WebSocket): the pod, then
//!   a [`port_forward`](crate::port_forward) session.

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;

use super::*;
use crate::exec::{self, API_PARAMETERS, ExecRequest, SharedPodStreaming};
use crate::{attach_session, exec_session, port_forward};

/// The answer when no kubelet hook is configured.
fn no_kubelets(what: &str) -> Box<Status> {
    let mut s = Status::bad_request(format!(
        "{what} is not available from this server (it runs no kubelets)"
    ));
    s.reason = "ServiceUnavailable".into();
    s.code = 503;
    Box::new(s)
}

/// The upgrade of a `pods/SUBRESOURCE` request to a WebSocket speaking one of `protocols`,
/// or the Status that answers a request without one.
fn websocket(
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    subresource: &str,
    protocols: &[&'static str],
) -> Result<WebSocketUpgrade, Box<Status>> {
    match upgrade {
        Ok(u) => Ok(u.protocols(protocols.iter().copied())),
        Err(_) => Err(Box::new(Status::bad_request(format!(
            "pods/{subresource} needs a WebSocket upgrade ({}); SPDY is not served",
            protocols.join(" or ")
        )))),
    }
}

/// How a request names the streams it wants (`parse_request` for exec, `parse_attach`).
type Parse = fn(&[(String, String)], &exec::Parameters) -> Result<ExecRequest, String>;

/// What exec and attach check before the upgrade, in upstream's order: the pod, the request's
/// parameters, the container, and a kubelet to run it.
fn container_target(
    state: &AppState,
    ns: &str,
    name: &str,
    pairs: &[(String, String)],
    parse: Parse,
    what: &str,
) -> Result<(Value, ExecRequest, String, SharedPodStreaming), Box<Status>> {
    let pod = objects::get(state.registry.store(), &resources::PODS, ns, name)?;
    let request = parse(pairs, &API_PARAMETERS).map_err(|m| Box::new(Status::bad_request(m)))?;
    let container = logs::container_of(&pod, request.container.as_deref())?;
    let hook = state.pod_streaming.clone().ok_or_else(|| no_kubelets(what))?;
    Ok((pod, request, container, hook))
}

pub(super) async fn pod_exec(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    Query(pairs): Query<Vec<(String, String)>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let (pod, request, container, hook) =
        match container_target(&state, &ns, &name, &pairs, exec::parse_request, "exec") {
            Ok(c) => c,
            Err(s) => return status_response(&s),
        };
    match websocket(upgrade, "exec", &exec::PROTOCOLS) {
        Ok(upgrade) => upgrade.on_upgrade(move |socket| exec_session::run(socket, hook, pod, container, request)),
        Err(status) => status_response(&status),
    }
}

pub(super) async fn pod_port_forward(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let checked = (|| {
        let pod = objects::get(state.registry.store(), &resources::PODS, &ns, &name)?;
        let hook = state.pod_streaming.clone().ok_or_else(|| no_kubelets("port-forward"))?;
        Ok::<_, Box<Status>>((pod, hook))
    })();
    let (pod, hook) = match checked {
        Ok(c) => c,
        Err(s) => return status_response(&s),
    };
    match websocket(upgrade, "portforward", &[port_forward::PROTOCOL]) {
        Ok(upgrade) => upgrade.on_upgrade(move |socket| port_forward::run(socket, hook, pod)),
        Err(status) => status_response(&status),
    }
}

pub(super) async fn pod_attach(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    Query(pairs): Query<Vec<(String, String)>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let (pod, request, container, hook) =
        match container_target(&state, &ns, &name, &pairs, exec::parse_attach, "attach") {
            Ok(c) => c,
            Err(s) => return status_response(&s),
        };
    match websocket(upgrade, "attach", &exec::PROTOCOLS) {
        Ok(upgrade) => upgrade.on_upgrade(move |socket| async move {
            let attached = hook.attach(&pod, &container, request.stdin);
            attach_session::run(socket, attached, request).await
        }),
        Err(status) => status_response(&status),
    }
}
