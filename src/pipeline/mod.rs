//! One pass of the hub (SPEC §7 `process`): finish what a crash interrupted, carry
//! out operator decisions, age-18 and retention, consume every ready inbound
//! message, write requested scheduled output.
//!
//! The order for each inbound message, which survives a kill at any point:
//! 1. one transaction: ledger row, problems, apply, receipt reserved (outbound row);
//! 2. the receipt written to `out/` (re-rendered from the index: byte-identical);
//! 3. the inbound file moved to `archive/`, `failed/` or `quarantine/`;
//! 4. the ledger row and outbound row marked done.
//!
//! A restart runs [`recover`] first, which redoes 2-4 for anything left half-way.
//! Before 1 commits, nothing happened: the file is still in `in/` and is read again.
//!
//! Owns no state between passes. Must never apply a file outside a transaction,
//! never move an inbound file before its receipt is written, and never log an NHS
//! number.

pub mod alerts;
pub mod extract;
pub mod feeds;

use crate::model::{Code, Decision, Folder, MessageKind, MessageState};
use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::json;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::clock::Clock;
use crate::config::{Config, Partner, Role};
use crate::emit::{self, render::EmitError};
use crate::formats::Kind;
use crate::fsutil::{self, Dir};
use crate::index::{self, ledger::Counts, ledger::MessageRow, Db, Index, IndexError, Store, Tx};
use crate::intake::{self, Found, Ready};
use crate::parse::ctl;
use crate::transport::{self, name_bytes, name_from};
use crate::validate::Problem;
use extract::{DbSink, ExtractError, Job, Sink, Status};

/// A pass failed in a way that needs an operator (or a retry).
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Emit(#[from] EmitError),
    #[error("file system error on {path}: {source}")]
    Io { path: String, source: io::Error },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> PassError + '_ {
    move |source| PassError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// What a pass asks for beyond consuming inbound messages.
#[derive(Debug, Default)]
pub struct PassOptions {
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
pub struct Downloads {
    pub mailboxes: HashSet<String>,
    pub ready: std::sync::mpsc::Receiver<String>,
}

impl PassOptions {
    fn stopping(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst))
    }
}

/// A message that could not be processed in this pass.
#[derive(Debug)]
pub struct FileError {
    pub mailbox: String,
    pub name: OsString,
    /// Worth retrying later (the file stays in `in/`); otherwise it was moved to
    /// `failed/` with a receipt.
    pub transient: bool,
    pub message: String,
}

/// What a pass did, for the exit code and the log.
#[derive(Debug, Default)]
pub struct PassReport {
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
    pub fn exit_code(&self) -> i32 {
        if self.errors.is_empty()
            && self.partner_errors.is_empty()
            && !self.messages.iter().any(|(_, _, s)| s.is_failure())
        {
            0
        } else {
            1
        }
    }

    fn partner_error(&mut self, mailbox: &str, what: String) {
        warn!(event = "partner_skipped", mailbox = %mailbox, error = %what, "this partner waits; the others go on");
        self.partner_errors.push((mailbox.to_string(), what));
    }
}

/// One whole pass.
pub fn run_pass(
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
        for u in transport::unconfigured_mailboxes(config) {
            if u.files > 0 {
                warn!(event = "unconfigured_mailbox", folder = %u.folder, files = u.files, "files in a folder that is no configured mailbox are never taken: configure its partner, or move them");
            }
        }
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
        let dir = match transport::folder(staging.root(), &partner.mailbox, "in") {
            Ok(dir) => dir,
            Err(e) => {
                report.partner_error(&partner.mailbox, format!("its in/ folder: {e}"));
                continue;
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
                continue;
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
                Err(e) => {
                    handle_failure(config, index, now, partner, &staging, &item, e, &mut report)?
                }
            }
        }
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

/// The next partner whose `in/` a pass takes: the local ones in config order, then
/// each remote one as soon as its download has ended (so that a stalled server holds
/// up nobody but its own partner).
fn next_partner<'c>(
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
fn handle_failure(
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
                        &transport::name_bytes(&key.1),
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
        message,
    });
    Ok(())
}

/// A file that fails the same way this many times (passes of `process`, or tries of
/// the daemon) is moved to `failed/` with a receipt.
pub const MAX_ATTEMPTS: u32 = 3;

/// Forgets the failures counted for a file (it was decided, or it left `in/`).
fn forget_failures(index: &mut Index, key: &(String, OsString)) {
    let forget = |tx: Tx<'_>| {
        index::ledger::forget_failures(&tx, &key.0, &transport::name_bytes(&key.1))?;
        tx.commit()
    };
    if let Err(e) = index.begin().and_then(forget) {
        warn!(event = "retry_count_error", mailbox = %key.0, error = %e);
    }
}

/// Maps a failure to read or apply the file at `path` (used with `map_err`).
fn extract_failed(path: &Path) -> impl FnOnce(ExtractError) -> PassError + '_ {
    move |e| match e {
        ExtractError::Io(source) => PassError::Io {
            path: path.display().to_string(),
            source,
        },
        ExtractError::Index(e) => e.into(),
    }
}

