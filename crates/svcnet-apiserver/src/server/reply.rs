//! Answers: JSON bodies (ending in a newline, as upstream's encoder writes them) and
//! Kubernetes `Status` bodies for every error.

use super::*;

/// Bodies end in a newline, as upstream's JSON encoder writes them.
pub(super) fn status_response(status: &Status) -> Response {
    let code = StatusCode::from_u16(status.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut body = status.to_json();
    body.push('\n');
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

pub(super) fn json_response(code: StatusCode, value: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(mut body) => {
            body.push(b'\n');
            (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Err(e) => status_response(&Status::internal(&e.to_string())),
    }
}

pub(super) fn reply<T: serde::Serialize>(r: Result<T, Box<Status>>, code: StatusCode) -> Response {
    match r {
        Ok(v) => json_response(code, &v),
        Err(status) => status_response(&status),
    }
}

pub(super) fn not_found_status() -> Status {
    let mut s = Status::bad_request("the server could not find the requested resource");
    s.reason = "NotFound".into();
    s.code = 404;
    // upstream's answer carries empty details
    s.details = Some(Default::default());
    s
}

pub(super) fn not_found_response() -> Response {
    status_response(&not_found_status())
}

pub(super) async fn not_found() -> Response {
    not_found_response()
}

pub(super) async fn method_not_allowed(request: Request) -> Response {
    drain(request).await;
    let mut s = Status::bad_request("the server does not allow this method on the requested resource");
    s.reason = "MethodNotAllowed".into();
    s.code = 405;
    // upstream's carries empty details
    s.details = Some(Default::default());
    status_response(&s)
}

/// An error answer: any `Box<Status>` converts into it, so handlers returning
/// `Result<Response, ApiError>` use `?`, and it renders as the Status body.
pub(super) struct ApiError(Box<Status>);

impl From<Box<Status>> for ApiError {
    fn from(status: Box<Status>) -> Self {
        ApiError(status)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        status_response(&self.0)
    }
}

/// What a handler answers.
pub(super) type Answer = Result<Response, ApiError>;

/// 404 for a path that names no served resource, as an error for `?`.
pub(super) fn no_such_resource() -> ApiError {
    ApiError(Box::new(not_found_status()))
}

/// A write's answer, with the warnings upstream returns about the accepted object as
/// `Warning` headers (`299 - "text"`, which kubectl prints as `Warning: text`).
pub(super) fn written_reply(kind: &Kind, r: Result<Value, Box<Status>>, code: StatusCode, create: bool) -> Response {
    let warnings = match (&r, crate::kinds::of(kind)) {
        (Ok(v), Some(strategy)) => (strategy.warnings)(v, create),
        _ => Vec::new(),
    };
    let mut response = reply(r, code);
    for w in warnings {
        let text = format!("299 - {}", svcnet_core::field::go_quote(&w));
        if let Ok(value) = header::HeaderValue::from_str(&text) {
            response.headers_mut().append(header::WARNING, value);
        }
    }
    response
}

/// The answer when a handler panicked: a bug, logged with its message; the client gets a 500
/// Status and the server goes on serving (upstream's panic filter does the same).
pub(super) fn panicked(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    tracing::error!(panic = what, "a request handler panicked");
    status_response(&Status::internal(
        "the request made the API server fail; the server's log has the details",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_is_answered_with_a_500_status() {
        let response = panicked(Box::new("boom"));
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        let status: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["reason"], "InternalError");
    }
}
