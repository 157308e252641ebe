//! The resource handlers: get, list, create, replace, status, scale, patch and delete, each
//! dispatching once on the kind (Services to the registry, the rest to the generic layer).

use super::*;

/// Where a request points, from the path parameters of any route.
pub(super) struct Target {
    kind: &'static Kind,
    namespace: Option<String>,
    name: Option<String>,
}

/// `None` when the path names no served resource (404).
pub(super) fn target(p: &HashMap<String, String>) -> Option<Target> {
    let group = p.get("group").map_or("", String::as_str);
    let version = p.get("version").map_or("v1", String::as_str);
    let resource = p.get("resource").map_or("", String::as_str);
    let kind = resources::find(group, version, resource)?;
    let namespace = p.get("ns").cloned();
    // a namespaced resource needs its namespace (except for lists across namespaces), a
    // cluster-scoped one must not have one
    if namespace.is_some() && !kind.namespaced {
        return None;
    }
    let name = p.get("name").cloned();
    if kind.namespaced && name.is_some() && namespace.is_none() {
        return None;
    }
    Some(Target { kind, namespace, name })
}

pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Box<Status>> + Send + 'static,
) -> Result<T, Box<Status>> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(Box::new(Status::internal(&e.to_string()))))
}

pub(super) async fn collection_get(
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let Some(t) = target(&p) else {
        return not_found_response();
    };
    let filter = match Filter::from_query(t.kind, &q) {
        Ok(f) => f,
        Err(s) => return status_response(&s),
    };
    if parse_bool(q.get("watch")) {
        let as_table = wants_table(&headers);
        return watch(state, t.kind, t.namespace, filter, &q, as_table);
    }
    let after = match q.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => match Continue::decode(token) {
            Ok(c) => Some(c),
            Err(s) => return status_response(&s),
        },
        None => None,
    };
    // as upstream: a limit of 0 or less lists everything
    let limit = match q.get("limit").map(|l| l.parse::<i64>()) {
        None => 0,
        Some(Ok(l)) => usize::try_from(l).unwrap_or(0),
        Some(Err(_)) => return status_response(&Status::bad_request("invalid limit")),
    };
    if let Some(rv) = q.get("resourceVersion").filter(|v| !v.is_empty())
        && rv.parse::<u64>().is_err()
    {
        return status_response(&Status::bad_request(format!(
            "invalid resource version: resourceVersion: Invalid value: {}: strconv.ParseUint: parsing {}: invalid syntax",
            svcnet_core::field::go_quote(rv),
            svcnet_core::field::go_quote(rv)
        )));
    }
    let page = if filter.is_empty() && limit > 0 {
        // no selector: the store reads just the page, in key order, after the token's position
        let resume = after.as_ref().map(|c| (c.namespace.as_str(), c.name.as_str()));
        match objects::list_page(state.registry.store(), t.kind, t.namespace.as_deref(), resume, limit) {
            Ok((stored, remaining, rev)) => {
                let rev = after.as_ref().map_or(rev, |c| c.revision);
                let items: Vec<Value> = match stored.iter().map(|s| objects::decode(&s.value, s.revision)).collect() {
                    Ok(items) => items,
                    Err(s) => return status_response(&s),
                };
                let next = (remaining > 0).then(|| {
                    let last = &stored[stored.len() - 1].key;
                    Continue {
                        revision: rev,
                        namespace: last.namespace.clone(),
                        name: last.name.clone(),
                    }
                });
                (paging::Page { items, next, remaining }, rev)
            }
            Err(s) => return status_response(&s),
        }
    } else {
        let (items, rev) = match objects::list(state.registry.store(), t.kind, t.namespace.as_deref()) {
            Ok(listed) => listed,
            Err(s) => return status_response(&s),
        };
        let items: Vec<Value> = items.into_iter().filter(|i| filter.matches(i)).collect();
        // A continued list reports the first page's revision (see `paging`).
        let rev = after.as_ref().map_or(rev, |c| c.revision);
        (paging::page(items, limit, after.as_ref(), rev), rev)
    };
    let (page, rev) = page;
    let include = table::Include::from_query(q.get("includeObject").map(String::as_str));
    let mut body = if wants_table(&headers) {
        table::table(t.kind, page.items, &rev.to_string(), objects::now_timestamp(), include)
    } else {
        // as upstream: a list names the kind once, its items do not
        let items: Vec<Value> = page
            .items
            .into_iter()
            .map(|mut item| {
                if let Some(fields) = item.as_object_mut() {
                    fields.remove("apiVersion");
                    fields.remove("kind");
                }
                item
            })
            .collect();
        let mut list = json!({"kind": format!("{}List", t.kind.kind), "apiVersion": t.kind.api_version(),
               "metadata": {"resourceVersion": rev.to_string()}});
        // moved in, not through `json!`, which would copy every item by serializing it
        list["items"] = Value::Array(items);
        list
    };
    if let Some(next) = &page.next {
        body["metadata"]["continue"] = json!(next.encode());
        body["metadata"]["remainingItemCount"] = json!(page.remaining);
    }
    json_response(StatusCode::OK, &body)
}

