//! Validation of authority extracts (SPEC §2.2, §2.3, §4.1 codes): pure functions
//! from what the parser read to typed records and receipt problems.
//!
//! Owns no state and does no I/O. Checks that need the index (a DELETE of a record
//! not held, an inactive NHS number) are made by the pipeline with the index's
//! answers; their problem texts are built here so every message lives in one place.
//! Must never put an NHS number in a problem's text (except the replacement named by
//! `NHS_INACTIVE`, §4.1).

mod feeds;
mod record;

pub(crate) use feeds::{
    feed_metadata, required_columns, AttendanceRules, StatusRules, ATTENDANCE_REQUIRED,
    STATUS_REQUIRED,
};
pub(crate) use record::{Action, Checked, ExtractRecord, ExtractRules};

use crate::model::{Code, Severity};
use chrono::{DateTime, NaiveDate, Utc};

use crate::clock;
use crate::formats::extract_col as col;
use crate::parse::{FileProblem, Metadata};

/// One row of a receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    /// `None` for a file-level problem.
    pub line: Option<u64>,
    /// local_id or event_id, never an NHS number.
    pub reference: String,
    pub severity: Severity,
    pub code: Code,
    pub field: String,
    pub message: String,
}

impl Problem {
    pub(crate) fn file(
        code: Code,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Problem {
        Problem {
            line: None,
            reference: String::new(),
            severity: code.file_severity(),
            code,
            field: field.into(),
            message: message.into(),
        }
    }

    pub(crate) fn from_file(p: FileProblem) -> Problem {
        Problem::file(p.code, p.field, p.message)
    }

    fn record(
        line: u64,
        reference: &str,
        code: Code,
        field: &str,
        message: impl Into<String>,
    ) -> Problem {
        Problem {
            line: Some(line),
            reference: reference.to_string(),
            severity: Severity::Error,
            code,
            field: field.to_string(),
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub(crate) enum ExtractType {
    Full,
    Delta,
}

impl ExtractType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ExtractType::Full => "FULL",
            ExtractType::Delta => "DELTA",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum PlanType {
    Cpp,
    Lac,
    Ucpp,
}

impl PlanType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            PlanType::Cpp => "CPP",
            PlanType::Lac => "LAC",
            PlanType::Ucpp => "UCPP",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<PlanType> {
        [PlanType::Cpp, PlanType::Lac, PlanType::Ucpp]
            .into_iter()
            .find(|p| text.eq_ignore_ascii_case(p.as_str()))
    }

    /// CPP and LAC concern a child, who turns 18; UCPP is held on the mother.
    pub(crate) fn is_child(self) -> bool {
        !matches!(self, PlanType::Ucpp)
    }
}

/// A 128-bit hash of a record's key (local_id, plan_type): how a pass remembers
/// the keys of a file in 16 bytes each (duplicates, what a FULL leaves out).
pub(crate) fn key_hash(local_id: &str, plan: PlanType) -> u128 {
    key_hash_bytes(local_id.as_bytes(), plan)
}

/// [`key_hash`] of a local_id as stored (bytes).
pub(crate) fn key_hash_bytes(local_id: &[u8], plan: PlanType) -> u128 {
    // local_id is at most 64 characters (256 bytes): hashed from the stack.
    let mut stack = [0u8; 258];
    let mut heap = Vec::new();
    let bytes: &mut [u8] = if local_id.len() + 2 <= stack.len() {
        &mut stack[..local_id.len() + 2]
    } else {
        heap.resize(local_id.len() + 2, 0);
        &mut heap
    };
    bytes[..local_id.len()].copy_from_slice(local_id);
    bytes[local_id.len()] = 0xFF;
    bytes[local_id.len() + 1] = plan as u8;
    xxhash_rust::xxh3::xxh3_128(bytes)
}

/// The metadata of an extract, as far as it could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExtractHeader {
    pub extract_type: Option<ExtractType>,
    pub extracted_at: Option<DateTime<Utc>>,
    pub sequence: Option<u64>,
    pub records: Option<u64>,
}

impl ExtractHeader {
    /// The reference date of every date rule: `extracted_at` in Europe/London, or
    /// (when unreadable) today.
    pub(crate) fn reference_date(&self, today: NaiveDate) -> NaiveDate {
        self.extracted_at.map(clock::london_date).unwrap_or(today)
    }
}

/// How far ahead of the hub's clock an `extracted_at` may be (clock skew).
pub(crate) const FUTURE_TOLERANCE_SECS: i64 = 3600;

/// Checks an extract's metadata (§2.2). `owner` is the mailbox owner's authority code.
pub(crate) fn extract_metadata(
    meta: &Metadata,
    owner: &str,
    now: DateTime<Utc>,
) -> (ExtractHeader, Vec<Problem>) {
    let mut problems = Vec::new();
    let bad = |problems: &mut Vec<Problem>, field: &str, message: String| {
        problems.push(Problem::file(Code::Metadata, field, message))
    };

    match meta.get("authority") {
        None => bad(&mut problems, "authority", "metadata authority= is missing".into()),
        Some(a) if a != owner => problems.push(Problem::file(
            Code::PartnerMismatch,
            "authority",
            format!("the file says authority={a}, but this mailbox belongs to {owner}: an authority may only send its own extract"),
        )),
        Some(_) => {}
    }
    let extract_type = match meta.get("type") {
        Some(t) if t.eq_ignore_ascii_case("FULL") => Some(ExtractType::Full),
        Some(t) if t.eq_ignore_ascii_case("DELTA") => Some(ExtractType::Delta),
        Some(t) => {
            bad(
                &mut problems,
                "type",
                format!("type={t} is not FULL or DELTA"),
            );
            None
        }
        None => {
            bad(
                &mut problems,
                "type",
                "metadata type= is missing (FULL or DELTA)".into(),
            );
            None
        }
    };
    let extracted_at = match meta.get("extracted_at") {
        None => {
            bad(
                &mut problems,
                "extracted_at",
                "metadata extracted_at= is missing".into(),
            );
            None
        }
        Some(t) => match clock::parse_rfc3339(t) {
            None => {
                bad(&mut problems, "extracted_at", format!("extracted_at={t} is not an RFC 3339 time with an offset, e.g. 2026-11-21T01:30:00Z"));
                None
            }
            Some(at) if (at - now).num_seconds() > FUTURE_TOLERANCE_SECS => {
                bad(&mut problems, "extracted_at", format!("extracted_at={t} is in the future (the hub's time is {}); check the sending system's clock", clock::rfc3339(now)));
                None
            }
            Some(at) => Some(at),
        },
    };
    let number = |key: &str, problems: &mut Vec<Problem>| -> Option<u64> {
        let text = meta.get(key)?;
        match text.parse::<u64>() {
            Ok(n) if text.bytes().all(|b| b.is_ascii_digit()) => Some(n),
            _ => {
                problems.push(Problem::file(
                    Code::Metadata,
                    key,
                    format!("{key}={text} is not a whole number"),
                ));
                None
            }
        }
    };
    let sequence = number("sequence", &mut problems);
    let records = number("records", &mut problems);
    if meta.get("records").is_none() {
        problems.push(Problem::file(
            Code::Metadata,
            "records",
            "metadata records= is missing (the number of records in the file)",
        ));
    }
    (
        ExtractHeader {
            extract_type,
            extracted_at,
            sequence,
            records,
        },
        problems,
    )
}

/// Checks the header row names every required column (§2.3).
pub(crate) fn extract_columns(present: &[bool], extract_type: Option<ExtractType>) -> Vec<Problem> {
    let mut required = vec![
        col::LOCAL_ID,
        col::NHS_NUMBER,
        col::PLAN_TYPE,
        col::START_DATE,
    ];
    if extract_type == Some(ExtractType::Delta) {
        required.insert(0, col::ACTION);
    }
    required
        .into_iter()
        .filter(|i| !present.get(*i).copied().unwrap_or(false))
        .map(|i| {
            let name = crate::formats::EXTRACT.columns[i];
            Problem::file(
                Code::Header,
                name,
                format!("required column {name} is missing from the header row"),
            )
        })
        .collect()
}

fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// A record appearing twice in one file: every occurrence is rejected (§4.1).
pub(crate) fn duplicate_record(line: u64, local_id: &str, plan_type: PlanType) -> Problem {
    Problem::record(
        line,
        local_id,
        Code::DuplicateRecord,
        "local_id",
        format!("the record {local_id} / {} appears more than once in this file; every occurrence was rejected: send it once", plan_type.as_str()),
    )
}

/// A DELETE of a record this authority does not hold.
/// A record whose retention ended before it arrived (§5.1): not held (again), not
/// applied, counted as a warning.
pub(crate) fn expired(
    line: u64,
    local_id: &str,
    end_date: NaiveDate,
    purge_after: NaiveDate,
) -> Problem {
    Problem {
        severity: Severity::Warning,
        ..Problem::record(
            line,
            local_id,
            Code::Expired,
            "end_date",
            format!(
                "the plan ended on {end_date}; its retention ended on {purge_after} (end_date + hub.retention_days), so it is not held: nothing was applied for this line"
            ),
        )
    }
}

pub(crate) fn unknown_record(line: u64, local_id: &str, plan_type: PlanType) -> Problem {
    Problem::record(
        line,
        local_id,
        Code::UnknownRecord,
        "local_id",
        format!(
            "DELETE of {local_id} / {}, which is not held for this authority",
            plan_type.as_str()
        ),
    )
}

/// An UPSERT with an NHS number marked superseded or inactive (§3.2). The message
/// names the replacement, the one NHS number a receipt may carry.
pub(crate) fn nhs_inactive(
    line: u64,
    local_id: &str,
    status: &str,
    replacement: Option<&str>,
) -> Problem {
    let message = match replacement {
        Some(r) => format!("nhs_number is {status}; its replacement is {r}: update the case file and send the record with the new number"),
        None => format!("nhs_number is {status} and no replacement is known: check the child's NHS number with the NHS"),
    };
    Problem::record(line, local_id, Code::NhsInactive, "nhs_number", message)
}

#[cfg(test)]
mod tests;
