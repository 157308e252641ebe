//! The `pods/log`, `pods/binding` and services/pods `proxy` subresources.

use super::*;

pub(super) async fn pod_log(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let registry = state.registry.clone();
    let result = async {
        let pod = objects::get(registry.store(), &resources::PODS, &ns, &name)?;
        let container = logs::container_of(&pod, q.get("container").map(String::as_str))?;
        let Some(source) = state.pod_logs.clone() else {
            let mut s = Status::bad_request("pod logs are not available from this server (it runs no kubelets)");
            s.reason = "ServiceUnavailable".into();
            s.code = 503;
            return Err(Box::new(s));
        };
        let (ns2, name2, c2) = (ns.clone(), name.clone(), container.clone());
        let reader = source.clone();
        let number = |k: &str| q.get(k).and_then(|v| v.parse::<usize>().ok());
        if q.get("previous").is_some_and(|v| v == "true" || v == "1") {
            // the run before the current one; never followed
            let text = tokio::task::spawn_blocking(move || reader.read_previous(&ns2, &name2, &c2))
                .await
                .map_err(|e| Box::new(Status::internal(&e.to_string())))?
                .map_err(|_| {
                    Box::new(Status::bad_request(format!(
                        "previous terminated container \"{container}\" in pod \"{name}\" not found"
                    )))
                })?;
            return Ok(Body::from(logs::cut(&text, number("tailLines"), number("limitBytes"))));
        }
        let text = tokio::task::spawn_blocking(move || reader.read(&ns2, &name2, &c2))
            .await
            .map_err(|e| Box::new(Status::internal(&e.to_string())))?
            .map_err(|_| {
                Box::new(Status::bad_request(format!(
                    "container \"{container}\" in pod \"{name}\" is waiting to start: no output yet"
                )))
            })?;
        let first = logs::cut(&text, number("tailLines"), number("limitBytes"));
        let follow = q.get("follow").is_some_and(|v| v == "true" || v == "1");
        if !follow || number("limitBytes").is_some_and(|limit| first.len() >= limit) {
            return Ok(Body::from(first));
        }
        let uid = pod["metadata"]["uid"].clone();
        let followed = Followed {
            registry: registry.clone(),
            source,
            namespace: ns.clone(),
            pod: name.clone(),
            uid,
            container,
            offset: text.len() as u64,
            left: number("limitBytes").map(|limit| limit - first.len()),
        };
        let rest = futures::stream::unfold(followed, |f| f.next());
        let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(first)) }).chain(rest);
        Ok(Body::from_stream(stream))
    }
    .await;
    match result {
        Ok(body) => {
            let mut response = Response::new(body);
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            response
        }
        Err(s) => status_response(&s),
    }
}

/// A container's output being followed (`kubectl logs -f`).
pub(super) struct Followed {
    registry: Arc<Registry>,
    source: logs::SharedPodLogs,
    namespace: String,
    pod: String,
    uid: Value,
    container: String,
    offset: u64,
    /// What `limitBytes` still allows.
    left: Option<usize>,
}

impl Followed {
    /// The next output, polled every quarter second; None once the limit is reached or the pod
    /// is gone or replaced (the client hanging up drops the stream instead).
    async fn next(mut self) -> Option<(std::io::Result<Bytes>, Self)> {
        loop {
            if self.left == Some(0) {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
            let (registry, source) = (self.registry.clone(), self.source.clone());
            let (ns, pod, container, offset) = (
                self.namespace.clone(),
                self.pod.clone(),
                self.container.clone(),
                self.offset,
            );
            let uid = self.uid.clone();
            let (alive, added) = tokio::task::spawn_blocking(move || {
                let alive = objects::get(registry.store(), &resources::PODS, &ns, &pod)
                    .is_ok_and(|p| p["metadata"]["uid"] == uid);
                (
                    alive,
                    source.read_from(&ns, &pod, &container, offset).unwrap_or_default(),
                )
            })
            .await
            .ok()?;
            if !added.is_empty() {
                self.offset += added.len() as u64;
                let mut added = added;
                if let Some(left) = &mut self.left {
                    added.truncate(*left);
                    *left -= added.len();
                }
                return Some((Ok(Bytes::from(added)), self));
            }
            if !alive {
                return None;
            }
        }
    }
}

pub(super) async fn service_proxy(
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    request: Request,
) -> Response {
    proxy_to(state, p, request, proxy::resolve_service).await
}

pub(super) async fn pod_proxy(
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    request: Request,
) -> Response {
    proxy_to(state, p, request, proxy::resolve_pod).await
}

/// Resolves the target with `resolve`, rewrites the URI to the path after `/proxy`, and
/// forwards the request there.
pub(super) async fn proxy_to(
    state: AppState,
    p: HashMap<String, String>,
    mut request: Request,
    resolve: fn(&svcnet_store::Store, &str, &str) -> Result<SocketAddr, Box<Status>>,
) -> Response {
    let (ns, spec) = (
        p.get("ns").cloned().unwrap_or_default(),
        p.get("name").cloned().unwrap_or_default(),
    );
    let registry = state.registry.clone();
    let addr = match blocking(move || resolve(registry.store(), &ns, &spec)).await {
        Ok(a) => a,
        Err(s) => return status_response(&s),
    };
    let mut target = format!("/{}", p.get("rest").map_or("", String::as_str));
    if let Some(q) = request.uri().query() {
        target = format!("{target}?{q}");
    }
    match target.parse() {
        Ok(uri) => *request.uri_mut() = uri,
        Err(_) => return status_response(&Status::bad_request("invalid proxy path")),
    }
    match proxy::forward(state.dialer.clone(), addr, request).await {
        Ok(response) => response,
        Err(s) => status_response(&s),
    }
}

/// POST `pods/{name}/binding`: assigns the pod to a node (retried when the pod changed meanwhile).
pub(super) async fn pod_binding(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    request: Request,
) -> Response {
    let result = async {
        let options = write_options(&request, "CreateOptions")?;
        let (content_type, body) = read_body(request).await?;
        let wanted = object_json(&content_type, &body)?;
        let registry = state.registry.clone();
        blocking(move || {
            let store = registry.store();
            for _ in 0..PATCH_ATTEMPTS {
                let pod = objects::get(store, &resources::PODS, &ns, &name)?;
                let revision = pod["metadata"]["resourceVersion"]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let bound = crate::binding::assign(pod, &wanted, &name, &objects::now())?;
                match objects::overwrite(store, &resources::PODS, &ns, &name, bound, revision, options) {
                    Err(s) if s.code == 409 => continue,
                    written => return written.map(|_| crate::binding::success()),
                }
            }
            Err(Box::new(Status::conflict("", "pods", &name)))
        })
        .await
    }
    .await;
    reply(result, StatusCode::CREATED)
}