/// Commits a message's transaction, with the crash-injection points around it.
fn commit_decided(tx: Tx<'_>) -> Result<(), PassError> {
    crate::fault::point("before_commit");
    tx.commit()?;
    crate::fault::point("after_commit");
    Ok(())
}

/// How a failure to process a message is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The environment, not the file (a full disk, the database busy, a folder not
    /// writable): the file stays in `in/` and is tried again with backoff for as
    /// long as it takes; nothing the file could change.
    Environment,
    /// Possibly the file's own doing (an error no environment explains): tried again,
    /// and after [`MAX_ATTEMPTS`] failing the same way, answered and moved to
    /// `failed/`.
    File,
    /// Will never succeed (the object itself cannot be read): moved to `failed/`
    /// with a receipt at once.
    Permanent,
    /// The file disappeared (its sender took it back): nothing to do.
    Vanished,
}

impl PassError {
    /// Classifies a failure explicitly (see [`ErrorKind`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            PassError::Index(e) | PassError::Emit(EmitError::Index(e)) => classify_index(e),
            PassError::Emit(EmitError::Io { source, .. }) | PassError::Io { source, .. } => {
                classify_io(source)
            }
            PassError::Emit(EmitError::Missing(_)) => ErrorKind::File,
        }
    }
}

/// The database's own state (busy, full, read-only, unreadable) is the environment;
/// a statement that fails on what the file brought (a constraint, a value too big)
/// is the file's.
pub fn classify_index(e: &IndexError) -> ErrorKind {
    if e.is_environment() {
        ErrorKind::Environment
    } else {
        ErrorKind::File
    }
}

/// The object itself can never be read: permanent. Missing: vanished. Resources and
/// permissions: the environment. Anything else may be the file's.
pub fn classify_io(e: &io::Error) -> ErrorKind {
    use io::ErrorKind as K;
    match e.kind() {
        K::NotFound => ErrorKind::Vanished,
        K::InvalidData | K::InvalidInput | K::IsADirectory | K::FileTooLarge | K::Unsupported => {
            ErrorKind::Permanent
        }
        K::StorageFull
        | K::QuotaExceeded
        | K::ReadOnlyFilesystem
        | K::PermissionDenied
        | K::Interrupted
        | K::TimedOut
        | K::WouldBlock
        | K::OutOfMemory
        | K::ResourceBusy
        | K::StaleNetworkFileHandle
        | K::NotADirectory
        | K::AlreadyExists
        | K::DirectoryNotEmpty
        | K::CrossesDevices
        | K::TooManyLinks => ErrorKind::Environment,
        _ if e.raw_os_error() == Some(libc::EIO) => ErrorKind::Environment,
        _ => ErrorKind::File,
    }
}

/// Moves a message that failed for good to `failed/` with a receipt: `READ_ERROR`
/// when the file itself can never be read, `PROCESSING_ERROR` when the hub failed on
/// it [`MAX_ATTEMPTS`] times the same way (the details are in the log, not the
/// receipt).
#[allow(clippy::too_many_arguments)]
fn fail_permanently(
    config: &Config,
    index: &mut Index,
    now: Clock,
    partner: &Partner,
    staging: &emit::Staging,
    found: &Found,
    message: &str,
    read_error: bool,
    report: &mut PassReport,
) -> Result<(), PassError> {
    let mut m = MessageRow::arriving(
        &partner.mailbox,
        name_bytes(found.item.name()),
        now.rfc3339(),
        partner.authority_code().map(str::to_string),
    );
    if let Ready::Mesh { ctl, .. } = &found.item {
        m.ctl_name = Some(name_bytes(ctl));
        m.src_ctl_name = m.ctl_name.clone();
    }
    let problem = if read_error {
        Problem::file(
            Code::ReadError,
            "",
            format!("the file cannot be read: {message}"),
        )
    } else {
        Problem::file(
            Code::ProcessingError,
            "",
            format!("the hub failed on this file {MAX_ATTEMPTS} times in the same way; nothing was applied. The hub's operators have the details: ask them before sending it again"),
        )
    };
    reject_whole(config, index, &now, &mut m, problem)?;
    recover(config, index, staging, report)
}

