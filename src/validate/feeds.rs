//! Validation of the NHS-side inbound formats: attendance events (§3.1) and NHS
//! number status changes (§3.2). Pure functions, like the extract rules.

use crate::model::Code;
use chrono::{DateTime, NaiveDate, Utc};

use super::{Problem, Severity};
use crate::clock;
use crate::formats::{attendance_col as ac, status_col as sc};
use crate::nhs::{NhsError, NhsNumber};
use crate::parse::{Metadata, RawRecord};

/// The settings of §3.1.
pub(crate) const SETTINGS: &[&str] = &[
    "ED",
    "WIC",
    "MIU",
    "OOH_GP",
    "AMBULANCE",
    "MATERNITY",
    "PAEDIATRIC_WARD",
    "OTHER",
];
pub(crate) const MAX_EVENT_ID: usize = 64;
pub(crate) const MAX_NAME: usize = 100;
/// How far ahead of the hub's clock an access time may be.
pub(crate) const ACCESS_FUTURE_SECS: i64 = 3600;

fn record_problem(line: u64, reference: &str, code: Code, field: &str, message: String) -> Problem {
    Problem {
        line: Some(line),
        reference: reference.to_string(),
        severity: Severity::Error,
        code,
        field: field.to_string(),
        message,
    }
}

/// Checks an NHS number field; `None` (with a problem pushed) when unusable.
pub(crate) fn nhs_field(
    text: Option<&str>,
    field: &str,
    allow_test: bool,
    mut err: impl FnMut(Code, &str, String),
) -> Option<NhsNumber> {
    let Some(text) = text else {
        err(Code::NhsMissing, field, format!("{field} is required"));
        return None;
    };
    match NhsNumber::parse(text) {
        Err(NhsError::Format) => {
            err(
                Code::NhsFormat,
                field,
                format!("{field} is not 10 digits (DDDDDDDDDD, DDD DDD DDDD or DDD-DDD-DDDD)"),
            );
            None
        }
        Err(NhsError::CheckDigit) => {
            err(
                Code::NhsCheckDigit,
                field,
                format!("{field} fails the Modulus 11 check digit"),
            );
            None
        }
        Ok(n) if n.is_test_number() && !allow_test => {
            err(
                Code::NhsTestNumber,
                field,
                format!("{field} is in the 999 test range, which this hub does not accept"),
            );
            None
        }
        Ok(n) => Some(n),
    }
}

/// Metadata common to the feeds: the `records` count (with `sent_at` and the partner
/// key checked).
pub(crate) struct FeedHeader {
    pub records: Option<u64>,
}

/// Checks a feed's metadata. `owner` is `Some(("site", "R0A"))` when the file must
/// name its sender.
pub(crate) fn feed_metadata(
    meta: &Metadata,
    owner: Option<(&str, &str)>,
) -> (FeedHeader, Vec<Problem>) {
    let mut problems = Vec::new();
    if let Some((key, code)) = owner {
        match meta.get(key) {
            None => problems.push(Problem::file(Code::Metadata, key, format!("metadata {key}= is missing"))),
            Some(v) if v != code => problems.push(Problem::file(
                Code::PartnerMismatch,
                key,
                format!("the file says {key}={v}, but this mailbox belongs to {code}: a mailbox speaks for its owner only"),
            )),
            Some(_) => {}
        }
    }
    // `sent_at` is checked, not used: events carry their own times.
    match meta.get("sent_at") {
        None => problems.push(Problem::file(
            Code::Metadata,
            "sent_at",
            "metadata sent_at= is missing",
        )),
        Some(t) if clock::parse_rfc3339(t).is_none() => problems.push(Problem::file(
            Code::Metadata,
            "sent_at",
            format!("sent_at={t} is not an RFC 3339 time with an offset"),
        )),
        Some(_) => {}
    }
    let records = match meta.get("records") {
        None => {
            problems.push(Problem::file(
                Code::Metadata,
                "records",
                "metadata records= is missing (the number of records in the file)",
            ));
            None
        }
        Some(t) => match t.parse::<u64>() {
            Ok(n) if t.bytes().all(|b| b.is_ascii_digit()) => Some(n),
            _ => {
                problems.push(Problem::file(
                    Code::Metadata,
                    "records",
                    format!("records={t} is not a whole number"),
                ));
                None
            }
        },
    };
    (FeedHeader { records }, problems)
}

/// The header row must name these columns.
pub(crate) fn required_columns(
    present: &[bool],
    columns: &[&str],
    required: &[usize],
) -> Vec<Problem> {
    required
        .iter()
        .filter(|i| !present.get(**i).copied().unwrap_or(false))
        .map(|i| {
            Problem::file(
                Code::Header,
                columns[*i],
                format!(
                    "required column {} is missing from the header row",
                    columns[*i]
                ),
            )
        })
        .collect()
}