pub(super) fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(table::wants_table)
}

pub(super) async fn collection_post(
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    request: Request,
) -> Answer {
    let t = target(&p).ok_or_else(no_such_resource)?;
    if t.kind.namespaced && t.namespace.is_none() {
        return Err(no_such_resource());
    }
    let options = write_options(&request, "CreateOptions")?;
    let ownership = Ownership::of(&request, "CreateOptions", false)?;
    let mut body = read_json(t.kind, request).await?;
    if t.kind.create_only {
        return Ok(reply(crate::reviews::answer(t.kind, body), StatusCode::CREATED));
    }
    ownership.record_update(t.kind, None, &mut body, "");
    let ns = t.namespace.unwrap_or_default();
    let registry = state.registry.clone();
    if *t.kind == resources::SERVICES {
        let svc = as_service(body)?;
        let created = blocking(move || registry.create_service_with(&ns, svc, options))
            .await
            .and_then(|svc| serde_json::to_value(svc).map_err(|e| Box::new(Status::internal(&e.to_string()))));
        return Ok(written_reply(t.kind, created, StatusCode::CREATED, true));
    }
    let kind = t.kind;
    let created = blocking(move || {
        objects::create_with(
            registry.store(),
            kind,
            &ns,
            body,
            &mut objects::RandomIds::new(),
            options,
        )
    })
    .await;
    Ok(written_reply(kind, created, StatusCode::CREATED, true))
}

pub(super) async fn item_get(
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let Some(t) = target(&p) else {
        return not_found_response();
    };
    let name = t.name.unwrap_or_default();
    let got = objects::get(
        state.registry.store(),
        t.kind,
        t.namespace.as_deref().unwrap_or(""),
        &name,
    );
    match got {
        Ok(object) if wants_table(&headers) => {
            let rv = object["metadata"]["resourceVersion"].as_str().unwrap_or("").to_owned();
            json_response(
                StatusCode::OK,
                &table::table(
                    t.kind,
                    vec![object],
                    &rv,
                    objects::now_timestamp(),
                    table::Include::from_query(q.get("includeObject").map(String::as_str)),
                ),
            )
        }
        other => reply(other, StatusCode::OK),
    }
}

pub(super) async fn put(state: AppState, p: HashMap<String, String>, request: Request, status_only: bool) -> Answer {
    let t = target(&p).ok_or_else(no_such_resource)?;
    if status_only && !t.kind.has_status {
        return Err(no_such_resource());
    }
    let options = write_options(&request, "UpdateOptions")?;
    let ownership = Ownership::of(&request, "UpdateOptions", false)?;
    let mut body = read_json(t.kind, request).await?;
    let live = current(&state, &t).ok();
    ownership.record_update(
        t.kind,
        live.as_ref(),
        &mut body,
        if status_only { "status" } else { "" },
    );
    let written = write(&state, &t, body, status_only, options).await;
    if status_only {
        return Ok(reply(written, StatusCode::OK));
    }
    // a replace of a missing object created it (where the kind allows that)
    let created = live.is_none();
    let code = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(written_reply(t.kind, written, code, created))
}

