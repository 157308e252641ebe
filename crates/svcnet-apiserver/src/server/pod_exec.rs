//! `pods/exec` over WebSocket (`kubectl exec`, which speaks `v5.channel.k8s.io`): the request
//! is checked like upstream's (the pod, the container, a command and a stream), then the
//! command runs in an [`exec_session`](crate::exec_session).

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;

use super::*;
use crate::exec::{self, API_PARAMETERS};
use crate::exec_session;

pub(super) async fn pod_exec(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    Query(pairs): Query<Vec<(String, String)>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let checked = (|| {
        let pod = objects::get(state.registry.store(), &resources::PODS, &ns, &name)?;
        let request = exec::parse_request(&pairs, &API_PARAMETERS).map_err(|m| Box::new(Status::bad_request(m)))?;
        let container = logs::container_of(&pod, request.container.as_deref())?;
        let Some(hook) = state.pod_exec.clone() else {
            let mut s = Status::bad_request("exec is not available from this server (it runs no kubelets)");
            s.reason = "ServiceUnavailable".into();
            s.code = 503;
            return Err(Box::new(s));
        };
        Ok((pod, request, container, hook))
    })();
    let (pod, request, container, hook) = match checked {
        Ok(c) => c,
        Err(s) => return status_response(&s),
    };
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(_) => {
            return status_response(&Status::bad_request(
                "pods/exec needs a WebSocket upgrade (v5.channel.k8s.io or v4.channel.k8s.io); SPDY is not served",
            ));
        }
    };
    upgrade
        .protocols(exec::PROTOCOLS)
        .on_upgrade(move |socket| exec_session::run(socket, hook, pod, container, request))
}
