//! `report rejections`: the lines rejected for a missing or invalid NHS number (or
//! any codes asked for), with the file, line, `local_id` and code — what a data
//! officer needs to fix case files. Problem details are kept 90 days
//! ([`crate::index::retention::REJECTION_DAYS`]); the messages never hold an NHS number beyond the
//! replacement named by `NHS_INACTIVE`.

use std::io::{self, Write};

use crate::model::Code;

/// The codes listed by default.
pub(crate) const NHS_CODES: &[Code] = &[
    Code::NhsMissing,
    Code::NhsFormat,
    Code::NhsCheckDigit,
    Code::NhsInactive,
];

pub(crate) use crate::index::views::Rejection;

pub(crate) fn write_text(rows: &[Rejection], out: &mut dyn Write) -> io::Result<()> {
    if rows.is_empty() {
        return writeln!(out, "no rejected lines");
    }
    let w_file = rows
        .iter()
        .map(|r| r.file.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    let w_local = rows
        .iter()
        .map(|r| r.local_id.chars().count())
        .max()
        .unwrap_or(8)
        .max(8);
    let w_code = rows.iter().map(|r| r.code.len()).max().unwrap_or(4).max(4);
    writeln!(
        out,
        "{:<20}  {:<9}  {:<w_file$}  {:>6}  {:<w_local$}  {:<w_code$}  MESSAGE",
        "RECEIVED", "AUTHORITY", "FILE", "LINE", "LOCAL_ID", "CODE"
    )?;
    for r in rows {
        writeln!(
            out,
            "{:<20}  {:<9}  {:<w_file$}  {:>6}  {:<w_local$}  {:<w_code$}  {}",
            r.received_at, r.authority, r.file, r.line, r.local_id, r.code, r.message
        )?;
    }
    writeln!(out, "{} rejected lines", rows.len())
}

pub(crate) fn write_csv(rows: &[Rejection], out: &mut dyn Write) -> io::Result<()> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(out);
    w.write_record([
        "received_at",
        "authority",
        "file",
        "line",
        "local_id",
        "code",
        "field",
        "message",
    ])?;
    for r in rows {
        w.write_record([
            &r.received_at,
            &r.authority,
            &r.file,
            &r.line.to_string(),
            &r.local_id,
            &r.code,
            &r.field,
            &r.message,
        ])?;
    }
    w.flush()
}