/// Replaces an object (or its status) with `body`: Services through the registry, the rest
/// through the generic layer.
pub(super) async fn write(
    state: &AppState,
    t: &Target,
    body: Value,
    status_only: bool,
    options: WriteOptions,
) -> Result<Value, Box<Status>> {
    let (ns, name) = (
        t.namespace.clone().unwrap_or_default(),
        t.name.clone().unwrap_or_default(),
    );
    let registry = state.registry.clone();
    if *t.kind == resources::SERVICES {
        let svc = as_service(body)?;
        let svc = if status_only {
            blocking(move || registry.update_service_status_with(&ns, &name, svc, options)).await?
        } else {
            blocking(move || registry.update_service_with(&ns, &name, svc, options)).await?
        };
        return serde_json::to_value(svc).map_err(|e| Box::new(Status::internal(&e.to_string())));
    }
    let kind = t.kind;
    blocking(move || {
        objects::replace_with(
            registry.store(),
            kind,
            &ns,
            &name,
            body,
            if status_only {
                objects::Part::Status
            } else {
                objects::Part::Object
            },
            &mut objects::RandomIds::new(),
            options,
        )
    })
    .await
}

/// The write options in a request's query (`kind`: the options object named in errors).
pub(super) fn write_options(request: &Request, kind: &str) -> Result<WriteOptions, Box<Status>> {
    WriteOptions::from_query(&query_pairs(request.uri()), kind)
}

/// PATCH: a JSON patch (RFC 6902), JSON merge patch (RFC 7386) or strategic merge patch applied to the stored object,
/// then written as a replace (so conflicts and validation apply as for PUT).
pub(super) async fn patch(
    state: AppState,
    p: HashMap<String, String>,
    request: Request,
    status_only: bool,
) -> Response {
    let Some(t) = target(&p) else {
        return not_found_response();
    };
    if status_only && !t.kind.has_status {
        return not_found_response();
    }
    let result = async {
        let directive = field_validation_of(&request)?;
        let options = write_options(&request, "PatchOptions")?;
        let is_apply = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(APPLY_PATCH));
        let ownership = Ownership::of(&request, "PatchOptions", is_apply)?;
        let (content_type, body) = read_body(request).await?;
        let patch = Patch::parse(&content_type, &body)?;
        let subresource = if status_only { "status" } else { "" };
        if let Patch::Apply(config) = &patch {
            return apply_patch(&state, &t, config, &ownership, subresource, directive, options).await;
        }
        let name = t.name.clone().unwrap_or_default();
        // Like upstream, a patch that does not name a resourceVersion is re-applied to the
        // newer object when another write got in between, instead of failing with 409.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut current = objects::get(
                state.registry.store(),
                t.kind,
                t.namespace.as_deref().unwrap_or(""),
                &name,
            )?;
            let live = current.clone();
            patch.apply(&mut current)?;
            body_shape::check_patched(t.kind, &current)?;
            // a patch may not rename the object or take its metadata away
            let patched_name = current["metadata"]["name"].as_str().unwrap_or("");
            if patched_name.is_empty() {
                return Err(Box::new(Status::bad_request(format!(
                    "the name of the object ({name} based on URL) was undeterminable: name must be provided"
                ))));
            }
            if patched_name != name {
                return Err(Box::new(Status::bad_request(format!(
                    "the name of the object ({patched_name}) does not match the name on the URL ({name})"
                ))));
            }
            field_validation::check(t.kind, directive, &current)?;
            ownership.record_update(t.kind, Some(&live), &mut current, subresource);
            match write(&state, &t, current, status_only, options).await {
                Err(s) if s.code == 409 && !patch.pins_resource_version() && attempts < PATCH_ATTEMPTS => continue,
                written => return written.map(|o| (o, StatusCode::OK)),
            }
        }
    }
    .await;
    // an apply that created the object answers 201
    let (result, code) = match result {
        Ok((object, code)) => (Ok(object), code),
        Err(e) => (Err(e), StatusCode::OK),
    };
    if status_only {
        return reply(result, code);
    }
    written_reply(t.kind, result, code, code == StatusCode::CREATED)
}

