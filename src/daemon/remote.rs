//! The daemon's SFTP remotes: one task per remote partner, polling its `in/` every
//! `poll_every` and uploading when kicked (after a pass wrote files for it), each
//! transfer on a blocking thread. They run beside the main loop, so an
//! unreachable server delays nobody else.
//!
//! Owns each remote's listings between polls and its failure count. Must never
//! hold up a stop for more than [`REMOTE_STOP_GRACE`]: transfers only ever write
//! temporary names, so abandoning one loses nothing.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use super::backoff::{backoff_delay, pause};
use super::ClockSource;
use crate::config::{Config, SftpRemote};
use crate::transport::sftp;

/// How long a stop waits for an SFTP transfer in progress.
pub(super) const REMOTE_STOP_GRACE: Duration = Duration::from_secs(2);

/// The running remote tasks.
pub(super) struct Remotes {
    stop: watch::Sender<bool>,
    tasks: Vec<(String, Arc<Notify>, JoinHandle<()>)>,
}

impl Remotes {
    /// Starts one task per configured SFTP remote.
    pub(super) fn start(config: &Arc<Config>, clock: &ClockSource) -> Remotes {
        let (stop, stop_rx) = watch::channel(false);
        let tasks = config
            .sftp
            .iter()
            .map(|remote| {
                let kick = Arc::new(Notify::new());
                let task = tokio::spawn(remote_loop(
                    config.clone(),
                    remote.clone(),
                    clock.clone(),
                    kick.clone(),
                    stop_rx.clone(),
                ));
                (remote.mailbox.clone(), kick, task)
            })
            .collect();
        Remotes { stop, tasks }
    }

    /// Wakes the remotes of these mailboxes to upload now.
    pub(super) fn kick(&self, mailboxes: &[String]) {
        for (mailbox, kick, _) in &self.tasks {
            if mailboxes.contains(mailbox) {
                kick.notify_one();
            }
        }
    }

    /// Stops every remote, giving a transfer in progress [`REMOTE_STOP_GRACE`].
    pub(super) async fn stop(self) {
        let _ = self.stop.send(true);
        for (mailbox, _, task) in self.tasks {
            if tokio::time::timeout(REMOTE_STOP_GRACE, task).await.is_err() {
                warn!(event = "sftp_abandoned", mailbox = %mailbox, "a transfer in progress was left (temporary names only)");
            }
        }
    }
}

/// One remote: poll, upload when kicked, back off on failure, until stopped.
async fn remote_loop(
    config: Arc<Config>,
    remote: SftpRemote,
    clock: ClockSource,
    kick: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
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
        if pause(&mut stop, &kick, wait, true).await {
            return;
        }
    }
}
