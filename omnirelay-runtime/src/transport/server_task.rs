//! The lifecycle every inbound shares: bind a listener once, run its accept loop as a task, and
//! on stop signal the loop and wait for it (the loop does the draining).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::procedure::BoxFuture;

/// A running accept loop: how to tell it to stop, and the task to wait for.
#[derive(Debug)]
struct Running {
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The accept-loop task of one inbound (`kind` names it in errors: `gRPC`, `HTTP`).
#[derive(Debug, Clone)]
pub(crate) struct ServerTask {
    kind: &'static str,
    running: Arc<Mutex<Option<Running>>>,
}

impl ServerTask {
    /// Not started yet.
    pub(crate) fn new(kind: &'static str) -> Self {
        ServerTask {
            kind,
            running: Arc::new(Mutex::new(None)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Running>> {
        // The slot holds no invariant a panic elsewhere could break.
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Binds `addr` for a new accept loop; `failed-precondition` if one is already running.
    pub(crate) async fn bind(&self, addr: SocketAddr) -> Result<(TcpListener, SocketAddr)> {
        let kind = self.kind;
        if self.lock().is_some() {
            return Err(Error::failed_precondition(format!(
                "{kind} inbound is already started"
            )));
        }
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            Error::unavailable(format!("{kind} inbound cannot listen on {addr}: {e}"))
        })?;
        let local = listener
            .local_addr()
            .map_err(|e| Error::internal(format!("{kind} inbound has no local address: {e}")))?;
        Ok((listener, local))
    }

    /// Runs the accept loop `start` builds from the stop signal's receiver.
    pub(crate) fn spawn<F>(&self, start: impl FnOnce(watch::Receiver<bool>) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (shutdown, rx) = watch::channel(false);
        let task = tokio::spawn(start(rx));
        *self.lock() = Some(Running { shutdown, task });
    }

    /// Signals the loop to stop and waits until it has drained and closed; a no-op when not
    /// running.
    pub(crate) fn stop(&self) -> BoxFuture<Result<()>> {
        let running = self.lock().take();
        let kind = self.kind;
        Box::pin(async move {
            if let Some(running) = running {
                let _ = running.shutdown.send(true);
                running
                    .task
                    .await
                    .map_err(|e| Error::internal(format!("{kind} inbound task failed: {e}")))?;
            }
            Ok(())
        })
    }
}