/// A server-side apply: the configuration merged into the live object (or creating it) by
/// the type's schema, owners recorded and conflicts refused (`crate::apply`), then written as
/// a replace or a create, so validation, admission and dry run apply as for those.
async fn apply_patch(
    state: &AppState,
    t: &Target,
    config: &Value,
    ownership: &Ownership,
    subresource: &str,
    directive: field_validation::Directive,
    options: WriteOptions,
) -> Result<(Value, StatusCode), Box<Status>> {
    let name = t.name.clone().unwrap_or_default();
    let mut config = config.clone();
    match config["metadata"]["name"].as_str() {
        Some(n) if n != name => {
            return Err(Box::new(Status::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            ))));
        }
        _ => {}
    }
    crate::apply::check_type(t.kind, &config)?;
    if config["kind"].as_str() != Some(t.kind.kind) {
        return Err(Box::new(Status::bad_request(format!(
            "the kind of the object ({}) does not match the kind on the URL ({})",
            config["kind"].as_str().unwrap_or(""),
            t.kind.kind
        ))));
    }
    field_validation::check(t.kind, directive, &config)?;
    let pinned = config["metadata"].get("resourceVersion").is_some();
    for _ in 0..PATCH_ATTEMPTS {
        let live = match objects::get(
            state.registry.store(),
            t.kind,
            t.namespace.as_deref().unwrap_or(""),
            &name,
        ) {
            Ok(live) => Some(live),
            Err(s) if s.code == 404 && subresource.is_empty() => None,
            Err(s) => return Err(s),
        };
        let Some(live) = live else {
            // an apply to nothing creates the object
            match config.get_mut("metadata") {
                Some(Value::Object(meta)) => {
                    meta.insert("name".into(), name.clone().into());
                }
                None | Some(Value::Null) => config["metadata"] = json!({ "name": name }),
                // not a map: the apply refuses it, naming the field
                Some(_) => {}
            }
            let mut created = ownership.apply(t.kind, None, &config, subresource)?;
            body_shape::check_patched(t.kind, &created)?;
            created["apiVersion"] = t.kind.api_version().into();
            created["kind"] = t.kind.kind.into();
            let ns = t.namespace.clone().unwrap_or_default();
            let registry = state.registry.clone();
            let kind = t.kind;
            let created = if *kind == resources::SERVICES {
                let svc = as_service(created)?;
                blocking(move || registry.create_service_with(&ns, svc, options))
                    .await
                    .and_then(|svc| serde_json::to_value(svc).map_err(|e| Box::new(Status::internal(&e.to_string()))))
            } else {
                blocking(move || {
                    objects::create_with(
                        registry.store(),
                        kind,
                        &ns,
                        created,
                        &mut objects::RandomIds::new(),
                        options,
                    )
                })
                .await
            };
            return created.map(|o| (o, StatusCode::CREATED));
        };
        let applied = ownership.apply(t.kind, Some(&live), &config, subresource)?;
        body_shape::check_patched(t.kind, &applied)?;
        match write(state, t, applied, !subresource.is_empty(), options).await {
            Err(s) if s.code == 409 && s.reason != "Conflict" => return Err(s),
            Err(s) if s.code == 409 && !pinned && s.details.as_ref().is_none_or(|d| d.causes.is_empty()) => continue,
            written => return written.map(|o| (o, StatusCode::OK)),
        }
    }
    Err(Box::new(Status::conflict(t.kind.group, t.kind.plural, &name)))
}

/// The object behind a `/scale` request (404 unless its kind has the subresource).
pub(super) fn scale_target(p: &HashMap<String, String>) -> Result<Target, Box<Status>> {
    match target(p) {
        Some(t) if t.kind.has_scale => Ok(t),
        _ => Err(Box::new(not_found_status())),
    }
}

pub(super) fn current(state: &AppState, t: &Target) -> Result<Value, Box<Status>> {
    objects::get(
        state.registry.store(),
        t.kind,
        t.namespace.as_deref().unwrap_or(""),
        t.name.as_deref().unwrap_or(""),
    )
}

pub(super) async fn scale_get(State(state): State<AppState>, Path(p): Path<HashMap<String, String>>) -> Response {
    let result = scale_target(&p)
        .and_then(|t| current(&state, &t))
        .map(|obj| scale::to_scale(&obj));
    reply(result, StatusCode::OK)
}

