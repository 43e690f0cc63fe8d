//! Renders reserved outbound files from what the index holds, and writes them to
//! the partner's `out/` folder (MESH: `.dat` then `.ctl`).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::{Outgoing, Part, Staging, TableWriter, Undelivered};
use crate::clock;
use crate::config::{Config, Format, Framing, Role};
use crate::formats::{self, Kind};
use crate::index::{self, ledger::Counts, outbound::OutboundRow, Db, IndexError, Tx};
use crate::model::{Change, Folder, OutboundState};
use crate::validate::{ExtractType, Problem};

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
fn stage_ctl(
    config: &Config,
    staging: &Staging,
    row: &OutboundRow,
) -> Result<Option<Part>, EmitError> {
    if row.framing != Framing::Mesh {
        return Ok(None);
    }
    let workflow = match (row.kind, config.partner(&row.mailbox)) {
        (Kind::Receipt, Some(p)) => p.receipt_workflow(),
        (Kind::Receipt, None) => "CPISHUB_EXTRACT_ACK",
        (Kind::Access, _) => "CPISHUB_ACCESS",
        (Kind::Inactive, _) => "CPISHUB_INACTIVE",
        (Kind::Holdings, _) => "CPISHUB_HOLDINGS",
        (Kind::Alerts, _) => "CPISHUB_ALERTS",
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
    let (key, value) = partner_key(config, row);
    let io = |e: io::Error| EmitError::Io {
        path: PathBuf::from(&row.stem),
        source: e,
    };
    match row.kind {
        Kind::Receipt => {
            let receipt_id = row
                .receipt_id
                .ok_or_else(|| EmitError::Missing(row.stem.clone()))?;
            let receipt = index::ledger::receipt(db, receipt_id)?
                .ok_or_else(|| EmitError::Missing(row.stem.clone()))?;
            let message = index::ledger::message(db, receipt.message_id)?
                .ok_or_else(|| EmitError::Missing(row.stem.clone()))?;
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
                TableWriter::begin(out, &formats::RECEIPT, row.format, &head.metadata())
                    .map_err(io)?;
            index::ledger::for_each_problem(db, receipt_id, |p| {
                problem_row(&mut table, &p).map_err(io)
            })?;
            table.finish().map_err(io)
        }
        Kind::Holdings => {
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
                TableWriter::begin(out, &formats::HOLDINGS, row.format, &metadata).map_err(io)?;
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
                    .map_err(io)
            })?;
            table.finish().map_err(io)
        }
        Kind::Access => {
            let count = index::flows::count_rows(db, "notifications", row.id)?;
            let metadata = simple_metadata(key, value, row, count);
            let mut table =
                TableWriter::begin(out, &formats::ACCESS, row.format, &metadata).map_err(io)?;
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
                    .map_err(io)
            })?;
            table.finish().map_err(io)
        }
        Kind::Inactive => {
            let count = index::flows::count_rows(db, "inactive_notices", row.id)?;
            let metadata = simple_metadata(key, value, row, count);
            let mut table =
                TableWriter::begin(out, &formats::INACTIVE, row.format, &metadata).map_err(io)?;
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
                    .map_err(io)
            })?;
            table.finish().map_err(io)
        }
        Kind::Alerts => {
            let params = AlertParams::of(row)?;
            let snapshot = db.snapshot()?;
            let count = params.count(snapshot.db())?;
            TableWriter::head(
                out,
                &formats::ALERTS,
                row.format,
                &params.metadata(key, &value, row, count),
            )
            .map_err(io)?;
            write_alert_rows(config, snapshot.db(), &params, row.format, out)
        }
    }
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

/// What an ALERTS file covers, stored with its reservation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct AlertParams {
    /// `FULL` or `DELTA`.
    #[serde(rename = "type")]
    pub kind: ExtractType,
    /// DELTA: changes after this change_seq...
    pub from: i64,
    /// ...up to and including this one (FULL: the state at this point).
    pub upto: i64,
    /// DELTA: the created_at of the previous file delivered to the site.
    pub since: Option<String>,
}

impl AlertParams {
    fn of(row: &OutboundRow) -> Result<AlertParams, EmitError> {
        row.params
            .as_deref()
            .and_then(|p| serde_json::from_str(p).ok())
            .ok_or_else(|| EmitError::Missing(format!("{} (its alert parameters)", row.stem)))
    }

    fn full(&self) -> bool {
        self.kind == ExtractType::Full
    }

    fn count(&self, db: Db<'_>) -> Result<u64, IndexError> {
        if self.full() {
            index::flows::count_alerts_full(db)
        } else {
            index::flows::count_alerts_delta(db, self.from, self.upto)
        }
    }

    fn metadata<'k>(
        &self,
        key: &'k str,
        value: &str,
        row: &OutboundRow,
        count: u64,
    ) -> Vec<(&'k str, String)> {
        let mut m = vec![
            (key, value.to_string()),
            ("type", self.kind.as_str().to_string()),
            ("created_at", row.created_at.clone()),
        ];
        if let Some(since) = &self.since {
            m.push(("since", since.clone()));
        }
        m.push(("records", count.to_string()));
        m.push(("sequence", row.sequence.to_string()));
        m
    }
}