/// Writes every reserved outbound file and finishes every half-done move.
///
/// Batched: whatever an interrupted pass left in the staging folder is removed; every
/// reserved file is rendered there, all are flushed with one `syncfs`, renamed into
/// their partners' folders and flushed again, and marked written; only then are the
/// inbound files whose receipts are out moved (and flushed) and marked done. The
/// order for each message is unchanged — receipt durable, then the file moved, then
/// marked — so a crash anywhere is finished by the next call. A partner whose folder
/// cannot take a file (a folder planted at its name, `out/` replaced by a link) stops
/// that file and its message only: it is reported, and tried again next pass.
pub fn recover(
    config: &Config,
    index: &mut Index,
    staging: &emit::Staging,
    report: &mut PassReport,
) -> Result<(), PassError> {
    let staging_path = config.hub.root.join(emit::STAGING);
    staging.clear().map_err(io_at(&staging_path))?;
    let rows = index::outbound::pending_outbound(index.db())?;
    let mut batch = Vec::new();
    let mut failed = HashSet::new();
    for row in &rows {
        match emit::render::stage(config, index.db(), staging, row) {
            Ok(out) => batch.push(out),
            Err(EmitError::Missing(what)) => {
                failed.insert(row.id);
                report.partner_error(
                    &row.mailbox,
                    format!("outbound file {what} cannot be rendered"),
                );
            }
            Err(e) => return Err(e.into()),
        }
    }
    let undelivered = emit::publish(staging, batch).map_err(io_at(&config.hub.root))?;
    for u in undelivered {
        failed.insert(u.id);
        report.partner_error(&u.mailbox, format!("an outbound file could not be put in its folder: {} (remove what is in the way; it is written again at the next pass)", u.error));
    }
    let written: Vec<&index::outbound::OutboundRow> =
        rows.iter().filter(|r| !failed.contains(&r.id)).collect();
    if !written.is_empty() {
        crate::fault::point("after_receipt");
        let tx = index.begin()?;
        for row in &written {
            index::outbound::mark_outbound_written(&tx, row.id)?;
        }
        tx.commit()?;
        for row in &written {
            info!(event = "outbound_written", mailbox = %row.mailbox, file = %emit::render::data_name(row));
        }
    }
    let waiting = index::ledger::messages_awaiting_receipt(index.db())?;
    let mut moved = Vec::new();
    for m in index::ledger::messages_moving(index.db())? {
        if waiting.contains(&m.id) {
            continue;
        }
        match move_message(staging.root(), &m) {
            Ok(()) => moved.push(m.id),
            Err(e) => report.partner_error(
                &m.mailbox,
                format!("moving {}: {e}", String::from_utf8_lossy(&m.name)),
            ),
        }
    }
    if moved.is_empty() {
        return Ok(());
    }
    staging.root().syncfs().map_err(io_at(&config.hub.root))?;
    crate::fault::point("after_move");
    let tx = index.begin()?;
    for id in moved {
        index::ledger::mark_message_done(&tx, id)?;
    }
    tx.commit()?;
    Ok(())
}

/// Moves a decided message's files (the `.ctl` first: a lone `.dat` waits harmlessly,
/// a lone `.ctl` would be refused) to their final folder.
fn move_message(root: &Dir, m: &MessageRow) -> io::Result<()> {
    let from = transport::folder(root, &m.mailbox, &m.src_folder.path())?;
    let to = transport::create_folder(root, &m.mailbox, &m.dest_folder.path())?;
    if let (Some(ctl), Some(dest_ctl)) = (&m.src_ctl_name, &m.dest_ctl_name) {
        transport::move_entry(&from, &name_from(ctl), &to, &name_from(dest_ctl))?;
    }
    transport::move_entry(
        &from,
        &name_from(&m.src_name),
        &to,
        &name_from(&m.dest_name),
    )
}

/// Chooses the final names in the destination folder (unique there now; when the
/// folder cannot be opened, the names as they are: the move will say why).
fn place(config: &Config, m: &mut MessageRow) {
    let dir = Dir::open(&config.hub.root)
        .and_then(|root| transport::create_folder(&root, &m.mailbox, &m.dest_folder.path()))
        .ok();
    let free = |name: &[u8]| match &dir {
        Some(d) => name_bytes(&transport::free_name(d, &name_from(name))),
        None => name.to_vec(),
    };
    m.dest_ctl_name = m.src_ctl_name.as_deref().map(free);
    m.dest_name = free(&m.name);
    m.state = MessageState::Moving;
}

/// SHA-256 of an open file, streamed from its start.
fn sha256_of(file: &Arc<File>) -> io::Result<String> {
    let mut reader = fsutil::ReadAt::new(file.clone());
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Opens an inbound entry through its folder and checks it on the descriptor: a
/// regular file (not a link, FIFO or folder, whatever the scan saw), with one link
/// (not a hard link to a file elsewhere), on the mailbox's own file system, within
/// `hub.max_file_bytes`. `Err(problem)` for a refusal with a receipt.
fn open_inbound(
    dir: &Dir,
    name: &OsString,
    max_bytes: u64,
) -> Result<Result<Arc<File>, Problem>, PassError> {
    crate::fault::transient_read().map_err(io_at(&dir.path().join(name)))?;
    let (file, info) = match dir.open_read(name) {
        Ok(x) => x,
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
            return Ok(Err(Problem::file(Code::Name, "", format!("{e}"))))
        }
        Err(e) => return Err(io_at(&dir.path().join(name))(e)),
    };
    let shown = name.to_string_lossy();
    let refusal = if info.kind != fsutil::Kind::File {
        Some((
            Code::Name,
            format!(
                "{shown} is {}: only regular files are accepted",
                info.kind.describe()
            ),
        ))
    } else if info.links != 1 {
        Some((
            Code::Name,
            format!(
                "{shown} has {} names (a hard link to a file elsewhere): send the file itself",
                info.links
            ),
        ))
    } else if dir.info().is_ok_and(|d| d.dev != info.dev) {
        Some((
            Code::Name,
            format!("{shown} is not on the mailbox's own file system"),
        ))
    } else if info.size > max_bytes {
        Some((
            Code::TooLarge,
            format!(
                "the file is {} bytes; the limit is {max_bytes} (hub.max_file_bytes)",
                info.size
            ),
        ))
    } else {
        None
    };
    Ok(match refusal {
        Some((code, message)) => Err(Problem::file(code, "", message)),
        None => Ok(Arc::new(file)),
    })
}

