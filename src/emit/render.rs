//! Renders reserved outbound files from what the index holds, and writes them to
//! the partner's `out/` folder (MESH: `.dat` then `.ctl`).

use std::io::{self, Write};
use std::path::PathBuf;

use super::{Outgoing, Part, Staging, TableWriter};
use crate::clock;
use crate::config::{Config, Framing};
use crate::formats::{self, Kind};
use crate::index::{self, ledger::Counts, outbound::OutboundRow, Db, IndexError, Tx};
use crate::model::{Folder, OutboundState};
use crate::validate::Problem;

/// Why an outbound file could not be written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EmitError {
    #[error("writing {path}: {source} (check the folder exists, its permissions and free space)")]
    Io { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("outbound file {0} refers to a receipt or message that is not in the index")]
    Missing(String),
}

/// Outbound files are group-readable at most (§4).
pub(crate) const OUT_MODE: u32 = 0o640;

/// The data file's name: `STEM.csv` / `STEM.xml`, or `STEM.dat` for MESH framing.
pub(crate) fn data_name(row: &OutboundRow) -> String {
    let ext = match row.framing {
        Framing::Mesh => "dat",
        Framing::Plain => row.format.as_str(),
    };
    format!("{}.{ext}", row.stem)
}

/// Renders a reserved outbound file (its data, its copy for `failed/`, its `.ctl`)
/// into the staging folder, in the order they must appear; [`super::publish`] makes
/// them visible.
pub(crate) fn stage(
    config: &Config,
    db: Db<'_>,
    staging: &Staging,
    row: &OutboundRow,
) -> Result<Outgoing, EmitError> {
    let name = data_name(row);
    let io_err = |folder: &str, name: &str| {
        let path = config.folder(&row.mailbox, folder).join(name);
        move |source| EmitError::Io { path, source }
    };
    let mut parts = Vec::new();
    let mut failure = None;
    let mut body: Vec<u8> = Vec::new();
    let keep_copy = row.copy_to.is_some();
    let data = staging.stage(&row.mailbox, "out", &name, OUT_MODE, |file| {
        let mut w = io::BufWriter::with_capacity(256 * 1024, file);
        let result = if keep_copy {
            render(config, db, row, &mut body).and_then(|()| {
                w.write_all(&body).map_err(|e| EmitError::Io {
                    path: PathBuf::from(&row.stem),
                    source: e,
                })
            })
        } else {
            render(config, db, row, &mut w)
        };
        match result {
            Ok(()) => w.flush(),
            Err(e) => {
                let message = e.to_string();
                failure = Some(e);
                Err(io::Error::other(message))
            }
        }
    });
    parts.push(data.map_err(|e| failure.take().unwrap_or_else(|| io_err("out", &name)(e)))?);
    if let Some(copy) = row.copy_to {
        let copy_name = format!("{}.{}", row.stem, row.format.as_str());
        let folder = copy.path();
        parts.push(
            staging
                .stage(&row.mailbox, &folder, &copy_name, 0o600, |f| {
                    f.write_all(&body)
                })
                .map_err(io_err(&folder, &copy_name))?,
        );
    }
    if let Some(ctl) = stage_ctl(config, staging, row)? {
        parts.push(ctl);
    }
    Ok(Outgoing { id: row.id, parts })
}

/// The MESH control file of an outbound file (published after its `.dat`).
pub(super) fn stage_ctl(
    config: &Config,
    staging: &Staging,
    row: &OutboundRow,
) -> Result<Option<Part>, EmitError> {
    if row.framing != Framing::Mesh {
        return Ok(None);
    }
    let workflow = match config.partner(&row.mailbox) {
        Some(p) => p.outbound_workflow(row.kind),
        // A file for a partner no longer configured: an authority's, as it was.
        None if row.kind == Kind::Receipt => "CPISHUB_EXTRACT_ACK",
        None => match row.kind {
            Kind::Access => "CPISHUB_ACCESS",
            Kind::Inactive => "CPISHUB_INACTIVE",
            Kind::Holdings => "CPISHUB_HOLDINGS",
            _ => "CPISHUB_ALERTS",
        },
    };
    let text = super::ctl::control_file(
        workflow,
        &config.hub.mailbox,
        &row.mailbox,
        row.kind.as_str(),
        row.sequence,
    );
    let ctl_name = format!("{}.ctl", row.stem);
    staging
        .stage(&row.mailbox, "out", &ctl_name, OUT_MODE, |f| {
            f.write_all(text.as_bytes())
        })
        .map(Some)
        .map_err(|source| EmitError::Io {
            path: config.folder(&row.mailbox, "out").join(&ctl_name),
            source,
        })
}

