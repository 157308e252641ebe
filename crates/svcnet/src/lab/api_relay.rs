//! Makes the lab's API server reachable from inside a node's network namespace at the address
//! it has on the host's loopback, for node programs that cannot be told to program another
//! namespace than their own (upstream's kube-proxy). A listener inside the node's namespace
//! on `127.0.0.1:PORT` hands each connection to the API server's `127.0.0.1:PORT` in the root
//! namespace, byte for byte (TLS passes through, so the same kubeconfig works on both sides).

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};

/// Binds the relay's listener in `netns` (call from inside a runtime).
pub fn bind(netns: &str, api: SocketAddr) -> std::io::Result<TcpListener> {
    let runtime = tokio::runtime::Handle::current();
    crate::netns::in_netns(netns, || {
        let _inside = runtime.enter();
        let listener = std::net::TcpListener::bind(api)?;
        listener.set_nonblocking(true)?;
        TcpListener::from_std(listener)
    })
}

/// Relays every connection `listener` accepts to `api`, until the task is dropped.
pub async fn serve(listener: TcpListener, api: SocketAddr) {
    loop {
        let (mut inside, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "API relay: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            match TcpStream::connect(api).await {
                Ok(mut outside) => {
                    let _ = tokio::io::copy_bidirectional(&mut inside, &mut outside).await;
                }
                Err(e) => tracing::warn!(error = %e, %api, "API relay: cannot reach the API server"),
            }
        });
    }
}
