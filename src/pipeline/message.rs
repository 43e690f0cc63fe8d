//! One inbound message: opened and checked on its descriptors, decided, recorded and
//! answered in one transaction (a receipt reserved), or refused whole.

use super::extract;
use super::feeds;
use crate::model::{Code, Folder, MessageKind, MessageState};
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::sync::Arc;

use serde_json::json;
use sha2::{Digest, Sha256};
use tracing::info;

use super::error::{extract_failed, io_at, PassError};
use super::extract::{DbSink, Job, Sink, Status};
use super::pass::{PassReport, MAX_ATTEMPTS};
use super::recover::recover;
use crate::clock::Clock;
use crate::config::{Config, Partner};
use crate::emit::{self};
use crate::formats::Kind;
use crate::fsutil::{self, Dir};
use crate::index::{self, ledger::Counts, ledger::MessageRow, Index, IndexError, Store, Tx};
use crate::intake::{Found, Ready};
use crate::parse::ctl;
use crate::transport::{self, name_bytes, name_from};
use crate::validate::Problem;

/// Commits a message's transaction, with the crash-injection points around it.
pub(super) fn commit_decided(tx: Tx<'_>) -> Result<(), PassError> {
    crate::fault::point("before_commit");
    tx.commit()?;
    crate::fault::point("after_commit");
    Ok(())
}

/// Moves a message that failed for good to `failed/` with a receipt: `READ_ERROR`
/// when the file itself can never be read, `PROCESSING_ERROR` when the hub failed on
/// it [`MAX_ATTEMPTS`] times the same way (the details are in the log, not the
/// receipt).
#[allow(clippy::too_many_arguments)]
pub(super) fn fail_permanently(
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
    let mut m = arriving(partner, found, now);
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

/// Chooses the final names in the destination folder (unique there now; when the
/// folder cannot be opened, the names as they are: the move will say why).
pub(super) fn place(config: &Config, m: &mut MessageRow) {
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
pub(super) fn sha256_of(file: &Arc<File>) -> io::Result<String> {
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
pub(super) fn open_inbound(
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
pub(super) fn check_ctl(partner: &Partner, data: &[u8]) -> (Vec<Problem>, bool) {
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
pub(super) fn process_message(
    config: &Config,
    index: &mut Index,
    now: Clock,
    partner: &Partner,
    dir: &Dir,
    found: &Found,
) -> Result<Status, PassError> {
    let mut m = arriving(partner, found, now);
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
    let status = if partner.message_kind() == MessageKind::Extract {
        m.kind = MessageKind::Extract;
        apply_extract(config, index, now, partner, m, pre_problems, &inbound)?
    } else {
        apply_feed(config, index, now, partner, m, pre_problems, &inbound)?
    };
    Ok(status)
}

/// An inbound data file: its open descriptor (every read goes through it) and its
/// path (for messages only).
pub(super) struct Inbound {
    file: Arc<File>,
    path: std::path::PathBuf,
}

/// Reserves a message's receipt; one for `failed/` also gets a copy there (§1.1).
pub(super) fn reserve_receipt(
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
pub(super) fn reject_whole(
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
pub(super) fn record_simple(
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

pub(super) fn log_decision(m: &MessageRow, status: Status) {
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
pub(super) fn opener(
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

pub(super) fn apply_extract(
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
pub(super) fn begin_message(
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
pub(super) fn apply_feed(
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
    m.kind = partner.message_kind();
    let Some(receipt) = begin_message(config, &tx, &now, &mut m)? else {
        tx.commit()?;
        return Ok(Status::Duplicate);
    };
    // The rows the feed makes are tied to this message.
    let mut handler = feeds::handler_for(config, partner, now, m.id)
        .ok_or(PassError::Index(IndexError::ReadOnly))?;
    let open = opener(&data.file, m.compressed, config.hub.max_file_bytes);
    let mut sink = DbSink::new(receipt);
    let outcome = feeds::evaluate(
        Store::Write(&tx),
        handler.as_mut(),
        &config.hub,
        &pre_problems,
        &open,
        true,
        &mut sink,
    )
    .map_err(extract_failed(data_path))?;
    let detail = handler.detail();
    sink.finish(Store::Write(&tx))?;
    finish_message(config, &tx, &now, &mut m, receipt, &outcome, "pass", detail)?;
    commit_decided(tx)?;
    Ok(outcome.status)
}

/// Records an extract's outcome in the ledger, reserves its receipt, audits it.
pub(super) fn finish_extract(
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
pub(super) fn finish_message(
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

/// The ledger row of a message as it arrives: its names (a MESH pair moves together,
/// whatever is decided), the time, and the authority its mailbox speaks for.
fn arriving(partner: &Partner, found: &Found, now: Clock) -> MessageRow {
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
    m
}