pub(super) async fn scale_put(
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    request: Request,
) -> Response {
    let result = async {
        let t = scale_target(&p)?;
        let options = write_options(&request, "UpdateOptions")?;
        let ownership = Ownership::of(&request, "UpdateOptions", false)?;
        let (content_type, body) = read_body(request).await?;
        let wanted = object_json(&content_type, &body)?;
        let live = current(&state, &t)?;
        let mut obj = scale::apply_scale(live.clone(), &wanted)?;
        ownership.record_update(t.kind, Some(&live), &mut obj, "scale");
        write(&state, &t, obj, false, options)
            .await
            .map(|o| scale::to_scale(&o))
    }
    .await;
    reply(result, StatusCode::OK)
}

pub(super) async fn scale_patch(
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    request: Request,
) -> Response {
    let result = async {
        let t = scale_target(&p)?;
        let options = write_options(&request, "PatchOptions")?;
        let ownership = Ownership::of(&request, "PatchOptions", false)?;
        let (content_type, body) = read_body(request).await?;
        let patch = Patch::parse(&content_type, &body)?;
        for _ in 0..PATCH_ATTEMPTS {
            let obj = current(&state, &t)?;
            let mut wanted = scale::to_scale(&obj);
            patch.apply(&mut wanted)?;
            let mut scaled = scale::apply_scale(obj.clone(), &wanted)?;
            ownership.record_update(t.kind, Some(&obj), &mut scaled, "scale");
            match write(&state, &t, scaled, false, options).await {
                Err(s) if s.code == 409 && !patch.pins_resource_version() => continue,
                written => return written.map(|o| scale::to_scale(&o)),
            }
        }
        Err(Box::new(Status::conflict(
            t.kind.group,
            t.kind.plural,
            t.name.as_deref().unwrap_or(""),
        )))
    }
    .await;
    reply(result, StatusCode::OK)
}

pub(super) async fn item_patch(
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    request: Request,
) -> Response {
    patch(state, p, request, false).await
}

pub(super) async fn status_patch(
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    request: Request,
) -> Response {
    patch(state, p, request, true).await
}

/// DELETE on a collection: removes every object the selectors match, each with the request's
/// DeleteOptions (a dry run removes nothing); returns them as a list.
pub(super) async fn collection_delete(
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    request: Request,
) -> Answer {
    let t = target(&p).ok_or_else(no_such_resource)?;
    let query = query_pairs(request.uri());
    let filter = Filter::from_query(t.kind, &query_map(&query))?;
    let options = delete_options_of(&query, request).await?;
    let (items, _) = objects::list(state.registry.store(), t.kind, t.namespace.as_deref())?;
    let options = Arc::new(options);
    let mut deleted = Vec::new();
    for item in items.into_iter().filter(|i| filter.matches(i)) {
        let ns = item["metadata"]["namespace"].as_str().unwrap_or("").to_owned();
        let name = item["metadata"]["name"].as_str().unwrap_or("").to_owned();
        let (registry, kind, options) = (state.registry.clone(), t.kind, options.clone());
        match blocking(move || delete_one(&registry, kind, &ns, &name, &options)).await {
            Ok(v) => deleted.push(v),
            // gone meanwhile, or (deleting every namespace) one that may not be deleted
            Err(s) if s.code == 404 => {}
            Err(s) if s.code == 403 && *t.kind == resources::NAMESPACES => {}
            Err(s) => return Err(s.into()),
        }
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({"kind": format!("{}List", t.kind.kind), "apiVersion": t.kind.api_version(),
                "metadata": {}, "items": deleted}),
    ))
}

pub(super) async fn item_put(
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    request: Request,
) -> Answer {
    put(state, p, request, false).await
}

pub(super) async fn status_put(
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    request: Request,
) -> Answer {
    put(state, p, request, true).await
}

/// `namespaces/NAME/status` as the `{resource}/{name}/status` handlers see a status path.
fn namespace_status_params(mut p: HashMap<String, String>) -> HashMap<String, String> {
    let name = p.remove("ns").unwrap_or_default();
    p.insert("resource".into(), "namespaces".into());
    p.insert("name".into(), name);
    p
}

