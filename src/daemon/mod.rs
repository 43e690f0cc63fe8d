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

pub mod schedule;

use std::collections::HashMap;
use std::ffi::OsString;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::clock::{self, Clock};
use crate::config::Config;
use crate::index::{self, Index};
use crate::pipeline::{self, PassOptions, PassReport};

/// What makes the daemon stop running.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("the processing task failed: {0}")]
    Task(String),
    #[error(transparent)]
    Index(#[from] index::IndexError),
    #[error("cannot create the mailbox folders: {0}")]
    Folders(std::io::Error),
}

/// The daemon's time: the real clock, or `--now` moving on from when it started.
pub type ClockSource = Arc<dyn Fn() -> Clock + Send + Sync>;

/// How long a stop waits for an SFTP transfer in progress.
pub const REMOTE_STOP_GRACE: Duration = Duration::from_secs(2);

/// The longest wait between two tries of a file that failed transiently.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy)]
struct Backoff {
    attempts: u32,
    next_try: SystemTime,
}

/// The delay before try `attempts + 1`: 1 s, 2 s, 4 s ... at most [`MAX_BACKOFF`].
pub fn backoff_delay(attempts: u32) -> Duration {
    let secs = 1u64
        .checked_shl(attempts.saturating_sub(1))
        .unwrap_or(u64::MAX);
    Duration::from_secs(secs).min(MAX_BACKOFF)
}

/// The scheduled jobs due now.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DueJobs {
    pub alerts_delta: bool,
    pub alerts_full: Option<chrono::NaiveDate>,
    pub holdings: Option<chrono::NaiveDate>,
}

fn parse_time(text: Option<String>) -> Option<DateTime<Utc>> {
    text.as_deref().and_then(clock::parse_rfc3339)
}

fn parse_day(text: Option<String>) -> Option<chrono::NaiveDate> {
    text.as_deref().and_then(clock::parse_date)
}

/// What is due now, and when the next job will be.
fn due_jobs(
    config: &Config,
    index: &Index,
    now: DateTime<Utc>,
) -> Result<(DueJobs, DateTime<Utc>), index::IndexError> {
    let hub = &config.hub;
    let (delta_last, _) = index::flows::job_state(index.db(), "alerts_delta")?;
    let (_, full_day) = index::flows::job_state(index.db(), "alerts_full")?;
    let (_, holdings_day) = index::flows::job_state(index.db(), "holdings")?;
    let delta_last = parse_time(delta_last);
    let (full_day, holdings_day) = (parse_day(full_day), parse_day(holdings_day));
    let due = DueJobs {
        alerts_delta: schedule::interval_due(now, hub.alerts_every, delta_last),
        alerts_full: schedule::daily_due(now, hub.alerts_full_at, full_day),
        holdings: schedule::daily_due(now, hub.holdings_at, holdings_day),
    };
    let next = [
        schedule::interval_next(now, hub.alerts_every, delta_last),
        schedule::daily_next(now, hub.alerts_full_at, full_day),
        schedule::daily_next(now, hub.holdings_at, holdings_day),
    ]
    .into_iter()
    .min()
    .unwrap_or(now);
    Ok((due, next))
}

/// One pass with the jobs due, recording their runs.
fn pass(
    config: &Config,
    index: &mut Index,
    now: Clock,
    due: &DueJobs,
    options: PassOptions,
) -> Result<PassReport, pipeline::PassError> {
    let options = PassOptions {
        alert_deltas: due.alerts_delta,
        alert_fulls: due.alerts_full.is_some(),
        emit_holdings: due.holdings.is_some(),
        ..options
    };
    let report = pipeline::run_pass(config, index, now, &options)?;
    if report.stopped {
        return Ok(report);
    }
    let at = now.rfc3339();
    let tx = index.begin()?;
    if due.alerts_delta {
        index::flows::set_job_run(&tx, "alerts_delta", &at, None)?;
    }
    if let Some(day) = due.alerts_full {
        index::flows::set_job_run(&tx, "alerts_full", &at, Some(&day.to_string()))?;
    }
    if let Some(day) = due.holdings {
        index::flows::set_job_run(&tx, "holdings", &at, Some(&day.to_string()))?;
    }
    tx.commit()?;
    for (job, ran) in [
        ("alerts_delta", due.alerts_delta),
        ("alerts_full", due.alerts_full.is_some()),
        ("holdings", due.holdings.is_some()),
    ] {
        if ran {
            info!(event = "job_run", job);
        }
    }
    Ok(report)
}

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