/// The `.ctl` checks of §1.3: file-level problems, and whether the `.dat` is gzip.
fn check_ctl(partner: &Partner, data: &[u8]) -> (Vec<Problem>, bool) {
    let control = match ctl::parse(data) {
        Ok(c) => c,
        Err(why) => {
            return (
                vec![Problem::file(
                    Code::XmlMalformed,
                    "ctl",
                    format!("{why}: the message cannot be trusted"),
                )],
                false,
            )
        }
    };
    let mut problems = Vec::new();
    if control.flag("Encrypted") {
        problems.push(Problem::file(Code::Encrypted, "Encrypted", "the message is encrypted (Encrypted=Y); the hub does not decrypt: send it unencrypted over the secure channel"));
    }
    if let Some(from) = control.get("From_DTS") {
        if !from.eq_ignore_ascii_case(&partner.mailbox) {
            problems.push(Problem::file(Code::PartnerMismatch, "From_DTS", format!("From_DTS {from} is not this mailbox's owner ({}): a mailbox speaks for its owner only", partner.mailbox)));
        }
    }
    match control.get("WorkflowId") {
        Some(w) if w.eq_ignore_ascii_case(partner.inbound_workflow()) => {}
        other => problems.push(Problem::file(
            Code::Workflow,
            "WorkflowId",
            format!(
                "WorkflowId {:?} is not one this partner may send: use {}",
                other.unwrap_or(""),
                partner.inbound_workflow()
            ),
        )),
    }
    (problems, control.flag("Compress"))
}

/// Decides, records and finishes one ready message, reading it only through the
/// descriptors opened and checked here (never its name again).
fn process_message(
    config: &Config,
    index: &mut Index,
    now: Clock,
    partner: &Partner,
    dir: &Dir,
    found: &Found,
) -> Result<Status, PassError> {
    let mut m = MessageRow::arriving(
        &partner.mailbox,
        name_bytes(found.item.name()),
        now.rfc3339(),
        partner.authority_code().map(str::to_string),
    );
    if let Ready::Mesh { ctl, .. } = &found.item {
        // The pair moves together, whatever is decided.
        m.ctl_name = Some(name_bytes(ctl));
        m.src_ctl_name = m.ctl_name.clone();
    }
    let refuse = |index: &mut Index, m: &mut MessageRow, problem: Problem| {
        m.kind = MessageKind::Refused;
        reject_whole(config, index, &now, m, problem)
    };
    let (name, ctl_name) = match &found.item {
        Ready::Refused { code, message, .. } => {
            return refuse(index, &mut m, Problem::file(*code, "", message.clone()));
        }
        Ready::Plain { name, .. } => (name, None),
        Ready::Mesh { dat, ctl, .. } => (dat, Some(ctl)),
    };
    let max = config.hub.max_file_bytes;
    let data = match open_inbound(dir, name, max)? {
        Ok(file) => file,
        Err(problem) => return refuse(index, &mut m, problem),
    };
    let data_path = dir.path().join(name);
    let (pre_problems, compressed) = match ctl_name {
        None => (Vec::new(), false),
        Some(ctl_name) => {
            let ctl = match open_inbound(dir, ctl_name, ctl::MAX_CTL_BYTES as u64)? {
                Ok(file) => file,
                Err(problem) => return refuse(index, &mut m, problem),
            };
            let mut text = Vec::new();
            fsutil::ReadAt::new(ctl)
                .take(ctl::MAX_CTL_BYTES as u64 + 1)
                .read_to_end(&mut text)
                .map_err(io_at(&dir.path().join(ctl_name)))?;
            check_ctl(partner, &text)
        }
    };
    m.compressed = compressed;
    m.sha256 = Some(sha256_of(&data).map_err(io_at(&data_path))?);
    if crate::fault::poisoned(&m.name) {
        return Err(PassError::Index(IndexError::injected_constraint()));
    }
    let inbound = Inbound {
        file: data,
        path: data_path,
    };
    let status = if matches!(partner.role, Role::Authority { .. }) {
        m.kind = MessageKind::Extract;
        apply_extract(config, index, now, partner, m, pre_problems, &inbound)?
    } else {
        apply_feed(config, index, now, partner, m, pre_problems, &inbound)?
    };
    Ok(status)
}

/// An inbound data file: its open descriptor (every read goes through it) and its
/// path (for messages only).
struct Inbound {
    file: Arc<File>,
    path: std::path::PathBuf,
}

/// Reserves a message's receipt; one for `failed/` also gets a copy there (§1.1).
fn reserve_receipt(
    config: &Config,
    tx: &Tx<'_>,
    now: &Clock,
    m: &MessageRow,
    receipt: i64,
) -> Result<(), PassError> {
    let copy = (m.dest_folder == Folder::Failed).then_some(Folder::Failed);
    emit::render::reserve(
        tx,
        config,
        &m.mailbox,
        Kind::Receipt,
        now,
        Some(receipt),
        copy,
    )?;
    Ok(())
}

