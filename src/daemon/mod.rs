//! The daemon (`cpis-hub run`, SPEC §5.4, §6): watches every mailbox's `in/`,
//! rescans every `hub.rescan_every`, runs the schedule, retries transient failures
//! with bounded exponential backoff, and stops cleanly.
//!
//! Owns the index for its whole life (moved into a blocking task for each pass:
//! SQLite and file I/O never run on the async workers), the backoff table, and the
//! file-system watcher. The stop signal is a future passed in; the loop only stops
//! between messages: a pass in hand finishes the message it is on, and its
//! post-commit steps, before the daemon exits. Must never process without holding
//! the lock (taken by the caller for the daemon's whole life).

mod backoff;
mod jobs;
mod mesh;
mod remote;
pub(crate) mod schedule;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::clock::Clock;
use crate::config::Config;
use crate::index::{self, Index};
use crate::pipeline::PassOptions;
use backoff::Backoffs;
use remote::Remotes;

/// What makes the daemon stop running.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DaemonError {
    #[error("the processing task failed: {0}")]
    Task(String),
    #[error(transparent)]
    Index(#[from] index::IndexError),
    #[error("cannot create the mailbox folders: {0}")]
    Folders(std::io::Error),
}

/// The daemon's time: the real clock, or `--now` moving on from when it started.
pub(crate) type ClockSource = Arc<dyn Fn() -> Clock + Send + Sync>;

/// How often the daemon names folders under the root that are no mailbox.
const UNCONFIGURED_REPORT_EVERY: Duration = Duration::from_secs(3600);

/// Watches every partner's `in/`; each event wakes the loop (coalesced).
fn watch(config: &Config, wake: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let mut watcher = match notify::recommended_watcher(
        move |event: notify::Result<notify::Event>| {
            // Only changes wake the loop: reading a folder (as every scan does) is an
            // access event, and waking on it would spin. Errors (e.g. an overflowed
            // queue) wake it too: a rescan is the remedy.
            let relevant = match &event {
                Ok(e) => !matches!(e.kind, notify::EventKind::Access(_)),
                Err(_) => true,
            };
            if relevant {
                // Full channel: a wake-up is already pending, which is all we need.
                let _ = wake.try_send(());
            }
        },
    ) {
        Ok(w) => w,
        Err(e) => {
            warn!(event = "watcher_error", error = %e, "no file-system events: relying on rescans");
            return None;
        }
    };
    for partner in &config.partners {
        let dir = config.folder(&partner.mailbox, "in");
        if let Err(e) = watcher.watch(&dir, notify::RecursiveMode::NonRecursive) {
            warn!(event = "watcher_error", mailbox = %partner.mailbox, error = %e, "relying on rescans for this mailbox");
        }
    }
    Some(watcher)
}

/// Runs the daemon until `shutdown` completes; then finishes the message in hand and
/// returns.
pub(crate) async fn run(
    config: Config,
    index: Index,
    clock: ClockSource,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    let config = Arc::new(config);
    let cfg = config.clone();
    tokio::task::spawn_blocking(move || crate::transport::ensure_mailboxes(&cfg))
        .await
        .map_err(|e| DaemonError::Task(e.to_string()))?
        .map_err(DaemonError::Folders)?;
    let (wake_tx, mut wake_rx) = mpsc::channel::<()>(1);
    let _watcher = watch(&config, wake_tx);
    let stop = Arc::new(AtomicBool::new(false));
    let mut backoffs = Backoffs::default();
    let mut last_unconfigured_report: Option<Instant> = None;
    let mut index = Some(index);
    let remotes = Remotes::start(&config, &clock);
    let mesh = mesh::Mesh::start(&config, &clock);
    tokio::pin!(shutdown);
    info!(event = "daemon_started", mailboxes = config.partners.len(), rescan_every = ?config.hub.rescan_every);

    while let Some(idx) = index.take() {
        let real_now = SystemTime::now();
        let report_unconfigured =
            last_unconfigured_report.is_none_or(|at| at.elapsed() >= UNCONFIGURED_REPORT_EVERY);
        if report_unconfigured {
            last_unconfigured_report = Some(Instant::now());
        }
        let options = PassOptions {
            stop: Some(stop.clone()),
            skip: backoffs.waiting(real_now),
            report_unconfigured,
            ..PassOptions::default()
        };
        let (cfg, now) = (config.clone(), clock());
        let task = tokio::task::spawn_blocking(move || {
            let mut idx = idx;
            let turn = jobs::turn(&cfg, &mut idx, now, options);
            (idx, turn)
        });
        tokio::pin!(task);
        let joined = tokio::select! {
            joined = &mut task => joined,
            () = &mut shutdown => {
                info!(event = "daemon_stopping", "finishing the file in hand");
                stop.store(true, Ordering::SeqCst);
                // The index goes with the task: it closes when the pass is done.
                let _ = task.await;
                remotes.stop().await;
                if let Some(m) = mesh {
                    m.stop().await;
                }
                info!(event = "daemon_stopped");
                return Ok(());
            }
        };
        let (idx, turn) = joined.map_err(|e| DaemonError::Task(e.to_string()))?;
        index = Some(idx);
        tracing::debug!(event = "pass_done");
        remotes.kick(&turn.to_upload);
        if turn.to_send_mesh {
            if let Some(m) = &mesh {
                m.kick();
            }
        }

        let mut wake_at = real_now + config.hub.rescan_every;
        match &turn.result {
            Ok(report) => {
                backoffs.absorb(report, SystemTime::now());
                if let Some(at) = report.wake_at {
                    wake_at = wake_at.min(at);
                }
            }
            Err(e) => {
                // A failure outside any one file (the database, a folder): try again soon.
                error!(event = "pass_failed", database = %config.hub.database.display(), error = %e, "trying again");
                wake_at = wake_at.min(SystemTime::now() + Duration::from_secs(5));
            }
        }
        if let Some(b) = backoffs.next_try() {
            wake_at = wake_at.min(b);
        }
        let until_job = (turn.next_job - clock().now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        let sleep = wake_at
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
            .min(until_job)
            .max(Duration::from_millis(10));
        tokio::select! {
            () = &mut shutdown => {
                remotes.stop().await;
                if let Some(m) = mesh {
                    m.stop().await;
                }
                info!(event = "daemon_stopped");
                return Ok(());
            }
            _ = wake_rx.recv() => {
                // A burst of events: let it land, then drain what queued meanwhile.
                tokio::time::sleep(Duration::from_millis(5)).await;
                while wake_rx.try_recv().is_ok() {}
            }
            () = tokio::time::sleep(sleep) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