/// Renders an outbound file's content.
pub(crate) fn render(
    config: &Config,
    db: Db<'_>,
    row: &OutboundRow,
    out: &mut dyn Write,
) -> Result<(), EmitError> {
    let partner = partner_key(config, row);
    match row.kind {
        Kind::Receipt => receipt(db, row, partner, out),
        Kind::Holdings => holdings(config, db, row, partner, out),
        Kind::Access => access(db, row, partner, out),
        Kind::Inactive => inactive(db, row, partner, out),
        Kind::Alerts => super::alerts::render(config, db, row, partner, out),
    }
}

/// The metadata key and value that name the partner (`authority=LA204`).
pub(super) type PartnerKey = (&'static str, String);

/// An I/O error while writing `row`'s file.
pub(super) fn io_error(row: &OutboundRow) -> impl Fn(io::Error) -> EmitError + '_ {
    |e| EmitError::Io {
        path: PathBuf::from(&row.stem),
        source: e,
    }
}

fn receipt(
    db: Db<'_>,
    row: &OutboundRow,
    (key, value): PartnerKey,
    out: &mut dyn Write,
) -> Result<(), EmitError> {
    let io = io_error(row);
    let missing = || EmitError::Missing(row.stem.clone());
    let receipt_id = row.receipt_id.ok_or_else(missing)?;
    let receipt = index::ledger::receipt(db, receipt_id)?.ok_or_else(missing)?;
    let message = index::ledger::message(db, receipt.message_id)?.ok_or_else(missing)?;
    let source = String::from_utf8_lossy(&message.name);
    let head = ReceiptHead {
        partner: (key, &value),
        source: &source,
        sha256: message.sha256.as_deref().unwrap_or_default(),
        status: receipt.status.as_str(),
        counts: receipt.counts,
        sequence: row.sequence,
        created_at: &row.created_at,
    };
    let mut table =
        TableWriter::begin(out, &formats::RECEIPT, row.format, &head.metadata()).map_err(&io)?;
    index::ledger::for_each_problem(db, receipt_id, |p| problem_row(&mut table, &p).map_err(&io))?;
    table.finish().map_err(io)
}

fn holdings(
    config: &Config,
    db: Db<'_>,
    row: &OutboundRow,
    (key, value): PartnerKey,
    out: &mut dyn Write,
) -> Result<(), EmitError> {
    let io = io_error(row);
    let authority = value.clone();
    let as_of = clock::parse_rfc3339(&row.created_at).unwrap_or_default();
    let today = clock::london_date(as_of);
    let retention = i64::from(config.hub.retention_days);
    // One read snapshot for the count in the metadata and the rows.
    let snapshot = db.snapshot()?;
    let db = snapshot.db();
    let count = index::holdings::count_held(db, &authority)?;
    let metadata = [
        (key, value),
        ("created_at", row.created_at.clone()),
        ("as_of", row.created_at.clone()),
        ("records", count.to_string()),
        ("sequence", row.sequence.to_string()),
    ];
    let mut table =
        TableWriter::begin(out, &formats::HOLDINGS, row.format, &metadata).map_err(&io)?;
    index::holdings::for_each_holding(db, &authority, |h| {
        let end = h.end_date.as_deref().and_then(clock::parse_date);
        let status = if end.is_some_and(|e| e <= today) {
            "ENDED"
        } else {
            "ACTIVE"
        };
        let purge_after = end
            .map(|e| clock::add_days(e, retention).to_string())
            .unwrap_or_default();
        let accesses = h.accesses.to_string();
        table
            .row(&[
                &h.local_id,
                &h.nhs_number,
                &h.plan_type,
                h.date_of_birth.as_deref().unwrap_or(""),
                &h.start_date,
                h.end_date.as_deref().unwrap_or(""),
                status,
                if end.is_some() {
                    h.ended_reason.as_deref().unwrap_or("")
                } else {
                    ""
                },
                &purge_after,
                h.nhs_status.as_deref().unwrap_or("ACTIVE"),
                &accesses,
                h.last_accessed_at.as_deref().unwrap_or(""),
            ])
            .map_err(&io)
    })?;
    table.finish().map_err(io)
}

