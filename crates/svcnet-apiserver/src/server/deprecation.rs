//! Deprecated kinds: every request to one (read, write or watch, answered or refused) carries
//! upstream's deprecation warning first, so `kubectl get endpoints` warns as it does against
//! kube-apiserver.

use super::*;

/// The kind a request path addresses (`/api/v1/namespaces/x/endpoints/y` → Endpoints).
fn kind_of_path(path: &str) -> Option<&'static Kind> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let plural = match rest {
        ["namespaces", _, plural, ..] => plural,
        [plural, ..] => plural,
        [] => return None,
    };
    resources::find(group, version, plural)
}

/// Puts the addressed kind's deprecation warning before any other warning of the answer.
pub(super) async fn warn_deprecated(request: Request, next: Next) -> Response {
    let warning = kind_of_path(request.uri().path())
        .and_then(crate::kinds::of)
        .and_then(|strategy| strategy.deprecated);
    let mut response = next.run(request).await;
    if let Some(warning) = warning {
        let text = format!("299 - {}", svcnet_core::field::go_quote(warning));
        if let Ok(value) = HeaderValue::from_str(&text) {
            let headers = response.headers_mut();
            let others: Vec<HeaderValue> = headers.get_all(header::WARNING).iter().cloned().collect();
            headers.remove(header::WARNING);
            headers.append(header::WARNING, value);
            for other in others {
                headers.append(header::WARNING, other);
            }
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_their_kind() {
        assert_eq!(
            kind_of_path("/api/v1/namespaces/d/endpoints/x"),
            Some(&resources::ENDPOINTS)
        );
        assert_eq!(kind_of_path("/api/v1/endpoints"), Some(&resources::ENDPOINTS));
        assert_eq!(kind_of_path("/api/v1/namespaces/d"), Some(&resources::NAMESPACES));
        assert_eq!(kind_of_path("/api/v1/namespaces"), Some(&resources::NAMESPACES));
        assert_eq!(
            kind_of_path("/apis/apps/v1/namespaces/d/deployments/x/scale"),
            Some(&resources::DEPLOYMENTS)
        );
        assert_eq!(kind_of_path("/version"), None);
        assert_eq!(kind_of_path("/apis/apps/v1"), None);
    }

    #[test]
    fn only_endpoints_are_deprecated() {
        let deprecated: Vec<&str> = crate::kinds::STRATEGIES
            .iter()
            .filter(|s| s.deprecated.is_some())
            .map(|s| s.kind.kind)
            .collect();
        assert_eq!(deprecated, ["Endpoints"]);
    }
}
