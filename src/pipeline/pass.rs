//! One pass (SPEC §7 `process`): finish what a crash interrupted, carry out operator
//! decisions, age 18 and retention, take every ready inbound message (local mailboxes
//! first, each remote one once its download ends), write requested scheduled output.

use super::alerts;
use std::collections::HashSet;
use std::ffi::OsString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use tracing::{info, warn};

use super::decisions::carry_out_decisions;
use super::error::{io_at, ErrorKind, PassError};
use super::extract::Status;
use super::housekeeping::{emit_holdings, housekeeping};
use super::message::{fail_permanently, process_message};
use super::recover::recover;
use crate::clock::Clock;
use crate::config::{Config, Partner};
use crate::emit::{self, render::EmitError};
use crate::index::{self, Index, Tx};
use crate::intake::{self, Found};
use crate::transport::{self, name_bytes};

/// What a pass asks for beyond consuming inbound messages.
#[derive(Debug, Default)]
pub(crate) struct PassOptions {
    pub emit_holdings: bool,
    /// Alert DELTAs (and first FULLs) to `alerts = "delta"` sites.
    pub alert_deltas: bool,
    /// The nightly FULL to `alerts = "full"` sites.
    pub alert_fulls: bool,
    /// Set by the daemon when it must stop: the pass ends after the message in hand.
    pub stop: Option<Arc<AtomicBool>>,
    /// (mailbox, file name) of messages not to try in this pass (backing off).
    pub skip: HashSet<(String, OsString)>,
    /// Say in the log which folders under the root are no configured mailbox and hold
    /// files (each `process`; the daemon at its start and hourly).
    pub report_unconfigured: bool,
    /// Mailboxes whose files are still being downloaded from a remote (`process`):
    /// taken last, each once its download ends (the sender of `ready` says so).
    pub downloading: Option<Downloads>,
}

/// The mailboxes a pass must wait for, and the channel that names each one as its
/// download ends (or fails).
#[derive(Debug)]
pub(crate) struct Downloads {
    pub mailboxes: HashSet<String>,
    pub ready: std::sync::mpsc::Receiver<String>,
}

impl PassOptions {
    pub(super) fn stopping(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst))
    }
}

/// A message that could not be processed in this pass.
#[derive(Debug)]
pub(crate) struct FileError {
    pub mailbox: String,
    pub name: OsString,
    /// Worth retrying later (the file stays in `in/`); otherwise it was moved to
    /// `failed/` with a receipt.
    pub transient: bool,
}

/// What a pass did, for the exit code and the log.
#[derive(Debug, Default)]
pub(crate) struct PassReport {
    /// (mailbox, file name, final status) of each message decided in this pass.
    pub messages: Vec<(String, OsString, Status)>,
    pub errors: Vec<FileError>,
    /// Partners whose folders or outbound files could not be used in this pass
    /// (mailbox, what happened); the others went on.
    pub partner_errors: Vec<(String, String)>,
    /// (mailbox, file name) of every inbound entry the pass saw, for the daemon to
    /// forget what left `in/`; and the mailboxes it scanned.
    pub seen: HashSet<(String, OsString)>,
    pub scanned: HashSet<String>,
    /// When a file seen but not yet ready (settling) will be: the daemon wakes then.
    pub wake_at: Option<SystemTime>,
    /// The pass ended early because it was asked to stop.
    pub stopped: bool,
}

impl PassReport {
    /// `process` exit code (§7): 0 when every file ended ACCEPTED, PARTIAL or
    /// DUPLICATE; 1 otherwise.
    pub(crate) fn exit_code(&self) -> i32 {
        if self.errors.is_empty()
            && self.partner_errors.is_empty()
            && !self.messages.iter().any(|(_, _, s)| s.is_failure())
        {
            0
        } else {
            1
        }
    }

    pub(super) fn partner_error(&mut self, mailbox: &str, what: String) {
        warn!(event = "partner_skipped", mailbox = %mailbox, error = %what, "this partner waits; the others go on");
        self.partner_errors.push((mailbox.to_string(), what));
    }
}