/// Rejects a message whole, in its own transaction, with one file-level problem.
fn reject_whole(
    config: &Config,
    index: &mut Index,
    now: &Clock,
    m: &mut MessageRow,
    problem: Problem,
) -> Result<Status, PassError> {
    let tx = index.begin()?;
    record_simple(
        config,
        &tx,
        now,
        m,
        Status::Rejected,
        Counts::default(),
        vec![problem],
    )?;
    tx.commit()?;
    Ok(Status::Rejected)
}

/// Writes the ledger row, a receipt with `problems`, and reserves the receipt.
fn record_simple(
    config: &Config,
    tx: &Tx<'_>,
    now: &Clock,
    m: &mut MessageRow,
    status: Status,
    counts: Counts,
    problems: Vec<Problem>,
) -> Result<(), PassError> {
    m.status = status;
    m.dest_folder = status.destination(now.today());
    m.records = counts.records;
    m.warnings = counts.warnings;
    place(config, m);
    m.id = index::ledger::insert_message(tx, m)?;
    let receipt = index::ledger::insert_receipt(tx, m.id, status, counts)?;
    for (i, p) in problems.iter().enumerate() {
        index::ledger::insert_problem(tx, receipt, i as u64 + 1, p)?;
    }
    reserve_receipt(config, tx, now, m, receipt)?;
    log_decision(m, status);
    Ok(())
}

fn log_decision(m: &MessageRow, status: Status) {
    let file = String::from_utf8_lossy(&m.name);
    let event = if status.applies() {
        "file_applied"
    } else {
        "file_rejected"
    };
    info!(event, mailbox = %m.mailbox, file = %file, status = status.as_str(), records = m.records, applied = m.applied, rejected = m.rejected, warnings = m.warnings);
}

/// Readers of a message's content, each from its start: through the open
/// descriptor, decompressed when the `.ctl` said `Compress=Y` (every gzip member), at
/// most `max` bytes.
fn opener(
    file: &Arc<File>,
    compressed: bool,
    max: u64,
) -> impl Fn() -> io::Result<Box<dyn Read + Send>> + '_ {
    move || {
        let reader = fsutil::ReadAt::new(file.clone());
        Ok(if compressed {
            extract::bounded(crate::parse::limits::Gunzip::new(reader), max)
        } else {
            extract::bounded(reader, max)
        })
    }
}

fn apply_extract(
    config: &Config,
    index: &mut Index,
    now: Clock,
    partner: &Partner,
    mut m: MessageRow,
    pre_problems: Vec<Problem>,
    data: &Inbound,
) -> Result<Status, PassError> {
    let data_path = &data.path;
    let authority = partner.authority_code().unwrap_or_default().to_string();
    let job = Job {
        hub: &config.hub,
        authority: &authority,
        now,
        pre_problems,
        guard: true,
        apply: true,
    };
    let open = opener(&data.file, m.compressed, config.hub.max_file_bytes);
    // The pass runs straight in the message's transaction (no savepoint); when the
    // file must be read again (a record twice in it, or a decision that forbids
    // applying after lines were applied) the whole transaction is rolled back and
    // the message started again with what was learnt: at most three passes.
    let mut hints = extract::Hints::default();
    for _ in 0..3 {
        let tx = index.begin()?;
        let Some(receipt) = begin_message(config, &tx, &now, &mut m)? else {
            tx.commit()?;
            return Ok(Status::Duplicate);
        };
        let mut sink = DbSink::new(receipt);
        match extract::evaluate_step(Store::Write(&tx), &job, &open, &mut sink, &hints)
            .map_err(extract_failed(data_path))?
        {
            extract::Step::Again(h) => hints = h, // tx dropped: rolled back
            extract::Step::Done(outcome) => {
                sink.finish(Store::Write(&tx))?;
                finish_extract(config, &tx, &now, &mut m, receipt, &outcome, "pass")?;
                commit_decided(tx)?;
                return Ok(outcome.status);
            }
        }
    }
    Err(extract_failed(data_path)(extract::ExtractError::Io(
        io::Error::other(
            "the extract still needed another pass after three: it stays in in/ and is tried again",
        ),
    )))
}

/// Starts a message's record in the transaction: a DUPLICATE is recorded whole
/// (`None`); otherwise the ledger row and an empty receipt are inserted, to be
/// completed by [`finish_message`], and the receipt's id is returned.
fn begin_message(
    config: &Config,
    tx: &Tx<'_>,
    now: &Clock,
    m: &mut MessageRow,
) -> Result<Option<i64>, PassError> {
    if index::ledger::find_duplicate(tx.db(), &m.mailbox, m.sha256.as_deref().unwrap_or_default())?
        .is_some()
    {
        record_simple(
            config,
            tx,
            now,
            m,
            Status::Duplicate,
            Counts::default(),
            Vec::new(),
        )?;
        return Ok(None);
    }
    m.status = Status::Pending;
    m.dest_folder = Folder::Failed;
    m.id = index::ledger::insert_message(tx, m)?;
    Ok(Some(index::ledger::insert_receipt(
        tx,
        m.id,
        Status::Pending,
        Counts::default(),
    )?))
}