pub(super) async fn namespace_status_get(
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    query: Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    item_get(State(state), Path(namespace_status_params(p)), query, headers).await
}

pub(super) async fn namespace_status_put(
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    request: Request,
) -> Answer {
    put(state, namespace_status_params(p), request, true).await
}

/// `namespaces/NAME/finalize`: the Namespace with `spec.finalizers` as sent (the path through
/// which the namespace controller, or a user, removes a finalizer), status kept.
pub(super) async fn namespace_finalize(
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    request: Request,
) -> Answer {
    let t = target(&namespace_status_params(p)).ok_or_else(no_such_resource)?;
    let options = write_options(&request, "UpdateOptions")?;
    let body = read_json(t.kind, request).await?;
    let (registry, name) = (state.registry.clone(), t.name.clone().unwrap_or_default());
    let written = blocking(move || {
        objects::replace_with(
            registry.store(),
            &resources::NAMESPACES,
            "",
            &name,
            body,
            objects::Part::Finalizers,
            &mut objects::RandomIds::new(),
            options,
        )
    })
    .await;
    Ok(reply(written, StatusCode::OK))
}

pub(super) async fn namespace_status_patch(
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    request: Request,
) -> Response {
    patch(state, namespace_status_params(p), request, true).await
}

pub(super) async fn item_delete(
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    request: Request,
) -> Answer {
    let t = target(&p).ok_or_else(no_such_resource)?;
    let (ns, name) = (t.namespace.unwrap_or_default(), t.name.unwrap_or_default());
    let registry = state.registry.clone();
    // options come in the query or in a DeleteOptions body; every one is honoured or refused
    let query = query_pairs(request.uri());
    let options = delete_options_of(&query, request).await?;
    let kind = t.kind;
    let deleted = blocking(move || delete_one(&registry, kind, &ns, &name, &options)).await?;
    Ok(json_response(StatusCode::OK, &deleted))
}

/// A DELETE's options, from its `query` pairs and its (optional) DeleteOptions body.
async fn delete_options_of(
    query: &[(String, String)],
    request: Request,
) -> Result<delete_options::DeleteOptions, Box<Status>> {
    let (content_type, body) = read_body(request).await?;
    let body = if body.is_empty() {
        Value::Null
    } else {
        object_json(&content_type, &body)?
    };
    delete_options::parse(query, &body)
}

/// Deletes one object of `kind` with `options`: preconditions checked first; a dry run stops
/// after every check and returns the object as it is, writing nothing. Without preconditions,
/// a delete that lost a race with another write (a controller updating the status) is tried
/// again on the newer object, as upstream's storage does; with them, the race is the
/// client's 409.
pub(super) fn delete_one(
    registry: &Registry,
    kind: &'static Kind,
    ns: &str,
    name: &str,
    options: &delete_options::DeleteOptions,
) -> Result<Value, Box<Status>> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        match delete_once(registry, kind, ns, name, options) {
            Err(s)
                if s.code == 409
                    && s.reason == "Conflict"
                    && !options.has_preconditions()
                    && attempts < PATCH_ATTEMPTS =>
            {
                continue;
            }
            done => return done,
        }
    }
}

fn delete_once(
    registry: &Registry,
    kind: &'static Kind,
    ns: &str,
    name: &str,
    options: &delete_options::DeleteOptions,
) -> Result<Value, Box<Status>> {
    if options.dry_run || options.has_preconditions() {
        let current = objects::get(registry.store(), kind, ns, name)?;
        options.check(&current, kind)?;
        if options.dry_run {
            if *kind == resources::NAMESPACES {
                namespaces::check_deletable(name)?;
            }
            return Ok(current);
        }
    }
    if *kind == resources::PODS {
        return objects::delete_pod(registry.store(), ns, name, options.grace_period_seconds).map(|(v, _)| v);
    }
    if *kind == resources::SERVICES {
        return registry
            .delete_service(ns, name)
            .map(|s| serde_json::to_value(s).unwrap_or_default());
    }
    if *kind == resources::NAMESPACES {
        return namespaces::delete(registry.store(), name);
    }
    gc::delete_with(
        registry.store(),
        kind,
        ns,
        name,
        options.propagation,
        &mut objects::RandomIds::new(),
    )
}
