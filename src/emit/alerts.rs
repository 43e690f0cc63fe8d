//! ALERTS files (SPEC §4.3): what a FULL or a DELTA covers, and its rows, read
//! from one snapshot so that the count in the metadata is the rows' count.
//!
//! Owns nothing. Must never send a site a record it may not see: only records of
//! the kinds the SPEC lists, with the authority's contact details.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::render::{data_name, io_error, partner_key, stage_ctl, EmitError, PartnerKey, OUT_MODE};
use super::{Outgoing, Staging, TableWriter, Undelivered};
use crate::config::{Config, Format, Role};
use crate::formats;
use crate::index::{self, outbound::OutboundRow, Db, IndexError};
use crate::model::Change;
use crate::validate::ExtractType;

/// Renders a reserved ALERTS file: the metadata, then the rows.
pub(super) fn render(
    config: &Config,
    db: Db<'_>,
    row: &OutboundRow,
    (key, value): PartnerKey,
    out: &mut dyn Write,
) -> Result<(), EmitError> {
    let params = AlertParams::of(row)?;
    let snapshot = db.snapshot()?;
    let count = params.count(snapshot.db())?;
    TableWriter::head(
        out,
        &formats::ALERTS,
        row.format,
        &params.metadata(key, &value, row, count),
    )
    .map_err(io_error(row))?;
    write_alert_rows(config, snapshot.db(), &params, row.format, out)
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
            index::alerts::count_alerts_full(db)
        } else {
            index::alerts::count_alerts_delta(db, self.from, self.upto)
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
    let mut write = |r: index::alerts::AlertRow| -> io::Result<()> {
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
        index::alerts::for_each_alert_full(db, |r| write(r).map_err(io))?;
    } else {
        index::alerts::for_each_alert_delta(db, params.from, params.upto, |r| {
            write(r).map_err(io)
        })?;
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
    let count = index::alerts::count_alerts_full(snapshot.db())?;
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