/// Applies an attendance file or an NHS number status file (one transaction).
fn apply_feed(
    config: &Config,
    index: &mut Index,
    now: Clock,
    partner: &Partner,
    mut m: MessageRow,
    pre_problems: Vec<Problem>,
    data: &Inbound,
) -> Result<Status, PassError> {
    let data_path = &data.path;
    let tx = index.begin()?;
    m.kind = match partner.role {
        Role::Site { .. } => MessageKind::Attendance,
        _ => MessageKind::NhsStatus,
    };
    let Some(receipt) = begin_message(config, &tx, &now, &mut m)? else {
        tx.commit()?;
        return Ok(Status::Duplicate);
    };
    let open = opener(&data.file, m.compressed, config.hub.max_file_bytes);
    let mut sink = DbSink::new(receipt);
    let io_err = extract_failed(data_path);
    let (outcome, detail) = match &partner.role {
        Role::Site {
            code,
            name,
            site_codes,
            ..
        } => {
            let mut h = feeds::Attendance::new(config, code, name, site_codes, now, m.id);
            let o = feeds::evaluate(
                Store::Write(&tx),
                &mut h,
                &config.hub,
                &pre_problems,
                &open,
                true,
                &mut sink,
            )
            .map_err(io_err)?;
            let d = json!({"site": code, "notified": h.notified, "silent_reads": h.silent_reads, "not_held": h.not_held, "duplicate_events": h.duplicates});
            (o, d)
        }
        _ => {
            let mut h = feeds::NhsStatus::new(config, now, m.id);
            let o = feeds::evaluate(
                Store::Write(&tx),
                &mut h,
                &config.hub,
                &pre_problems,
                &open,
                true,
                &mut sink,
            )
            .map_err(io_err)?;
            (o, json!({"marked": h.marked, "notices": h.notices}))
        }
    };
    sink.finish(Store::Write(&tx))?;
    finish_message(config, &tx, &now, &mut m, receipt, &outcome, "pass", detail)?;
    commit_decided(tx)?;
    Ok(outcome.status)
}

/// Records an extract's outcome in the ledger, reserves its receipt, audits it.
fn finish_extract(
    config: &Config,
    tx: &Tx<'_>,
    now: &Clock,
    m: &mut MessageRow,
    receipt: i64,
    o: &extract::Outcome,
    actor: &str,
) -> Result<(), PassError> {
    m.extract_type = o.header.extract_type.map(|t| t.as_str().to_string());
    m.extracted_at = o.header.extracted_at.map(crate::clock::rfc3339);
    m.sequence = o.header.sequence;
    let ended = if o.status.applies() { o.would_end } else { 0 };
    let detail = json!({"type": m.extract_type, "ended_absent": ended});
    finish_message(config, tx, now, m, receipt, o, actor, detail)
}

/// Records a message's outcome in the ledger, reserves its receipt, audits it
/// (`detail` adds the kind's own counts; never an NHS number).
#[allow(clippy::too_many_arguments)]
fn finish_message(
    config: &Config,
    tx: &Tx<'_>,
    now: &Clock,
    m: &mut MessageRow,
    receipt: i64,
    o: &extract::Outcome,
    actor: &str,
    detail: serde_json::Value,
) -> Result<(), PassError> {
    let status = o.status;
    m.status = status;
    m.records = o.counts.records;
    m.applied = o.counts.applied;
    m.rejected = o.counts.rejected;
    m.warnings = o.counts.warnings;
    m.dest_folder = status.destination(now.today());
    place(config, m);
    index::ledger::update_message(tx, m)?;
    index::ledger::update_receipt(tx, receipt, status, o.counts)?;
    reserve_receipt(config, tx, now, m, receipt)?;
    let mut entry = json!({
        "message_id": m.id, "mailbox": m.mailbox, "file": String::from_utf8_lossy(&m.name),
        "status": status.as_str(), "records": o.counts.records, "applied": o.counts.applied,
        "rejected": o.counts.rejected, "warnings": o.counts.warnings,
    });
    if let (Some(map), serde_json::Value::Object(extra)) = (entry.as_object_mut(), detail) {
        map.extend(extra);
        if let Some(a) = &m.authority {
            map.insert("authority".into(), json!(a));
        }
    }
    index::audit::audit(tx, now, actor, m.kind.as_str(), &entry)?;
    log_decision(m, status);
    Ok(())
}

