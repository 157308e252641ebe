//! `GET .../pods/NAME/log`: a container's output, from a [`PodLogs`] source the embedder
//! provides (the lab's kubelets write each container's output to a file). Selecting the
//! container and cutting to `tailLines`/`limitBytes` are pure. With `follow`, the server
//! keeps polling the source and streams what is added until the pod is gone or replaced.

use std::sync::Arc;

use serde_json::Value;
use svcnet_core::status::Status;

use crate::objects::Reply;

/// Where container output comes from.
pub trait PodLogs: Send + Sync {
    /// Everything `container` of the pod has written so far.
    fn read(&self, namespace: &str, pod: &str, container: &str) -> std::io::Result<Vec<u8>>;

    /// What the previous run of `container` wrote (`previous=true`), if it has restarted.
    fn read_previous(&self, namespace: &str, pod: &str, container: &str) -> std::io::Result<Vec<u8>> {
        let _ = (namespace, pod, container);
        Err(std::io::ErrorKind::NotFound.into())
    }

    /// What `container` has written from byte `offset` on (for `follow`).
    fn read_from(&self, namespace: &str, pod: &str, container: &str, offset: u64) -> std::io::Result<Vec<u8>> {
        let all = self.read(namespace, pod, container)?;
        Ok(all.get(offset as usize..).unwrap_or_default().to_vec())
    }
}

pub type SharedPodLogs = Arc<dyn PodLogs>;

/// The container a log request means: the one named, or the only one.
pub fn container_of(pod: &Value, wanted: Option<&str>) -> Reply<String> {
    let name = pod["metadata"]["name"].as_str().unwrap_or("");
    let containers: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    match wanted {
        Some(c) if containers.contains(&c) => Ok(c.to_owned()),
        Some(c) => Err(Box::new(Status::bad_request(format!(
            "container {c} is not valid for pod {name}"
        )))),
        None if containers.len() == 1 => Ok(containers[0].to_owned()),
        None => Err(Box::new(Status::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            containers.join(" ")
        )))),
    }
}

/// The last `tail_lines` lines (all when `None`), then at most `limit_bytes`.
pub fn cut(text: &[u8], tail_lines: Option<usize>, limit_bytes: Option<usize>) -> Vec<u8> {
    let mut start = 0;
    if let Some(n) = tail_lines {
        let body = text.strip_suffix(b"\n").unwrap_or(text);
        let mut seen = 0;
        start = text.len();
        for (i, b) in body.iter().enumerate().rev() {
            if *b == b'\n' {
                seen += 1;
                if seen == n {
                    start = i + 1;
                    break;
                }
            }
            start = i;
        }
        if n == 0 {
            start = text.len();
        }
    }
    let mut out = text[start..].to_vec();
    if let Some(limit) = limit_bytes {
        out.truncate(limit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tails_and_limits() {
        let text = b"one\ntwo\nthree\n";
        assert_eq!(cut(text, None, None), text);
        assert_eq!(cut(text, Some(2), None), b"two\nthree\n");
        assert_eq!(cut(text, Some(5), None), text);
        assert_eq!(cut(text, Some(0), None), b"");
        assert_eq!(cut(text, Some(1), Some(3)), b"thr");
        assert_eq!(cut(b"no newline", Some(1), None), b"no newline");
    }

    #[test]
    fn containers_are_chosen_as_upstream() {
        let one = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}});
        assert_eq!(container_of(&one, None).unwrap(), "a");
        let two = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(
            container_of(&two, None).unwrap_err().message,
            "a container name must be specified for pod p, choose one of: [a b]"
        );
        assert_eq!(container_of(&two, Some("b")).unwrap(), "b");
        assert_eq!(
            container_of(&two, Some("c")).unwrap_err().message,
            "container c is not valid for pod p"
        );
    }
}