/// One whole pass.
pub(crate) fn run_pass(
    config: &Config,
    index: &mut Index,
    now: Clock,
    options: &PassOptions,
) -> Result<PassReport, PassError> {
    let mut report = PassReport::default();
    let mut unusable = HashSet::new();
    for fault in transport::ensure_mailboxes(config).map_err(io_at(&config.hub.root))? {
        report.partner_error(&fault.mailbox, fault.error.to_string());
        unusable.insert(fault.mailbox);
    }
    let staging = emit::Staging::open(&config.hub.root).map_err(io_at(&config.hub.root))?;
    if options.report_unconfigured {
        warn_unconfigured(config);
    }
    recover(config, index, &staging, &mut report)?;
    carry_out_decisions(config, index, now, &staging, &mut report)?;
    housekeeping(config, index, now, staging.root())?;
    let (first, mut later): (Vec<&Partner>, Vec<&Partner>) =
        config.partners.iter().partition(|p| {
            !options
                .downloading
                .as_ref()
                .is_some_and(|d| d.mailboxes.contains(&p.mailbox))
        });
    let mut first: std::collections::VecDeque<&Partner> = first.into();
    loop {
        if first.is_empty() && !later.is_empty() {
            // About to wait for a download: answer what is decided so far first.
            recover(config, index, &staging, &mut report)?;
        }
        let Some(partner) = next_partner(&mut first, &mut later, options.downloading.as_ref())
        else {
            break;
        };
        if options.stopping() {
            report.stopped = true;
            break;
        }
        if unusable.contains(&partner.mailbox) {
            continue;
        }
        take_inbox(config, index, now, partner, &staging, options, &mut report)?;
        if report.stopped {
            break;
        }
    }
    // Receipts out and files moved for everything this pass decided (batched).
    recover(config, index, &staging, &mut report)?;
    if options.stopping() {
        report.stopped = true;
        return Ok(report);
    }
    alerts::emit_alerts(
        config,
        index,
        now,
        &staging,
        &mut report,
        options.alert_deltas,
        options.alert_fulls,
    )?;
    if options.emit_holdings {
        emit_holdings(config, index, now, &staging, &mut report)?;
    }
    Ok(report)
}

/// One partner's `in/`: lists it and takes each message that is ready and not yet
/// decided, in arrival order. A listing error is that partner's alone.
fn take_inbox(
    config: &Config,
    index: &mut Index,
    now: Clock,
    partner: &Partner,
    staging: &emit::Staging,
    options: &PassOptions,
    report: &mut PassReport,
) -> Result<(), PassError> {
    let dir = match transport::folder(staging.root(), &partner.mailbox, "in") {
        Ok(dir) => dir,
        Err(e) => {
            report.partner_error(&partner.mailbox, format!("its in/ folder: {e}"));
            return Ok(());
        }
    };
    let rules = intake::Rules {
        settle: config.hub.settle,
        max_file_bytes: config.hub.max_file_bytes,
    };
    let scan = match intake::scan(&dir, rules, SystemTime::now()) {
        Ok(scan) => scan,
        Err(e) => {
            report.partner_error(
                &partner.mailbox,
                format!("listing {}: {e}", dir.path().display()),
            );
            return Ok(());
        }
    };
    report.scanned.insert(partner.mailbox.clone());
    // Files decided already, whose move waits for their receipt: not new messages.
    let decided = index::ledger::decided_in_inbox(index.db(), &partner.mailbox)?;
    report.wake_at = match (report.wake_at, scan.wake_at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    for item in &scan.found {
        report
            .seen
            .insert((partner.mailbox.clone(), item.item.name().clone()));
    }
    for item in scan.found {
        if options.stopping() {
            report.stopped = true;
            break;
        }
        let key = (partner.mailbox.clone(), item.item.name().clone());
        if options.skip.contains(&key) || decided.contains(&name_bytes(&key.1)) {
            continue;
        }
        let name = item.item.name().to_string_lossy().into_owned();
        info!(event = "file_ready", mailbox = %partner.mailbox, file = %name);
        let result = process_message(config, index, now, partner, &dir, &item);
        match result {
            Ok(status) => {
                forget_failures(index, &key);
                report.messages.push((key.0, key.1, status));
            }
            Err(e) => handle_failure(config, index, now, partner, staging, &item, e, report)?,
        }
    }
    Ok(())
}

/// The next partner whose `in/` a pass takes: the local ones in config order, then
/// each remote one as soon as its download has ended (so that a stalled server holds
/// up nobody but its own partner).
pub(super) fn next_partner<'c>(
    first: &mut std::collections::VecDeque<&'c Partner>,
    later: &mut Vec<&'c Partner>,
    downloads: Option<&Downloads>,
) -> Option<&'c Partner> {
    if let Some(p) = first.pop_front() {
        return Some(p);
    }
    if later.is_empty() {
        return None;
    }
    let Some(downloads) = downloads else {
        return Some(later.remove(0));
    };
    loop {
        match downloads.ready.recv() {
            Ok(mailbox) => {
                if let Some(i) = later.iter().position(|p| p.mailbox == mailbox) {
                    return Some(later.remove(i));
                }
            }
            // Every download has ended.
            Err(_) => return Some(later.remove(0)),
        }
    }
}