/// Carries out queued quarantine decisions (§6.6).
fn carry_out_decisions(
    config: &Config,
    index: &mut Index,
    now: Clock,
    staging: &emit::Staging,
    report: &mut PassReport,
) -> Result<(), PassError> {
    for d in index::ledger::pending_decisions(index.db())? {
        let Some(mut m) = index::ledger::message(index.db(), d.message_id)? else {
            continue;
        };
        let tx = index.begin()?;
        if m.status != Status::Quarantined || m.state != MessageState::Done {
            index::ledger::finish_decisions(&tx, m.id, &now.rfc3339())?;
            tx.commit()?;
            continue;
        }
        m.src_folder = Folder::Quarantine;
        let file_name = String::from_utf8_lossy(&m.name).into_owned();
        m.src_name = m.dest_name.clone();
        m.src_ctl_name = m.dest_ctl_name.clone();
        let status = if d.decision == Decision::Release {
            let authority = m.authority.clone().unwrap_or_default();
            let receipt =
                index::ledger::insert_receipt(&tx, m.id, Status::Pending, Counts::default())?;
            let job = Job {
                hub: &config.hub,
                authority: &authority,
                now,
                pre_problems: Vec::new(),
                guard: false,
                apply: true,
            };
            let folder = transport::folder(staging.root(), &m.mailbox, "quarantine")
                .map_err(io_at(&config.folder(&m.mailbox, "quarantine")))?;
            let path = folder.path().join(name_from(&m.src_name));
            let file = open_inbound(&folder, &name_from(&m.src_name), u64::MAX)?
                .map_err(|p| io_at(&path)(io::Error::new(io::ErrorKind::InvalidData, p.message)))?;
            let open = opener(&file, m.compressed, config.hub.max_file_bytes);
            let mut sink = DbSink::new(receipt);
            let outcome = extract::evaluate(Store::Write(&tx), &job, &open, &mut sink)
                .map_err(extract_failed(&path))?;
            sink.finish(Store::Write(&tx))?;
            finish_extract(
                config,
                &tx,
                &now,
                &mut m,
                receipt,
                &outcome,
                &format!("operator:{}", d.requested_by),
            )?;
            report
                .messages
                .push((m.mailbox.clone(), name_from(&m.name), outcome.status));
            outcome.status
        } else {
            let counts = Counts {
                records: m.records,
                ..Counts::default()
            };
            let receipt = index::ledger::insert_receipt(&tx, m.id, Status::Rejected, counts)?;
            index::ledger::insert_problem(
                &tx,
                receipt,
                1,
                &Problem::file(
                    Code::Discarded,
                    "",
                    "an operator discarded this quarantined file; nothing was applied",
                ),
            )?;
            m.status = Status::Rejected;
            m.applied = 0;
            m.dest_folder = Folder::Failed;
            place(config, &mut m);
            index::ledger::update_message(&tx, &m)?;
            reserve_receipt(config, &tx, &now, &m, receipt)?;
            index::audit::audit(
                &tx,
                &now,
                &format!("operator:{}", d.requested_by),
                "quarantine_discard",
                &json!({"message_id": m.id, "file": file_name}),
            )?;
            Status::Rejected
        };
        if d.decision == Decision::Release {
            index::audit::audit(
                &tx,
                &now,
                &format!("operator:{}", d.requested_by),
                "quarantine_release",
                &json!({"message_id": m.id, "file": file_name, "status": status.as_str()}),
            )?;
        }
        index::ledger::finish_decisions(&tx, m.id, &now.rfc3339())?;
        tx.commit()?;
        recover(config, index, staging, report)?;
    }
    Ok(())
}

/// Age-18 endings, the retention purge and the archive clean-up, as of `now`.
pub fn housekeeping(
    config: &Config,
    index: &mut Index,
    now: Clock,
    root: &Dir,
) -> Result<(), PassError> {
    let today = now.today();
    let tx = index.begin()?;
    let mut seqs = index::records::ChangeSeq::load(tx.db())?;
    let ended = index::retention::end_at_18(&tx, &mut seqs, today)?;
    let purged = index::retention::purge(&tx, &mut seqs, today, config.hub.retention_days)?;
    seqs.save(&tx)?;
    let cutoff = crate::clock::add_days(today, -i64::from(config.hub.retention_days));
    index::flows::purge_flows(&tx, &cutoff.to_string())?;
    let problems_before =
        now.now() - chrono::Duration::days(crate::report::rejections::REJECTION_DAYS);
    index::flows::purge_problems(&tx, &crate::clock::rfc3339(problems_before))?;
    if ended > 0 {
        index::audit::audit(&tx, &now, "pass", "age_18", &json!({"ended": ended}))?;
        info!(event = "age_18", ended);
    }
    for (authority, count) in &purged {
        index::audit::audit(
            &tx,
            &now,
            "pass",
            "purge",
            &json!({"authority": authority, "purged": count}),
        )?;
        info!(event = "purge", authority = %authority, purged = count);
    }
    tx.commit()?;
    let cutoff = crate::clock::add_days(today, -i64::from(config.hub.archive_days));
    for partner in &config.partners {
        let Ok(dir) = transport::folder(root, &partner.mailbox, "archive") else {
            continue;
        };
        let Ok(entries) = dir.entries() else {
            continue;
        };
        for (name, _) in entries {
            if let Some(day) = crate::clock::parse_date(&name.to_string_lossy()) {
                if day < cutoff {
                    // Never following a link: only the hub's own day folder goes.
                    dir.remove_tree(&name)
                        .map_err(io_at(&dir.path().join(&name)))?;
                    info!(event = "archive_expired", mailbox = %partner.mailbox, day = %day);
                }
            }
        }
    }
    Ok(())
}

