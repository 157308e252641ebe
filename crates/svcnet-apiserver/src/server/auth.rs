//! Who may ask: bearer-token authentication (the scheme case-insensitive), the public health
//! and version paths, draining a body before an early answer, and the create-only reviews.

use super::*;

/// Paths anyone may read without a token, as upstream's `system:public-info-viewer` allows.
pub(super) const PUBLIC_PATHS: [&str; 4] = ["/healthz", "/livez", "/readyz", "/version"];

/// How much of a body an early answer (401, 405) reads and discards first, as Go's server
/// does, so the client reads the answer instead of a reset connection.
pub(super) const EARLY_ANSWER_DRAIN: usize = 256 * 1024;

pub(super) async fn drain(request: Request) {
    let mut chunks = request.into_body().into_data_stream();
    let mut seen = 0usize;
    while seen <= EARLY_ANSWER_DRAIN {
        match chunks.next().await {
            Some(Ok(chunk)) => seen += chunk.len(),
            _ => return,
        }
    }
}

/// Whether an `Authorization` header carries `token` as a bearer token (the scheme is
/// case-insensitive, as upstream's authenticator treats it).
pub(super) fn bearer_matches(header_value: &[u8], token: &str) -> bool {
    let Some(space) = header_value.iter().position(|b| *b == b' ') else {
        return false;
    };
    let (scheme, rest) = header_value.split_at(space);
    scheme.eq_ignore_ascii_case(b"bearer") && rest[1..].trim_ascii() == token.as_bytes()
}

pub(super) async fn authenticate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().trim_end_matches('/');
    if PUBLIC_PATHS.contains(&path) || PUBLIC_PATHS.iter().any(|p| path.starts_with(&format!("{p}/"))) {
        return next.run(request).await;
    }
    let ok = request
        .headers()
        .get(header::AUTHORIZATION)
        .is_some_and(|v| bearer_matches(v.as_bytes(), &state.token));
    if !ok {
        drain(request).await;
        let mut s = Status::bad_request("Unauthorized");
        s.reason = "Unauthorized".into();
        s.code = 401;
        return status_response(&s);
    }
    next.run(request).await
}

/// Reviews (create-only kinds) take POST on their collection and nothing else (405).
pub(super) async fn create_only(request: Request, next: Next) -> Response {
    let segments: Vec<&str> = request.uri().path().trim_matches('/').split('/').collect();
    let kind = match segments.as_slice() {
        ["apis", group, version, plural, rest @ ..] => {
            resources::find(group, version, plural).map(|k| (k, rest.is_empty()))
        }
        _ => None,
    };
    match kind {
        Some((kind, collection))
            if kind.create_only && !(collection && request.method() == axum::http::Method::POST) =>
        {
            method_not_allowed(request).await
        }
        _ => next.run(request).await,
    }
}
