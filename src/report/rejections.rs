//! `report rejections`: the lines rejected for a missing or invalid NHS number (or
//! any codes asked for), with the file, line, `local_id` and code — what a data
//! officer needs to fix case files. Problem details are kept 90 days
//! ([`REJECTION_DAYS`]); the messages never hold an NHS number beyond the
//! replacement named by `NHS_INACTIVE`.

use crate::model::Code;
use std::io::{self, Write};

use rusqlite::{params_from_iter, Connection};
use serde::Serialize;

use crate::index::IndexError;

/// How long rejected-line details are kept.
pub const REJECTION_DAYS: i64 = 90;

/// The codes listed by default.
pub const NHS_CODES: &[Code] = &[
    Code::NhsMissing,
    Code::NhsFormat,
    Code::NhsCheckDigit,
    Code::NhsInactive,
];

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Rejection {
    pub received_at: String,
    pub authority: String,
    pub file: String,
    pub line: u64,
    pub local_id: String,
    pub code: String,
    pub field: String,
    pub message: String,
}

/// Rejected lines of extracts, newest file first; `codes` empty means every code.
pub fn rejections(
    conn: &Connection,
    authority: Option<&str>,
    since: Option<&str>,
    codes: &[String],
) -> Result<Vec<Rejection>, IndexError> {
    let mut sql = String::from(
        "SELECT m.received_at, m.authority, m.name, p.line, p.ref, p.code, p.field, p.message
         FROM problems p JOIN receipts r ON r.id = p.receipt_id JOIN messages m ON m.id = r.message_id
         WHERE m.kind = 'extract' AND p.line IS NOT NULL AND p.severity = 'ERROR'
           AND r.id = (SELECT MAX(id) FROM receipts WHERE message_id = m.id)",
    );
    let mut args: Vec<String> = Vec::new();
    if let Some(a) = authority {
        args.push(a.to_string());
        sql.push_str(&format!(" AND m.authority = ?{}", args.len()));
    }
    if let Some(s) = since {
        args.push(s.to_string());
        sql.push_str(&format!(" AND m.received_at >= ?{}", args.len()));
    }
    if !codes.is_empty() {
        let marks: Vec<String> = codes
            .iter()
            .map(|c| {
                args.push(c.clone());
                format!("?{}", args.len())
            })
            .collect();
        sql.push_str(&format!(" AND p.code IN ({})", marks.join(", ")));
    }
    sql.push_str(" ORDER BY m.received_at DESC, m.id DESC, p.line, p.seq");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt
        .query_map(params_from_iter(args.iter()), |r| {
            Ok(Rejection {
                received_at: r.get(0)?,
                authority: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                file: String::from_utf8_lossy(&r.get::<_, Vec<u8>>(2)?).into_owned(),
                line: r.get(3)?,
                local_id: r.get(4)?,
                code: r.get(5)?,
                field: r.get(6)?,
                message: r.get(7)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub fn write_text(rows: &[Rejection], out: &mut dyn Write) -> io::Result<()> {
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

pub fn write_csv(rows: &[Rejection], out: &mut dyn Write) -> io::Result<()> {
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