fn access(
    db: Db<'_>,
    row: &OutboundRow,
    (key, value): PartnerKey,
    out: &mut dyn Write,
) -> Result<(), EmitError> {
    let io = io_error(row);
    let count = index::flows::count_rows(db, "notifications", row.id)?;
    let metadata = simple_metadata(key, value, row, count);
    let mut table =
        TableWriter::begin(out, &formats::ACCESS, row.format, &metadata).map_err(&io)?;
    index::flows::for_each_notification(db, row.id, |n| {
        table
            .row(&[
                &n.id.to_string(),
                &n.local_id,
                &n.nhs_number,
                &n.plan_type,
                &n.plan_status,
                n.plan_end_date.as_deref().unwrap_or(""),
                &n.accessed_at,
                &n.site_ods_code,
                &n.site_name,
                &n.setting,
                &n.user_name,
                &n.user_role,
            ])
            .map_err(&io)
    })?;
    table.finish().map_err(io)
}

fn inactive(
    db: Db<'_>,
    row: &OutboundRow,
    (key, value): PartnerKey,
    out: &mut dyn Write,
) -> Result<(), EmitError> {
    let io = io_error(row);
    let count = index::flows::count_rows(db, "inactive_notices", row.id)?;
    let metadata = simple_metadata(key, value, row, count);
    let mut table =
        TableWriter::begin(out, &formats::INACTIVE, row.format, &metadata).map_err(&io)?;
    index::flows::for_each_inactive(db, row.id, |n| {
        table
            .row(&[
                &n.local_id,
                &n.nhs_number,
                &n.plan_type,
                &n.status,
                n.replacement.as_deref().unwrap_or(""),
                &n.effective_date,
            ])
            .map_err(&io)
    })?;
    table.finish().map_err(io)
}

/// Metadata of the files that carry only the partner key and the common keys.
fn simple_metadata<'k>(
    key: &'k str,
    value: String,
    row: &OutboundRow,
    count: u64,
) -> Vec<(&'k str, String)> {
    vec![
        (key, value),
        ("created_at", row.created_at.clone()),
        ("records", count.to_string()),
        ("sequence", row.sequence.to_string()),
    ]
}

pub(super) fn partner_key(config: &Config, row: &OutboundRow) -> PartnerKey {
    match config.partner(&row.mailbox) {
        Some(p) => {
            let (k, v) = p.key();
            (k, v.to_string())
        }
        None => ("mailbox", row.mailbox.clone()),
    }
}

/// The metadata of a receipt (§4.1), in the order every receipt writes it.
pub(crate) struct ReceiptHead<'a> {
    /// The partner key and value (`authority=LA204`, `site=R0A`, `mailbox=...`).
    pub partner: (&'a str, &'a str),
    pub source: &'a str,
    pub sha256: &'a str,
    pub status: &'a str,
    pub counts: Counts,
    pub sequence: u64,
    pub created_at: &'a str,
}

impl ReceiptHead<'_> {
    pub(crate) fn metadata(&self) -> Vec<(&str, String)> {
        let c = self.counts;
        vec![
            (self.partner.0, self.partner.1.to_string()),
            ("source", self.source.to_string()),
            ("sha256", self.sha256.to_string()),
            ("status", self.status.to_string()),
            ("records", c.records.to_string()),
            ("applied", c.applied.to_string()),
            ("rejected", c.rejected.to_string()),
            ("warnings", c.warnings.to_string()),
            ("sequence", self.sequence.to_string()),
            ("created_at", self.created_at.to_string()),
        ]
    }
}

/// Writes one problem as a receipt row.
pub(crate) fn problem_row(table: &mut TableWriter<'_>, p: &Problem) -> io::Result<()> {
    let line = p.line.map(|l| l.to_string()).unwrap_or_default();
    table.row(&[
        &line,
        &p.reference,
        p.severity.as_str(),
        p.code.as_str(),
        &p.field,
        &p.message,
    ])
}

/// Reserves an outbound file for a partner (inside the caller's transaction).
pub(crate) fn reserve(
    tx: &Tx<'_>,
    config: &Config,
    mailbox: &str,
    kind: Kind,
    now: &clock::Clock,
    receipt_id: Option<i64>,
    copy_to: Option<Folder>,
) -> Result<OutboundRow, IndexError> {
    let partner = config.partner(mailbox);
    let sequence = index::outbound::next_sequence(tx, mailbox, kind)?;
    let mut row = OutboundRow {
        id: 0,
        mailbox: mailbox.to_string(),
        kind,
        sequence,
        created_at: now.rfc3339(),
        stem: super::stem(kind.as_str(), mailbox, &now.file_stamp(), sequence),
        format: partner.map(|p| p.format).unwrap_or_default(),
        framing: partner.map(|p| p.framing).unwrap_or_default(),
        receipt_id,
        copy_to,
        params: None,
        state: OutboundState::Pending,
    };
    row.id = index::outbound::insert_outbound(tx, &row)?;
    Ok(row)
}