/// A message that failed: left in `in/` to be tried again (the environment: a full
/// disk, a busy database), or moved to `failed/` with a receipt — at once when the
/// file itself can never be read, after [`MAX_ATTEMPTS`] tries that failed the same
/// way otherwise. Never stops the pass: the other messages and partners go on.
#[allow(clippy::too_many_arguments)]
pub(super) fn handle_failure(
    config: &Config,
    index: &mut Index,
    now: Clock,
    partner: &Partner,
    staging: &emit::Staging,
    item: &Found,
    e: PassError,
    report: &mut PassReport,
) -> Result<(), PassError> {
    let key = (partner.mailbox.clone(), item.item.name().clone());
    let file = key.1.to_string_lossy().into_owned();
    let message = match &e {
        // SQLite's messages name no database.
        PassError::Index(_) | PassError::Emit(EmitError::Index(_)) => {
            format!("database {}: {e}", config.hub.database.display())
        }
        _ => e.to_string(),
    };
    let kind = e.kind();
    let permanent = match kind {
        ErrorKind::Vanished => {
            info!(event = "file_vanished", mailbox = %partner.mailbox, file = %file);
            forget_failures(index, &key);
            return Ok(());
        }
        ErrorKind::Permanent => true,
        ErrorKind::Environment => false,
        ErrorKind::File => {
            // The same failure again and again is the file's: after MAX_ATTEMPTS it
            // is answered, so it never blocks its partner's later files for long.
            let at = now.rfc3339();
            let attempts = index
                .begin()
                .and_then(|tx| {
                    let n = index::ledger::note_failure(
                        &tx,
                        &key.0,
                        &name_bytes(&key.1),
                        &message,
                        &at,
                    )?;
                    tx.commit()?;
                    Ok(n)
                })
                .unwrap_or(1);
            attempts >= MAX_ATTEMPTS
        }
    };
    if permanent {
        warn!(event = "file_failed", mailbox = %partner.mailbox, file = %file, error = %message, "moved to failed/");
        let read_error = kind == ErrorKind::Permanent;
        fail_permanently(
            config, index, now, partner, staging, item, &message, read_error, report,
        )?;
        forget_failures(index, &key);
    } else {
        warn!(event = "file_retry", mailbox = %partner.mailbox, file = %file, error = %message, "left in in/, tried again later");
    }
    report.errors.push(FileError {
        mailbox: key.0,
        name: key.1,
        transient: !permanent,
    });
    Ok(())
}

/// A file that fails the same way this many times (passes of `process`, or tries of
/// the daemon) is moved to `failed/` with a receipt.
pub(crate) const MAX_ATTEMPTS: u32 = 3;

/// Forgets the failures counted for a file (it was decided, or it left `in/`).
pub(super) fn forget_failures(index: &mut Index, key: &(String, OsString)) {
    let forget = |tx: Tx<'_>| {
        index::ledger::forget_failures(&tx, &key.0, &name_bytes(&key.1))?;
        tx.commit()
    };
    if let Err(e) = index.begin().and_then(forget) {
        warn!(event = "retry_count_error", mailbox = %key.0, error = %e);
    }
}

fn warn_unconfigured(config: &Config) {
    for u in transport::unconfigured_mailboxes(config) {
        if u.files > 0 {
            warn!(event = "unconfigured_mailbox", folder = %u.folder, files = u.files, "files in a folder that is no configured mailbox are never taken: configure its partner, or move them");
        }
    }
}
