//! Operator reports (SPEC §5.3, §7 `report`): the national summary (text, CSV,
//! HTML), the reconciliation of a FULL extract file against what is held, and the
//! lines rejected for missing or invalid NHS numbers.
//!
//! Owns nothing; reads the index (read-only) and, for `reconcile`, one file. Must
//! never write to the index or the mailboxes, and never print an NHS number (the
//! rejections list shows what the sender sent only in the message it was given).

pub(crate) mod html;
pub(crate) mod reconcile;
pub(crate) mod rejections;

use std::io::{self, Write};

use chrono::NaiveDate;
use serde::Serialize;

use crate::clock::{self, Clock};
use crate::config::{Config, Role};
use crate::index::{self, Db, IndexError};
use crate::validate::PlanType;

/// One authority's line of the summary (or the national totals).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub(crate) struct AuthorityLine {
    pub authority: String,
    pub name: String,
    pub open_cpp: u64,
    pub open_lac: u64,
    pub open_ucpp: u64,
    /// Ended, still held within retention.
    pub ended: u64,
    pub last_full: Option<String>,
    pub last_delta: Option<String>,
    /// No extract applied within `hub.stale_after`.
    pub stale: bool,
    pub files_rejected_7d: u64,
    pub files_quarantined_7d: u64,
    /// Lines rejected in the last 7 days, by code (code order).
    pub lines_rejected_7d: Vec<(String, u64)>,
    pub notifications_7d: u64,
}

impl AuthorityLine {
    pub(crate) fn lines_rejected_total(&self) -> u64 {
        self.lines_rejected_7d.iter().map(|(_, n)| n).sum()
    }

    fn add(&mut self, o: &AuthorityLine) {
        self.open_cpp += o.open_cpp;
        self.open_lac += o.open_lac;
        self.open_ucpp += o.open_ucpp;
        self.ended += o.ended;
        self.files_rejected_7d += o.files_rejected_7d;
        self.files_quarantined_7d += o.files_quarantined_7d;
        self.notifications_7d += o.notifications_7d;
        for (code, n) in &o.lines_rejected_7d {
            match self.lines_rejected_7d.iter_mut().find(|(c, _)| c == code) {
                Some((_, m)) => *m += n,
                None => self.lines_rejected_7d.push((code.clone(), *n)),
            }
        }
        self.lines_rejected_7d.sort();
    }
}

/// The national summary.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Summary {
    pub as_of: String,
    pub authorities: Vec<AuthorityLine>,
    pub national: AuthorityLine,
    /// Per day of the last 30 (oldest first): files and records received per authority.
    pub daily: Vec<DayActivity>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct DayActivity {
    pub day: String,
    /// (authority, files, records)
    pub by_authority: Vec<(String, u64, u64)>,
}

fn day_start(day: NaiveDate) -> String {
    clock::rfc3339(clock::london_instant(day, chrono::NaiveTime::MIN))
}

fn authority_line(
    db: Db<'_>,
    config: &Config,
    code: &str,
    mailbox: &str,
    name: &str,
    now: &Clock,
) -> Result<AuthorityLine, IndexError> {
    let today = now.today().to_string();
    let since = day_start(clock::add_days(now.today(), -6));
    let since_day = clock::add_days(now.today(), -6).to_string();
    let mut line = AuthorityLine {
        authority: code.to_string(),
        name: name.to_string(),
        ..AuthorityLine::default()
    };
    for (plan, open, ended) in index::views::records_by_plan(db, code, &today)? {
        line.ended += ended;
        match PlanType::parse(&plan) {
            Some(PlanType::Cpp) => line.open_cpp = open,
            Some(PlanType::Lac) => line.open_lac = open,
            _ => line.open_ucpp = open,
        }
    }
    let state = index::holdings::authority_state(db, code)?;
    let stale_after =
        chrono::Duration::from_std(config.hub.stale_after).unwrap_or(chrono::Duration::MAX);
    let last = [state.last_full_at.clone(), state.last_delta_at.clone()]
        .into_iter()
        .flatten()
        .max();
    line.stale = last
        .as_deref()
        .and_then(clock::parse_rfc3339)
        .is_none_or(|t| now.now() - t > stale_after);
    line.last_full = state.last_full_at;
    line.last_delta = state.last_delta_at;
    let (rejected, quarantined) = index::views::files_rejected_quarantined(db, mailbox, &since)?;
    line.files_rejected_7d = rejected;
    line.files_quarantined_7d = quarantined;
    line.lines_rejected_7d = index::views::lines_rejected_by_code(db, mailbox, &since)?;
    line.notifications_7d = index::views::notifications_since(db, code, &since_day)?;
    Ok(line)
}