/// The rows of an alert file (and, for XML, the closing tag): the part that is the
/// same for every site receiving the same FULL.
fn write_alert_rows(
    config: &Config,
    db: Db<'_>,
    params: &AlertParams,
    syntax: Format,
    out: &mut dyn Write,
) -> Result<(), EmitError> {
    let io = |e: io::Error| EmitError::Io {
        path: PathBuf::from("alerts"),
        source: e,
    };
    let mut table = TableWriter::body(out, &formats::ALERTS, syntax);
    let mut write = |r: index::flows::AlertRow| -> io::Result<()> {
        if r.change == Change::Remove {
            return table.row(&[
                "REMOVE",
                &r.alert_id,
                &r.nhs_number,
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
            ]);
        }
        let (name, office, out_of_hours, email) =
            match config.authority(&r.authority).map(|p| &p.role) {
                Some(Role::Authority {
                    name,
                    office_hours_phone,
                    out_of_hours_phone,
                    email,
                    ..
                }) => (
                    name.as_str(),
                    office_hours_phone.as_str(),
                    out_of_hours_phone.as_str(),
                    email.as_str(),
                ),
                _ => ("", "", "", ""),
            };
        let subject = if crate::validate::PlanType::parse(&r.plan_type)
            == Some(crate::validate::PlanType::Ucpp)
        {
            "MOTHER"
        } else {
            "CHILD"
        };
        table.row(&[
            r.change.as_str(),
            &r.alert_id,
            &r.nhs_number,
            subject,
            &r.plan_type,
            r.date_of_birth.as_deref().unwrap_or(""),
            &r.start_date,
            r.end_date.as_deref().unwrap_or(""),
            &r.authority,
            name,
            r.team.as_deref().unwrap_or(""),
            r.office_hours_phone.as_deref().unwrap_or(office),
            r.out_of_hours_phone.as_deref().unwrap_or(out_of_hours),
            r.email.as_deref().unwrap_or(email),
        ])
    };
    if params.full() {
        index::flows::for_each_alert_full(db, |r| write(r).map_err(io))?;
    } else {
        index::flows::for_each_alert_delta(db, params.from, params.upto, |r| write(r).map_err(io))?;
    }
    table.finish().map_err(io)
}

/// Writes many reserved FULL alert files at once: the rows are rendered once per
/// syntax into a staging file (0600, removed at the end, and by the next pass after
/// a crash), then each site's file is its head plus that body, copied in the kernel.
/// The bytes are those [`render`] would produce for each file alone.
pub(crate) fn write_full_alerts(
    config: &Config,
    db: Db<'_>,
    staging: &Staging,
    rows: &[OutboundRow],
) -> Result<Vec<Undelivered>, EmitError> {
    let io_at = |path: &Path| {
        let path = path.to_path_buf();
        move |source| EmitError::Io { path, source }
    };
    let staging_path = config.hub.root.join(super::STAGING);
    let snapshot = db.snapshot()?;
    let count = index::flows::count_alerts_full(snapshot.db())?;
    let mut batch = Vec::new();
    for syntax in [Format::Csv, Format::Xml] {
        let wanted: Vec<&OutboundRow> = rows.iter().filter(|r| r.format == syntax).collect();
        let Some(first) = wanted.first() else {
            continue;
        };
        let params = AlertParams::of(first)?;
        let (body_name, file) = staging
            .scratch("alerts-full-body", 0o600)
            .map_err(io_at(&staging_path))?;
        let result = (|| -> Result<(), EmitError> {
            {
                let mut w = io::BufWriter::with_capacity(256 * 1024, file);
                write_alert_rows(config, snapshot.db(), &params, syntax, &mut w)?;
                w.flush().map_err(io_at(&staging_path))?;
            }
            crate::fault::point("alerts_body_written");
            for row in wanted {
                let params = AlertParams::of(row)?;
                let (key, value) = partner_key(config, row);
                let name = data_name(row);
                // The head is small; the body is copied file to file (in the kernel).
                let data = staging
                    .stage(&row.mailbox, "out", &name, OUT_MODE, |file| {
                        let mut head = Vec::new();
                        TableWriter::head(
                            &mut head,
                            &formats::ALERTS,
                            syntax,
                            &params.metadata(key, &value, row, count),
                        )?;
                        file.write_all(&head)?;
                        io::copy(&mut staging.open_staged(&body_name)?, file).map(|_| ())
                    })
                    .map_err(io_at(&config.folder(&row.mailbox, "out").join(&name)))?;
                let mut parts = vec![data];
                parts.extend(stage_ctl(config, staging, row)?);
                batch.push(Outgoing { id: row.id, parts });
            }
            Ok(())
        })();
        let _ = staging.remove(&body_name);
        result?;
    }
    // One flush for all the sites' files, then every rename, then one flush.
    super::publish(staging, batch).map_err(io_at(&config.hub.root))
}

fn partner_key(config: &Config, row: &OutboundRow) -> (&'static str, String) {
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