/// One partner's SFTP remote: poll every `poll_every`, upload when kicked (after a
/// pass wrote files for it), back off on failure. Runs beside the main loop, so an
/// unreachable server delays nobody else.
async fn remote_loop(
    config: Arc<Config>,
    remote: crate::config::SftpRemote,
    clock: ClockSource,
    kick: Arc<tokio::sync::Notify>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use crate::transport::sftp;
    let mut listings = Some(sftp::Listings::default());
    let mut attempts = 0u32;
    let mut next_poll = tokio::time::Instant::now();
    loop {
        let downloads = tokio::time::Instant::now() >= next_poll;
        let (cfg, r, now) = (config.clone(), remote.clone(), clock());
        let mut l = listings.take().unwrap_or_default();
        let joined = tokio::task::spawn_blocking(move || {
            let result = sftp::sync(&r, &cfg, &now, &mut l, downloads);
            (l, result)
        })
        .await;
        let wait = match joined {
            Ok((l, Ok(report))) => {
                listings = Some(l);
                attempts = 0;
                if downloads {
                    next_poll = tokio::time::Instant::now() + remote.poll_every;
                }
                if !report.downloaded.is_empty() || !report.uploaded.is_empty() {
                    info!(event = "sftp_synced", mailbox = %remote.mailbox, downloaded = report.downloaded.len(), uploaded = report.uploaded.len());
                }
                next_poll.saturating_duration_since(tokio::time::Instant::now())
            }
            Ok((l, Err(e))) => {
                listings = Some(l);
                sftp::log_failure(&remote, &e);
                attempts += 1;
                let delay =
                    backoff_delay(attempts).min(remote.poll_every.max(Duration::from_secs(1)));
                next_poll = tokio::time::Instant::now() + delay;
                delay
            }
            Err(e) => {
                error!(event = "sftp_failed", mailbox = %remote.mailbox, error = %e);
                remote.poll_every
            }
        };
        tokio::select! {
            _ = stop.changed() => return,
            () = kick.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// Runs the daemon until `shutdown` completes; then finishes the message in hand and
/// returns.
pub async fn run(
    config: Config,
    index: Index,
    clock: ClockSource,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    let config = Arc::new(config);
    crate::transport::ensure_mailboxes(&config).map_err(DaemonError::Folders)?;
    let (wake_tx, mut wake_rx) = mpsc::channel::<()>(1);
    let _watcher = watch(&config, wake_tx);
    let stop = Arc::new(AtomicBool::new(false));
    let mut backoff: HashMap<(String, OsString), Backoff> = HashMap::new();
    let mut last_unconfigured_report = None;
    let mut index = Some(index);
    let (remote_stop, remote_stop_rx) = tokio::sync::watch::channel(false);
    let mut remotes = Vec::new();
    for remote in &config.sftp {
        let kick = Arc::new(tokio::sync::Notify::new());
        let task = tokio::spawn(remote_loop(
            config.clone(),
            remote.clone(),
            clock.clone(),
            kick.clone(),
            remote_stop_rx.clone(),
        ));
        remotes.push((remote.mailbox.clone(), kick, task));
    }
    // At a stop, a remote in the middle of a transfer is given a moment, then left:
    // transfers only ever write temporary names, so abandoning one loses nothing.
    let stop_remotes = |remotes: Vec<(
        String,
        Arc<tokio::sync::Notify>,
        tokio::task::JoinHandle<()>,
    )>| async move {
        let _ = remote_stop.send(true);
        for (mailbox, _, task) in remotes {
            if tokio::time::timeout(REMOTE_STOP_GRACE, task).await.is_err() {
                warn!(event = "sftp_abandoned", mailbox = %mailbox, "a transfer in progress was left (temporary names only)");
            }
        }
    };
    tokio::pin!(shutdown);
    info!(event = "daemon_started", mailboxes = config.partners.len(), rescan_every = ?config.hub.rescan_every);

    loop {
        let now = clock();
        let real_now = SystemTime::now();
        let Some(idx) = index.take() else { break };
        let (due, next_job) = match due_jobs(&config, &idx, now.now()) {
            Ok(d) => d,
            Err(e) => {
                error!(event = "schedule_error", error = %e);
                (
                    DueJobs::default(),
                    now.now() + chrono::Duration::seconds(30),
                )
            }
        };
        let skip = backoff
            .iter()
            .filter(|(_, b)| b.next_try > real_now)
            .map(|(k, _)| k.clone())
            .collect();
        let report_unconfigured = last_unconfigured_report
            .is_none_or(|at: std::time::Instant| at.elapsed() >= Duration::from_secs(3600));
        if report_unconfigured {
            last_unconfigured_report = Some(std::time::Instant::now());
        }
        let options = PassOptions {
            stop: Some(stop.clone()),
            skip,
            report_unconfigured,
            ..PassOptions::default()
        };
        let cfg = config.clone();
        let task = tokio::task::spawn_blocking(move || {
            let mut idx = idx;
            let result = pass(&cfg, &mut idx, now, &due, options);
            (idx, result)
        });
        tokio::pin!(task);
        let joined = tokio::select! {
            joined = &mut task => joined,
            () = &mut shutdown => {
                info!(event = "daemon_stopping", "finishing the file in hand");
                stop.store(true, Ordering::SeqCst);
                let joined = task.await;
                if let Ok((idx, _)) = joined {
                    drop(idx);
                }
                stop_remotes(remotes).await;
                info!(event = "daemon_stopped");
                return Ok(());
            }
        };
        let (idx, result) = joined.map_err(|e| DaemonError::Task(e.to_string()))?;
        index = Some(idx);
        tracing::debug!(event = "pass_done");
        for (mailbox, kick, _) in &remotes {
            if crate::transport::sftp::has_outbound(&config, mailbox) {
                kick.notify_one();
            }
        }

        let mut wake_at = real_now + config.hub.rescan_every;
        match result {
            Ok(report) => {
                // Forget what was decided, and what left in/ (taken back by its
                // sender): a stale entry would wake the loop for nothing, forever.
                for (mailbox, name, _) in &report.messages {
                    backoff.remove(&(mailbox.clone(), name.clone()));
                }
                backoff
                    .retain(|key, _| !report.scanned.contains(&key.0) || report.seen.contains(key));
                for e in report.errors {
                    let key = (e.mailbox, e.name);
                    if e.transient {
                        let attempts = backoff.get(&key).map_or(0, |b| b.attempts) + 1;
                        let delay = backoff_delay(attempts);
                        info!(event = "retry_scheduled", mailbox = %key.0, file = %key.1.to_string_lossy(), attempts, delay_s = delay.as_secs());
                        backoff.insert(
                            key,
                            Backoff {
                                attempts,
                                next_try: SystemTime::now() + delay,
                            },
                        );
                    } else {
                        backoff.remove(&key);
                    }
                }
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
        if let Some(b) = backoff.values().map(|b| b.next_try).min() {
            wake_at = wake_at.min(b);
        }
        let until_job = (next_job - clock().now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        let sleep = wake_at
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
            .min(until_job)
            .max(Duration::from_millis(10));
        tokio::select! {
            () = &mut shutdown => {
                stop_remotes(remotes).await;
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