/// Reserves and writes a holdings file for every authority (§4.5).
pub fn emit_holdings(
    config: &Config,
    index: &mut Index,
    now: Clock,
    staging: &emit::Staging,
    report: &mut PassReport,
) -> Result<(), PassError> {
    let tx = index.begin()?;
    for partner in config.authorities() {
        emit::render::reserve(
            &tx,
            config,
            &partner.mailbox,
            Kind::Holdings,
            &now,
            None,
            None,
        )?;
    }
    tx.commit()?;
    recover(config, index, staging, report)
}

/// The outcome of `validate`: what the receipt would say, nothing changed.
pub struct Validation {
    pub partner_key: (&'static str, String),
    pub sha256: String,
    pub status: Status,
    pub counts: Counts,
    pub problems: Vec<Problem>,
    /// For a DUPLICATE: the earlier message with the same content.
    pub earlier: Option<MessageRow>,
}

/// The partner a file speaks for, from its own metadata: `authority=` of an
/// extract, `site=` of attendance events; an NHS number status file is the
/// demographics feed's.
pub fn partner_of_file<'c>(config: &'c Config, path: &Path) -> Option<&'c Partner> {
    use crate::formats::{ATTENDANCE, EXTRACT, NHS_STATUS};
    for spec in [&EXTRACT, &ATTENDANCE, &NHS_STATUS] {
        let file = File::open(path).ok()?;
        let Ok((_, prelude)) = crate::parse::DocReader::open(file, spec) else {
            continue;
        };
        let meta = &prelude.metadata;
        return match spec.name {
            "cpis-extract" => config.authority(meta.get("authority")?),
            "cpis-attendance" => config.site(meta.get("site")?),
            _ => config
                .partners
                .iter()
                .find(|p| matches!(p.role, Role::Demographics)),
        };
    }
    None
}

/// Checks a file against the rules and the index without changing anything (§7).
pub fn validate_file(
    config: &Config,
    db: Db<'_>,
    path: &Path,
    partner: Option<&Partner>,
    now: Clock,
) -> Result<Validation, PassError> {
    let file = Arc::new(File::open(path).map_err(io_at(path))?);
    let sha256 = sha256_of(&file).map_err(io_at(path))?;
    let Some(partner) = partner else {
        let problem = Problem::file(
            Code::PartnerMismatch,
            "authority",
            "the file's metadata names no configured partner: name the sender with --partner MAILBOX",
        );
        return Ok(Validation {
            partner_key: ("mailbox", String::new()),
            sha256,
            status: Status::Rejected,
            counts: Counts::default(),
            problems: vec![problem],
            earlier: None,
        });
    };
    let (key, value) = partner.key();
    let partner_key = (key, value.to_string());
    if let Some(id) = index::ledger::find_duplicate(db, &partner.mailbox, &sha256)? {
        return Ok(Validation {
            partner_key,
            sha256,
            status: Status::Duplicate,
            counts: Counts::default(),
            problems: Vec::new(),
            earlier: index::ledger::message(db, id)?,
        });
    }
    let open = opener(&file, false, config.hub.max_file_bytes);
    let mut sink = extract::MemorySink::default();
    let io_err = extract_failed(path);
    let feed_outcome = match &partner.role {
        Role::Authority { .. } => None,
        Role::Site {
            code,
            name,
            site_codes,
            ..
        } => {
            let mut h = feeds::Attendance::new(config, code, name, site_codes, now, 0);
            Some(
                feeds::evaluate(
                    Store::Read(db),
                    &mut h,
                    &config.hub,
                    &[],
                    &open,
                    false,
                    &mut sink,
                )
                .map_err(io_err)?,
            )
        }
        Role::Demographics => {
            let mut h = feeds::NhsStatus::new(config, now, 0);
            Some(
                feeds::evaluate(
                    Store::Read(db),
                    &mut h,
                    &config.hub,
                    &[],
                    &open,
                    false,
                    &mut sink,
                )
                .map_err(io_err)?,
            )
        }
    };
    if let Some(outcome) = feed_outcome {
        sink.finish(Store::Read(db))?;
        let mut problems = sink.0;
        problems.sort_by_key(|p| p.line.map_or((0, 0), |l| (1, l)));
        return Ok(Validation {
            partner_key,
            sha256,
            status: outcome.status,
            counts: outcome.counts,
            problems,
            earlier: None,
        });
    }
    let authority = partner.authority_code().unwrap_or_default();
    let job = Job {
        hub: &config.hub,
        authority,
        now,
        pre_problems: Vec::new(),
        guard: true,
        apply: false,
    };
    let outcome =
        extract::evaluate(Store::Read(db), &job, &open, &mut sink).map_err(extract_failed(path))?;
    sink.finish(Store::Read(db))?;
    let mut problems = sink.0;
    problems.sort_by_key(|p| p.line.map_or((0, 0), |l| (1, l)));
    Ok(Validation {
        partner_key,
        sha256,
        status: outcome.status,
        counts: outcome.counts,
        problems,
        earlier: None,
    })
}

#[cfg(test)]
mod tests;