pub(crate) const ATTENDANCE_REQUIRED: &[usize] = &[
    ac::EVENT_ID,
    ac::NHS_NUMBER,
    ac::ACCESSED_AT,
    ac::SITE_ODS_CODE,
    ac::SETTING,
    ac::USER_NAME,
    ac::USER_ROLE,
];
pub(crate) const STATUS_REQUIRED: &[usize] = &[sc::NHS_NUMBER, sc::STATUS, sc::EFFECTIVE_DATE];

/// A valid attendance event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    pub event_id: String,
    pub nhs_number: NhsNumber,
    pub accessed_at: DateTime<Utc>,
    pub site_ods_code: String,
    pub site_name: Option<String>,
    pub setting: String,
    pub unscheduled: bool,
    pub user_name: String,
    pub user_role: String,
}

pub(crate) struct AttendanceRules<'a> {
    pub site_codes: &'a [String],
    pub now: DateTime<Utc>,
    pub allow_test_numbers: bool,
}

impl AttendanceRules<'_> {
    /// Checks one event: the event (when valid), its event id (when readable) and problems.
    pub(crate) fn check(&self, raw: &RawRecord) -> (Option<Event>, Option<String>, Vec<Problem>) {
        let line = raw.line;
        let event_id = raw.get(ac::EVENT_ID);
        let reference: String = event_id
            .map(|e| e.chars().take(MAX_EVENT_ID).collect())
            .unwrap_or_default();
        let mut problems = Vec::new();
        let mut err = |code: Code, field: &str, message: String| {
            problems.push(record_problem(line, &reference, code, field, message))
        };
        if let Some(why) = &raw.malformed {
            err(
                Code::RecordFormat,
                "",
                format!("{why}; the line was not read"),
            );
        }
        check_event_id(event_id, &mut err);
        let nhs = nhs_field(
            raw.get(ac::NHS_NUMBER),
            "nhs_number",
            self.allow_test_numbers,
            &mut err,
        );
        let accessed_at = accessed_at(raw.get(ac::ACCESSED_AT), self.now, &mut err);
        let site_ods_code = site_ods_code(raw.get(ac::SITE_ODS_CODE), self.site_codes, &mut err);
        let setting = setting(raw.get(ac::SETTING), &mut err);
        let unscheduled = unscheduled(raw.get(ac::UNSCHEDULED), &mut err);
        let site_name = name_field(raw.get(ac::SITE_NAME), "site_name", false, &mut err);
        let user_name = name_field(raw.get(ac::USER_NAME), "user_name", true, &mut err);
        let user_role = name_field(raw.get(ac::USER_ROLE), "user_role", true, &mut err);
        let event = match (
            problems.is_empty(),
            event_id,
            nhs,
            accessed_at,
            site_ods_code,
            setting,
            user_name,
            user_role,
        ) {
            (
                true,
                Some(e),
                Some(n),
                Some(at),
                Some(code),
                Some(setting),
                Some(user_name),
                Some(user_role),
            ) => Some(Event {
                event_id: e.to_string(),
                nhs_number: n,
                accessed_at: at,
                site_ods_code: code,
                site_name,
                setting,
                unscheduled,
                user_name,
                user_role,
            }),
            _ => None,
        };
        (event, event_id.map(str::to_string), problems)
    }
}

/// A valid NHS number status change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StatusChange {
    pub nhs_number: NhsNumber,
    pub status: &'static str,
    pub replacement: Option<NhsNumber>,
    pub effective_date: NaiveDate,
}

pub(crate) struct StatusRules {
    pub allow_test_numbers: bool,
}

impl StatusRules {
    pub(crate) fn check(&self, raw: &RawRecord) -> (Option<StatusChange>, Vec<Problem>) {
        let line = raw.line;
        let mut problems = Vec::new();
        let mut err = |code: Code, field: &str, message: String| {
            problems.push(record_problem(line, "", code, field, message))
        };
        if let Some(why) = &raw.malformed {
            err(
                Code::RecordFormat,
                "",
                format!("{why}; the line was not read"),
            );
        }
        let nhs = nhs_field(
            raw.get(sc::NHS_NUMBER),
            "nhs_number",
            self.allow_test_numbers,
            &mut err,
        );
        let status = match raw.get(sc::STATUS).map(str::to_ascii_uppercase).as_deref() {
            Some("SUPERSEDED") => Some("SUPERSEDED"),
            Some("INACTIVE") => Some("INACTIVE"),
            None => {
                err(
                    Code::FieldMissing,
                    "status",
                    "status is required: SUPERSEDED or INACTIVE".into(),
                );
                None
            }
            Some(_) => {
                err(
                    Code::FieldFormat,
                    "status",
                    "status is not SUPERSEDED or INACTIVE".into(),
                );
                None
            }
        };
        let replacement = match raw.get(sc::REPLACEMENT) {
            None => None,
            Some(t) => nhs_field(
                Some(t),
                "replacement_nhs_number",
                self.allow_test_numbers,
                &mut err,
            ),
        };
        if replacement.is_some() && status == Some("INACTIVE") {
            err(
                Code::FieldFormat,
                "replacement_nhs_number",
                "an INACTIVE number has no replacement: use SUPERSEDED".into(),
            );
        }
        if replacement.is_some() && replacement == nhs {
            err(
                Code::FieldFormat,
                "replacement_nhs_number",
                "the replacement is the number itself".into(),
            );
        }
        let effective_date = match raw.get(sc::EFFECTIVE_DATE) {
            None => {
                err(
                    Code::FieldMissing,
                    "effective_date",
                    "effective_date is required".into(),
                );
                None
            }
            Some(t) => {
                let d = clock::parse_date(t);
                if d.is_none() {
                    err(
                        Code::DateFormat,
                        "effective_date",
                        "effective_date is not a date YYYY-MM-DD".into(),
                    );
                }
                d
            }
        };
        let change = match (problems.is_empty(), nhs, status, effective_date) {
            (true, Some(n), Some(s), Some(d)) => Some(StatusChange {
                nhs_number: n,
                status: s,
                replacement,
                effective_date: d,
            }),
            _ => None,
        };
        (change, problems)
    }
}

fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// Where a rule reports a problem of the line being checked.
type Report<'a> = &'a mut dyn FnMut(Code, &str, String);

fn check_event_id(event_id: Option<&str>, err: Report<'_>) {
    match event_id {
        None => err(
            Code::FieldMissing,
            "event_id",
            "event_id is required".into(),
        ),
        Some(e) if e.chars().count() > MAX_EVENT_ID => err(
            Code::FieldTooLong,
            "event_id",
            format!("event_id is longer than {MAX_EVENT_ID} characters"),
        ),
        Some(e) if e.chars().any(char::is_control) => err(
            Code::FieldFormat,
            "event_id",
            "event_id holds control characters".into(),
        ),
        Some(_) => {}
    }
}

/// `accessed_at`: an RFC 3339 time with an offset, at most an hour after `now`.
fn accessed_at(text: Option<&str>, now: DateTime<Utc>, err: Report<'_>) -> Option<DateTime<Utc>> {
    let Some(t) = text else {
        err(
            Code::Timestamp,
            "accessed_at",
            "accessed_at is required".into(),
        );
        return None;
    };
    match clock::parse_rfc3339(t) {
        None => {
            err(
                Code::Timestamp,
                "accessed_at",
                "accessed_at is not an RFC 3339 time with an offset".into(),
            );
            None
        }
        Some(at) if (at - now).num_seconds() > ACCESS_FUTURE_SECS => {
            err(
                Code::Timestamp,
                "accessed_at",
                format!(
                    "accessed_at is more than an hour after the hub's time {}",
                    clock::rfc3339(now)
                ),
            );
            None
        }
        Some(at) => Some(at),
    }
}

/// `site_ods_code`: one of the sender's own sites, in upper case.
fn site_ods_code(text: Option<&str>, site_codes: &[String], err: Report<'_>) -> Option<String> {
    match text {
        None => {
            err(
                Code::SiteCode,
                "site_ods_code",
                "site_ods_code is required".into(),
            );
            None
        }
        Some(c) if !site_codes.iter().any(|s| s.eq_ignore_ascii_case(c)) => {
            err(
                Code::SiteCode,
                "site_ods_code",
                format!(
                    "site_ods_code {:?} is not one of this organisation's sites ({})",
                    truncate(c, 20),
                    site_codes.join(", ")
                ),
            );
            None
        }
        Some(c) => Some(c.to_ascii_uppercase()),
    }
}

fn setting(text: Option<&str>, err: Report<'_>) -> Option<String> {
    let Some(s) = text else {
        err(
            Code::Setting,
            "setting",
            format!("setting is required: one of {}", SETTINGS.join(", ")),
        );
        return None;
    };
    let upper = s.to_ascii_uppercase();
    if SETTINGS.contains(&upper.as_str()) {
        return Some(upper);
    }
    err(
        Code::Setting,
        "setting",
        format!(
            "setting {:?} is not one of {}",
            truncate(s, 20),
            SETTINGS.join(", ")
        ),
    );
    None
}

/// `unscheduled`: Y (the default) or N.
fn unscheduled(text: Option<&str>, err: Report<'_>) -> bool {
    match text.map(str::to_ascii_uppercase).as_deref() {
        None | Some("Y") => true,
        Some("N") => false,
        Some(_) => {
            err(
                Code::FieldFormat,
                "unscheduled",
                "unscheduled must be Y or N".into(),
            );
            true
        }
    }
}

/// A name or role: printable, at most [`MAX_NAME`] characters.
fn name_field(text: Option<&str>, field: &str, required: bool, err: Report<'_>) -> Option<String> {
    match text {
        None if required => {
            err(Code::FieldMissing, field, format!("{field} is required"));
            None
        }
        None => None,
        Some(v) if v.chars().count() > MAX_NAME => {
            err(
                Code::FieldTooLong,
                field,
                format!("{field} is longer than {MAX_NAME} characters"),
            );
            None
        }
        Some(v) if v.chars().any(char::is_control) => {
            err(
                Code::FieldFormat,
                field,
                format!("{field} holds control characters"),
            );
            None
        }
        Some(v) => Some(v.to_string()),
    }
}
