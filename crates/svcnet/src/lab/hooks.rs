//! How the lab's API server reaches pods: for the `proxy` subresources, connections are
//! opened from inside a node's network namespace (where every pod address is routed), by a
//! thread that enters it for that one connection; for `pods/log`, the kubelets' output files.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub struct NodeDialer {
    pub netns: String,
}

impl svcnet_apiserver::proxy::Dialer for NodeDialer {
    fn dial(&self, addr: SocketAddr) -> std::io::Result<TcpStream> {
        let netns = self.netns.clone();
        // a thread of its own: entering a namespace must not leak into a pooled thread; the
        // socket stays in the node's namespace whichever thread uses it later
        std::thread::spawn(move || {
            crate::netns::enter(&netns)?;
            TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        })
        .join()
        .map_err(|_| std::io::Error::other("dialer thread panicked"))?
    }
}

/// Container output as the lab's kubelets write it: one file per container in the lab's
/// state directory (see `kubelet::worker`).
pub struct LogFiles {
    pub dir: std::path::PathBuf,
}

impl LogFiles {
    pub fn path(dir: &std::path::Path, namespace: &str, pod: &str, container: &str) -> std::path::PathBuf {
        dir.join(format!("{namespace}_{pod}_{container}.log"))
    }

    /// Where the previous run's output goes when a container restarts.
    pub fn previous_path(dir: &std::path::Path, namespace: &str, pod: &str, container: &str) -> std::path::PathBuf {
        dir.join(format!("{namespace}_{pod}_{container}.previous.log"))
    }
}

impl svcnet_apiserver::logs::PodLogs for LogFiles {
    fn read(&self, namespace: &str, pod: &str, container: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(Self::path(&self.dir, namespace, pod, container))
    }

    fn read_previous(&self, namespace: &str, pod: &str, container: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(Self::previous_path(&self.dir, namespace, pod, container))
    }

    fn read_from(&self, namespace: &str, pod: &str, container: &str, offset: u64) -> std::io::Result<Vec<u8>> {
        use std::io::{Read, Seek, SeekFrom};
        let mut file = std::fs::File::open(Self::path(&self.dir, namespace, pod, container))?;
        file.seek(SeekFrom::Start(offset))?;
        let mut added = Vec::new();
        file.read_to_end(&mut added)?;
        Ok(added)
    }
}