/// Gathers the summary as of `now`.
pub(crate) fn summary(db: Db<'_>, config: &Config, now: &Clock) -> Result<Summary, IndexError> {
    let mut authorities = Vec::new();
    let mut national = AuthorityLine {
        authority: "ALL".into(),
        name: "National total".into(),
        ..AuthorityLine::default()
    };
    for p in config.authorities() {
        let Role::Authority { code, name, .. } = &p.role else {
            continue;
        };
        let line = authority_line(db, config, code, &p.mailbox, name, now)?;
        national.add(&line);
        authorities.push(line);
    }
    national.stale = false;
    let mut daily = Vec::new();
    for back in (0..30).rev() {
        let day = clock::add_days(now.today(), -back);
        let (from, to) = (day_start(day), day_start(clock::add_days(day, 1)));
        let by_authority = index::views::extracts_between(db, &from, &to)?;
        daily.push(DayActivity {
            day: day.to_string(),
            by_authority,
        });
    }
    Ok(Summary {
        as_of: now.rfc3339(),
        authorities,
        national,
        daily,
    })
}

/// A short text for the rejected-lines column: `NHS_CHECK_DIGIT 3, DOB_MISSING 1`.
fn codes_text(codes: &[(String, u64)]) -> String {
    if codes.is_empty() {
        return "-".into();
    }
    codes
        .iter()
        .map(|(c, n)| format!("{c} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn time_text(t: &Option<String>) -> String {
    t.as_deref()
        .map(|s| s.replace('T', " ").trim_end_matches('Z').to_string())
        .unwrap_or_else(|| "never".into())
}

/// The summary as an aligned text table.
pub(crate) fn write_summary_text(s: &Summary, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "National summary as of {}  (7-day columns: the last 7 days, Europe/London)",
        s.as_of
    )?;
    writeln!(out)?;
    let header = [
        "AUTHORITY",
        "CPP",
        "LAC",
        "UCPP",
        "ENDED",
        "LAST FULL",
        "LAST DELTA",
        "STALE",
        "REJ FILES",
        "QUAR FILES",
        "NOTIFIED",
        "REJECTED LINES BY CODE",
    ];
    let mut rows: Vec<[String; 12]> = Vec::new();
    for a in s.authorities.iter().chain(std::iter::once(&s.national)) {
        rows.push([
            a.authority.clone(),
            a.open_cpp.to_string(),
            a.open_lac.to_string(),
            a.open_ucpp.to_string(),
            a.ended.to_string(),
            if a.authority == "ALL" {
                String::new()
            } else {
                time_text(&a.last_full)
            },
            if a.authority == "ALL" {
                String::new()
            } else {
                time_text(&a.last_delta)
            },
            if a.authority == "ALL" {
                String::new()
            } else if a.stale {
                "STALE".into()
            } else {
                "ok".into()
            },
            a.files_rejected_7d.to_string(),
            a.files_quarantined_7d.to_string(),
            a.notifications_7d.to_string(),
            codes_text(&a.lines_rejected_7d),
        ]);
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    let numeric = [
        false, true, true, true, true, false, false, false, true, true, true, false,
    ];
    let fmt = |cells: &[String], out: &mut dyn Write| -> io::Result<()> {
        let mut line = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(c.chars().count());
            if i > 0 {
                line.push_str("  ");
            }
            if numeric[i] {
                line.push_str(&" ".repeat(pad));
                line.push_str(c);
            } else {
                line.push_str(c);
                if i + 1 < cells.len() {
                    line.push_str(&" ".repeat(pad));
                }
            }
        }
        writeln!(out, "{}", line.trim_end())
    };
    fmt(&header.map(String::from), out)?;
    let total_width: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
    for (i, r) in rows.iter().enumerate() {
        if i + 1 == rows.len() {
            writeln!(out, "{}", "-".repeat(total_width.min(160)))?;
        }
        fmt(r, out)?;
    }
    Ok(())
}

/// The summary as CSV (one row per authority, then `ALL`).
pub(crate) fn write_summary_csv(s: &Summary, out: &mut dyn Write) -> io::Result<()> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(out);
    w.write_record([
        "authority",
        "name",
        "open_cpp",
        "open_lac",
        "open_ucpp",
        "ended",
        "last_full",
        "last_delta",
        "stale",
        "files_rejected_7d",
        "files_quarantined_7d",
        "lines_rejected_7d",
        "lines_rejected_by_code_7d",
        "notifications_7d",
    ])?;
    for a in s.authorities.iter().chain(std::iter::once(&s.national)) {
        let codes = a
            .lines_rejected_7d
            .iter()
            .map(|(c, n)| format!("{c}:{n}"))
            .collect::<Vec<_>>()
            .join(";");
        w.write_record([
            a.authority.clone(),
            a.name.clone(),
            a.open_cpp.to_string(),
            a.open_lac.to_string(),
            a.open_ucpp.to_string(),
            a.ended.to_string(),
            a.last_full.clone().unwrap_or_default(),
            a.last_delta.clone().unwrap_or_default(),
            if a.authority == "ALL" {
                String::new()
            } else {
                (if a.stale { "Y" } else { "N" }).into()
            },
            a.files_rejected_7d.to_string(),
            a.files_quarantined_7d.to_string(),
            a.lines_rejected_total().to_string(),
            codes,
            a.notifications_7d.to_string(),
        ])?;
    }
    w.flush()
}
