//! The daemon's backoff table: files that failed for a reason outside themselves
//! (a full disk, a busy database) are tried again after 1 s, 2 s, 4 s ... at most
//! [`MAX_BACKOFF`], and forgotten once decided or taken back by their sender.
//!
//! Owns the table, keyed by mailbox and the file's exact name. Must never hold a
//! file back for longer than [`MAX_BACKOFF`], nor keep an entry for a file that
//! left `in/` (a stale entry would wake the loop for nothing, forever).

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::time::{Duration, SystemTime};

use tracing::info;

use crate::pipeline::PassReport;

/// The longest wait between two tries of a file that failed transiently.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The delay before try `attempts + 1`: 1 s, 2 s, 4 s ... at most [`MAX_BACKOFF`].
pub(super) fn backoff_delay(attempts: u32) -> Duration {
    let secs = 1u64
        .checked_shl(attempts.saturating_sub(1))
        .unwrap_or(u64::MAX);
    Duration::from_secs(secs).min(MAX_BACKOFF)
}

type Key = (String, OsString);

#[derive(Debug, Clone, Copy)]
struct Entry {
    attempts: u32,
    next_try: SystemTime,
}

/// Files waiting for their next try.
#[derive(Debug, Default)]
pub(super) struct Backoffs {
    entries: HashMap<Key, Entry>,
}

impl Backoffs {
    /// The files a pass at `now` must leave alone.
    pub(super) fn waiting(&self, now: SystemTime) -> HashSet<Key> {
        self.entries
            .iter()
            .filter(|(_, e)| e.next_try > now)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Takes in what a pass did: decided files and files gone are forgotten, files
    /// that failed transiently wait longer, files that failed for good are dropped.
    pub(super) fn absorb(&mut self, report: &PassReport, now: SystemTime) {
        for (mailbox, name, _) in &report.messages {
            self.entries.remove(&(mailbox.clone(), name.clone()));
        }
        self.entries
            .retain(|key, _| !report.scanned.contains(&key.0) || report.seen.contains(key));
        for e in &report.errors {
            let key = (e.mailbox.clone(), e.name.clone());
            if !e.transient {
                self.entries.remove(&key);
                continue;
            }
            let attempts = self.entries.get(&key).map_or(0, |b| b.attempts) + 1;
            let delay = backoff_delay(attempts);
            info!(event = "retry_scheduled", mailbox = %key.0, file = %key.1.to_string_lossy(), attempts, delay_s = delay.as_secs());
            self.entries.insert(
                key,
                Entry {
                    attempts,
                    next_try: now + delay,
                },
            );
        }
    }

    /// When the first waiting file is due again.
    pub(super) fn next_try(&self) -> Option<SystemTime> {
        self.entries.values().map(|e| e.next_try).min()
    }
}

/// A remote task's pause between rounds: `wait`, cut short by a kick when
/// `heed_kick` (not while backing off). True when the task is told to stop.
pub(super) async fn pause(
    stop: &mut tokio::sync::watch::Receiver<bool>,
    kick: &tokio::sync::Notify,
    wait: Duration,
    heed_kick: bool,
) -> bool {
    tokio::select! {
        _ = stop.changed() => return true,
        () = kick.notified(), if heed_kick => {}
        () = tokio::time::sleep(wait) => {}
    }
    *stop.borrow()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::FileError;

    #[test]
    fn backoff_doubles_up_to_its_bound() {
        let delays: Vec<u64> = (1..=12).map(|n| backoff_delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(backoff_delay(200), MAX_BACKOFF);
    }

    fn failed(mailbox: &str, name: &str, transient: bool) -> FileError {
        FileError {
            mailbox: mailbox.into(),
            name: name.into(),
            transient,
        }
    }

    #[test]
    fn a_file_that_left_in_is_forgotten_and_wakes_nothing() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut table = Backoffs::default();
        let mut report = PassReport::default();
        report.scanned.insert("X26LA001".into());
        report.errors.push(failed("X26LA001", "a.csv", true));
        report.seen.insert(("X26LA001".into(), "a.csv".into()));
        table.absorb(&report, t0);
        table.absorb(&report, t0);
        assert_eq!(table.next_try(), Some(t0 + Duration::from_secs(2)));
        assert_eq!(table.waiting(t0).len(), 1);
        assert!(table.waiting(t0 + Duration::from_secs(2)).is_empty());

        // Another mailbox's pass keeps it; a scan of its own mailbox without it drops it.
        let mut other = PassReport::default();
        other.scanned.insert("X26LA002".into());
        table.absorb(&other, t0);
        assert!(table.next_try().is_some());
        let mut gone = PassReport::default();
        gone.scanned.insert("X26LA001".into());
        table.absorb(&gone, t0);
        assert_eq!(table.next_try(), None, "nothing left to wake the loop");
    }

    #[test]
    fn a_permanent_failure_is_not_retried() {
        let t0 = SystemTime::UNIX_EPOCH;
        let mut table = Backoffs::default();
        let mut report = PassReport::default();
        report.errors.push(failed("X26LA001", "a.csv", true));
        table.absorb(&report, t0);
        report.errors = vec![failed("X26LA001", "a.csv", false)];
        table.absorb(&report, t0);
        assert_eq!(table.next_try(), None);
    }
}
