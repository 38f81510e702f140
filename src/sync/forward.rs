//! Port-forwards from 127.0.0.1 to every service port, in-process (kube-rs portforward over
//! the websocket). Each accepted connection picks a ready pod of the service at that moment,
//! so a forward survives the pods behind it being replaced (a rebuild, a crash, a pod deleted
//! by hand): the next connection goes to the new pod. A local port that is taken moves to the
//! next free one, and the caller says so.

use std::time::{Duration, Instant};

use ::kube::Api;
use k8s_openapi::api::core::v1::Pod;
use tokio::net::{TcpListener, TcpStream};

use super::Error;
use super::pods;

/// How far above the wanted port a free one is searched.
const PORT_SEARCH: u16 = 100;
/// How long a connection waits for a ready pod (during a rollout, a restart).
const POD_WAIT: Duration = Duration::from_secs(60);

/// One forwarded service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub service: String,
    /// Port in the pod.
    pub port: u16,
    /// Port on 127.0.0.1.
    pub local: u16,
}

impl Forward {
    /// True when the wanted local port (the pod's) was taken and another one is used.
    pub fn moved(&self) -> bool {
        self.local != self.port
    }
}

/// Binds 127.0.0.1 on `wanted`, or the next free port above it; `taken` are ports this run
/// already handed out (to keep two services from racing for one).
pub async fn bind(service: &str, wanted: u16, taken: &[u16]) -> Result<(TcpListener, u16), Error> {
    let last = wanted.saturating_add(PORT_SEARCH);
    for port in wanted..=last {
        if taken.contains(&port) {
            continue;
        }
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)).await {
            return Ok((listener, port));
        }
    }
    Err(Error::NoLocalPort { service: service.into(), port: wanted, from: wanted })
}

/// Accepts connections on `listener` and forwards each to `port` of a ready pod matching one
/// of `selectors`, until the future is dropped (which also ends every open connection).
pub async fn serve(
    listener: TcpListener,
    client: ::kube::Client,
    namespace: String,
    selectors: Vec<String>,
    port: u16,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((conn, _)) = accepted else { continue };
                let (client, namespace, selectors) = (client.clone(), namespace.clone(), selectors.clone());
                connections.spawn(async move {
                    if let Err(message) = forward_one(conn, &client, &namespace, &selectors, port).await {
                        tracing::warn!(selectors = ?selectors, port, "port-forward: {message}");
                    }
                });
            }
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn forward_one(
    mut conn: TcpStream,
    client: &::kube::Client,
    namespace: &str,
    selectors: &[String],
    port: u16,
) -> Result<(), String> {
    let pod = wait_for_pod(client, namespace, selectors).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut forwarder = pods.portforward(&pod, &[port]).await.map_err(|e| format!("pod {pod}: {e}"))?;
    let mut upstream = forwarder.take_stream(port).ok_or("no stream for the port")?;
    // Either side closing ends the connection; errors here are the peer going away.
    let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
    drop(upstream);
    forwarder.abort();
    Ok(())
}

/// The first ready pod, waiting (up to [`POD_WAIT`]) while none is.
async fn wait_for_pod(client: &::kube::Client, namespace: &str, selectors: &[String]) -> Result<String, String> {
    let started = Instant::now();
    loop {
        match pods::ready(client, namespace, selectors).await {
            Ok(pods) => {
                if let Some(name) = pods.into_iter().find_map(|p| p.metadata.name) {
                    return Ok(name);
                }
            }
            Err(e) => tracing::debug!(%e, "listing pods for a port-forward"),
        }
        if started.elapsed() > POD_WAIT {
            return Err(format!("no ready pod after {}s", POD_WAIT.as_secs()));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_taken_port_moves_to_the_next_free_one() {
        let (held, wanted) = bind("x", 20_000 + (std::process::id() % 20_000) as u16, &[]).await.unwrap();
        let (_second, got) = bind("api", wanted, &[]).await.unwrap();
        assert!(got > wanted, "{got} should be above the held {wanted}");
        let (_third, skipped) = bind("api", wanted, &[got]).await.unwrap();
        assert!(skipped != got && skipped != wanted);
        drop(held);
        let forward = Forward { service: "api".into(), port: wanted, local: got };
        assert!(forward.moved());
    }
}
