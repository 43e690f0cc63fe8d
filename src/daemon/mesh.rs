//! The daemon's MESH API task (§9): a handshake at start and every 24 h, a poll of
//! the hub's MESH inbox every `mesh.poll_every`, and a send whenever a pass wrote
//! files for a `mesh_api` partner (kicked) or at the poll; each round on a blocking
//! thread, beside the main loop, so a slow or failing server delays nobody else.
//!
//! Owns the round's backoff and the last failure reported. Must never hammer the
//! server: failures back off (bounded by `poll_every`), and a failure that needs an
//! operator (a secret, a certificate) is reported once, not at every round.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use super::backoff::{backoff_delay, pause};
use super::ClockSource;
use crate::config::Config;
use crate::index::Index;
use crate::transport::mesh::{self, MeshError, Steps};

/// How long a stop waits for a MESH transfer in progress (it writes temporary
/// names only until it records, so abandoning one loses nothing).
const STOP_GRACE: Duration = Duration::from_secs(2);

/// The running MESH task.
pub(super) struct Mesh {
    stop: watch::Sender<bool>,
    kick: Arc<Notify>,
    task: JoinHandle<()>,
}

impl Mesh {
    /// Starts the task when `[mesh]` is configured.
    pub(super) fn start(config: &Arc<Config>, clock: &ClockSource) -> Option<Mesh> {
        config.mesh.as_ref()?;
        let (stop, stop_rx) = watch::channel(false);
        let kick = Arc::new(Notify::new());
        let task = tokio::spawn(mesh_loop(
            config.clone(),
            clock.clone(),
            kick.clone(),
            stop_rx,
        ));
        Some(Mesh { stop, kick, task })
    }

    /// Wakes the task to send what waits in `out/`.
    pub(super) fn kick(&self) {
        self.kick.notify_one();
    }

    pub(super) async fn stop(self) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(STOP_GRACE, self.task).await.is_err() {
            warn!(
                event = "mesh_abandoned",
                "a MESH transfer in progress was left (it is finished at the next start)"
            );
        }
    }
}

async fn mesh_loop(
    config: Arc<Config>,
    clock: ClockSource,
    kick: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let settings = config.mesh.clone().expect("started with [mesh]");
    let mut index: Option<Index> = None;
    let mut next_poll = tokio::time::Instant::now();
    let mut next_handshake = tokio::time::Instant::now();
    let mut attempts = 0u32;
    let mut reported: Option<String> = None;
    loop {
        let now_i = tokio::time::Instant::now();
        let steps = Steps {
            handshake: now_i >= next_handshake,
            receive: now_i >= next_poll,
            send: true,
        };
        let (cfg, now, idx) = (config.clone(), clock(), index.take());
        let joined = tokio::task::spawn_blocking(move || {
            let mut idx = match idx {
                Some(i) => i,
                None => match Index::open(&cfg.hub.database) {
                    Ok(i) => i,
                    Err(e) => return (None, Err(MeshError::from(e))),
                },
            };
            let result = mesh::round(&cfg, &mut idx, &now, steps);
            (Some(idx), result)
        })
        .await;
        let wait = match joined {
            Ok((idx, Ok(round))) => {
                index = idx;
                attempts = 0;
                if reported.take().is_some() {
                    info!(event = "mesh_recovered", "the MESH server answers again");
                }
                let after = tokio::time::Instant::now();
                if steps.handshake {
                    next_handshake = after + mesh::HANDSHAKE_EVERY;
                }
                if steps.receive {
                    next_poll = after + settings.poll_every;
                }
                if !round.taken.is_empty()
                    || !round.sent.is_empty()
                    || round.kept + round.reports > 0
                {
                    info!(
                        event = "mesh_round",
                        received = round.taken.len(),
                        sent = round.sent.len(),
                        kept = round.kept,
                        reports = round.reports
                    );
                }
                next_poll.saturating_duration_since(after)
            }
            Ok((idx, Err(e))) => {
                index = idx;
                attempts += 1;
                let text = e.to_string();
                if reported.as_deref() != Some(text.as_str()) {
                    mesh::log_failure(&e);
                    reported = Some(text);
                }
                // Transient or not, the server is asked again only after a backoff
                // (at most poll_every): a wrong secret is not hammered.
                let cap = settings.poll_every.max(Duration::from_secs(1));
                let delay = if e.is_transient() {
                    backoff_delay(attempts).min(cap)
                } else {
                    cap
                };
                next_poll = tokio::time::Instant::now() + delay;
                delay
            }
            Err(e) => {
                error!(event = "mesh_failed", error = %e);
                settings.poll_every
            }
        };
        // Backing off, a kick does not bring the next try forward.
        if pause(&mut stop, &kick, wait, attempts == 0).await {
            return;
        }
    }
}
