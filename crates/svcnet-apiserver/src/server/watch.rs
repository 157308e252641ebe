//! Watches: newline-delimited events from the store's history, bookmarks, initial events.

use super::*;

/// A watch event as sent: written straight from the object (through `json!` it would be
/// copied into a `Value` first).
#[derive(serde::Serialize)]
struct Event<'a, T> {
    #[serde(rename = "type")]
    kind: &'a str,
    object: &'a T,
}

pub(super) fn event_line(kind: &str, object: &impl serde::Serialize) -> Bytes {
    let mut line = serde_json::to_vec(&Event { kind, object }).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// How often a watch that allows bookmarks gets one (upstream sends them about once a minute).
pub(super) const BOOKMARK_PERIOD: Duration = Duration::from_secs(60);

/// A watch: the current objects as ADDED when no (or a zero) resourceVersion is given or
/// `sendInitialEvents` asks for them (then closed by a BOOKMARK annotated
/// `k8s.io/initial-events-end`), then every change after it, newline-delimited; `ERROR` with a 410 Status when the version is
/// older than the history kept. With `allowWatchBookmarks`, `BOOKMARK` events carry the
/// revision the watch has reached, periodically and just before it ends.
pub(super) fn watch(
    state: AppState,
    kind: &'static Kind,
    namespace: Option<String>,
    filter: Filter,
    query: &HashMap<String, String>,
    as_table: bool,
) -> Response {
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map_or(MAX_WATCH, |t| Duration::from_secs(t).min(MAX_WATCH));
    let requested = query
        .get("resourceVersion")
        .filter(|v| !v.is_empty() && *v != "0")
        .cloned();
    let bookmarks = parse_bool(query.get("allowWatchBookmarks"));
    let include = table::Include::from_query(query.get("includeObject").map(String::as_str));
    // a streaming list (client-go's WatchList, kubectl's wait): the current state first,
    // whatever the resourceVersion, closed by a bookmark that says so
    let send_initial = parse_bool(query.get("sendInitialEvents"));
    let requested = if send_initial { None } else { requested };
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let bookmark = |revision: u64| {
            event_line(
                "BOOKMARK",
                &json!({"kind": kind.kind, "apiVersion": kind.api_version(),
                        "metadata": {"resourceVersion": revision.to_string()}}),
            )
        };
        // `kubectl get -w` wants each object as a one-row Table.
        let shown = |object: Value| {
            if as_table {
                let rv = object["metadata"]["resourceVersion"].as_str().unwrap_or("").to_owned();
                table::table(kind, vec![object], &rv, objects::now_timestamp(), include)
            } else {
                object
            }
        };
        let mut next_bookmark = tokio::time::Instant::now() + BOOKMARK_PERIOD;
        let store_name = kind.store_name();
        let in_scope = |ns: &str| namespace.as_deref().is_none_or(|want| want == ns);
        let mut from = match requested.map(|v| v.parse::<u64>()) {
            Some(Ok(rv)) => rv,
            Some(Err(_)) => {
                let _ = tx
                    .send(event_line("ERROR", &Status::bad_request("invalid resourceVersion")))
                    .await;
                return;
            }
            None => match objects::list(state.registry.store(), kind, namespace.as_deref()) {
                Ok((items, rev)) => {
                    for item in items.into_iter().filter(|i| filter.matches(i)) {
                        if tx.send(event_line("ADDED", &shown(item))).await.is_err() {
                            return;
                        }
                    }
                    if send_initial {
                        let end = event_line(
                            "BOOKMARK",
                            &json!({"kind": kind.kind, "apiVersion": kind.api_version(),
                                    "metadata": {"resourceVersion": rev.to_string(),
                                                 "annotations": {"k8s.io/initial-events-end": "true"}}}),
                        );
                        if tx.send(end).await.is_err() {
                            return;
                        }
                    }
                    rev
                }
                Err(_) => return,
            },
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let mut revision = state.revision.clone();
        loop {
            match state.registry.store().changes_since(from, Some(&store_name)) {
                Ok(changes) => {
                    for e in changes.events {
                        from = e.object.revision;
                        if !in_scope(&e.object.key.namespace) {
                            continue;
                        }
                        let Ok(object) = objects::decode(&e.object.value, e.object.revision) else {
                            continue;
                        };
                        if !filter.matches(&object) {
                            continue;
                        }
                        let kind = match e.kind {
                            EventKind::Added => "ADDED",
                            EventKind::Modified => "MODIFIED",
                            EventKind::Deleted => "DELETED",
                        };
                        if tx.send(event_line(kind, &shown(object))).await.is_err() {
                            return;
                        }
                    }
                    from = from.max(changes.revision);
                }
                Err(StoreError::Expired {
                    requested,
                    oldest_available,
                }) => {
                    let mut s =
                        Status::bad_request(format!("too old resource version: {requested} ({oldest_available})"));
                    s.reason = "Expired".into();
                    s.code = 410;
                    let _ = tx.send(event_line("ERROR", &s)).await;
                    return;
                }
                Err(_) => return,
            }
            tokio::select! {
                changed = revision.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep_until(deadline) => {
                    // Like upstream, a bookmark right before the watch ends lets the client
                    // resume from the latest revision rather than its last event's.
                    if bookmarks {
                        let _ = tx.send(bookmark(from)).await;
                    }
                    return;
                }
                _ = tokio::time::sleep_until(next_bookmark), if bookmarks => {
                    next_bookmark += BOOKMARK_PERIOD;
                    if tx.send(bookmark(from)).await.is_err() {
                        return;
                    }
                }
                _ = tx.closed() => return,
            }
        }
    });
    let stream = tokio_stream(rx).map(Ok::<_, std::convert::Infallible>);
    let mut response = Response::new(Body::from_stream(stream));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

pub(super) fn tokio_stream(mut rx: tokio::sync::mpsc::Receiver<Bytes>) -> impl futures::Stream<Item = Bytes> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
