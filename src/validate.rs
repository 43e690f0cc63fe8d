//! Validation of authority extracts (SPEC §2.2, §2.3, §4.1 codes): pure functions
//! from what the parser read to typed records and receipt problems.
//!
//! Owns no state and does no I/O. Checks that need the index (a DELETE of a record
//! not held, an inactive NHS number) are made by the pipeline with the index's
//! answers; their problem texts are built here so every message lives in one place.
//! Must never put an NHS number in a problem's text (except the replacement named by
//! `NHS_INACTIVE`, §4.1).

mod feeds;

pub(crate) use feeds::*;

use crate::model::{Code, Severity};
use chrono::{DateTime, NaiveDate, Utc};

use crate::clock::{self, birthday};
use crate::formats::extract_col as col;
use crate::nhs::{NhsError, NhsNumber};
use crate::parse::{FileProblem, Metadata, RawRecord};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Upsert,
    Delete,
}

/// A record that passed every rule that needs no index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExtractRecord {
    pub action: Action,
    pub local_id: String,
    pub plan_type: PlanType,
    /// Present for every UPSERT.
    pub nhs_number: Option<NhsNumber>,
    pub date_of_birth: Option<NaiveDate>,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    pub team: Option<String>,
    pub office_hours_phone: Option<String>,
    pub out_of_hours_phone: Option<String>,
    pub email: Option<String>,
}

/// The outcome of checking one line.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    /// (local_id, plan_type) when both could be read: the line "mentions" that record.
    pub key: Option<(String, PlanType)>,
    /// The record, when no rule failed.
    pub record: Option<ExtractRecord>,
    pub problems: Vec<Problem>,
}

/// Rules that need only the line and the extract (§2.3, §4.1).
pub(crate) struct ExtractRules {
    pub extract_type: Option<ExtractType>,
    pub reference_date: NaiveDate,
    pub allow_test_numbers: bool,
}

pub(crate) const MAX_LOCAL_ID: usize = 64;
pub(crate) const MAX_TEAM: usize = 100;
pub(crate) const MAX_PHONE: usize = 32;
pub(crate) const MAX_EMAIL: usize = 254;

impl ExtractRules {
    /// Every rule of §2.3 that needs only the line and the extract. Each field's
    /// problems are reported; a record comes back only when there are none.
    pub(crate) fn check(&self, raw: &RawRecord) -> Checked {
        let mut line = Line {
            raw,
            local_id: raw.get(col::LOCAL_ID),
            problems: Vec::new(),
        };
        if let Some(why) = &raw.malformed {
            line.err(
                Code::RecordFormat,
                "",
                format!("{why}; the line was not read"),
            );
        }
        let action = line.action(self.extract_type);
        let local_ok = line.local_id_ok();
        let plan_type = line.plan_type();
        let key = match (local_ok, line.local_id, plan_type) {
            (true, Some(l), Some(p)) => Some((l.to_string(), p)),
            _ => None,
        };
        let mut dates = Dates::default();
        let mut nhs_number = None;
        if action != Some(Action::Delete) {
            nhs_number = line.nhs_number(self.allow_test_numbers);
            dates = line.dates(plan_type, self.reference_date);
        }
        let contacts = line.contacts();

        let record = match (line.problems.is_empty(), key.clone(), action) {
            (true, Some((local_id, plan_type)), Some(action)) => Some(ExtractRecord {
                action,
                local_id,
                plan_type,
                nhs_number,
                date_of_birth: dates.birth,
                start_date: dates.start,
                end_date: dates.end,
                team: contacts.team,
                office_hours_phone: contacts.office_hours_phone,
                out_of_hours_phone: contacts.out_of_hours_phone,
                email: contacts.email,
            }),
            _ => None,
        };
        Checked {
            key,
            record,
            problems: line.problems,
        }
    }
}

/// One line being checked, and the problems found so far.
struct Line<'r> {
    raw: &'r RawRecord,
    local_id: Option<&'r str>,
    problems: Vec<Problem>,
}

#[derive(Default)]
struct Dates {
    birth: Option<NaiveDate>,
    start: Option<NaiveDate>,
    end: Option<NaiveDate>,
}

struct Contacts {
    team: Option<String>,
    office_hours_phone: Option<String>,
    out_of_hours_phone: Option<String>,
    email: Option<String>,
}

impl Line<'_> {
    fn err(&mut self, code: Code, field: &str, message: String) {
        // The line's reference, made only when there is a problem to report.
        let reference = self
            .local_id
            .map(|l| truncate(l, MAX_LOCAL_ID))
            .unwrap_or_default();
        self.problems.push(Problem::record(
            self.raw.line,
            &reference,
            code,
            field,
            message,
        ))
    }

    fn action(&mut self, extract_type: Option<ExtractType>) -> Option<Action> {
        match (self.raw.get(col::ACTION), extract_type) {
            (None, Some(ExtractType::Delta)) => {
                self.err(
                    Code::Action,
                    "action",
                    "action is required in a DELTA: UPSERT or DELETE".into(),
                );
                None
            }
            (None, _) => Some(Action::Upsert),
            (Some(a), _) if a.eq_ignore_ascii_case("UPSERT") => Some(Action::Upsert),
            (Some(a), t) if a.eq_ignore_ascii_case("DELETE") => match t {
                Some(ExtractType::Full) => {
                    self.err(Code::Action, "action", "DELETE is not allowed in a FULL extract: leave the record out, or send it in a DELTA".into());
                    None
                }
                _ => Some(Action::Delete),
            },
            (Some(a), _) => {
                self.err(
                    Code::Action,
                    "action",
                    format!("action {:?} is not UPSERT or DELETE", truncate(a, 20)),
                );
                None
            }
        }
    }

    fn local_id_ok(&mut self) -> bool {
        match self.local_id {
            None => {
                self.err(
                    Code::LocalIdMissing,
                    "local_id",
                    "local_id is required".into(),
                );
                false
            }
            Some(l) if l.chars().count() > MAX_LOCAL_ID => {
                self.err(
                    Code::FieldTooLong,
                    "local_id",
                    format!("local_id is longer than {MAX_LOCAL_ID} characters"),
                );
                false
            }
            Some(l) if l.chars().any(char::is_control) => {
                self.err(
                    Code::LocalIdFormat,
                    "local_id",
                    "local_id holds control characters: use printable characters only".into(),
                );
                false
            }
            Some(_) => true,
        }
    }

    fn plan_type(&mut self) -> Option<PlanType> {
        let Some(p) = self.raw.get(col::PLAN_TYPE) else {
            self.err(
                Code::PlanType,
                "plan_type",
                "plan_type is required: CPP, LAC or UCPP".into(),
            );
            return None;
        };
        let parsed = PlanType::parse(p);
        if parsed.is_none() {
            self.err(
                Code::PlanType,
                "plan_type",
                format!("plan_type {:?} is not CPP, LAC or UCPP", truncate(p, 20)),
            );
        }
        parsed
    }

    fn nhs_number(&mut self, allow_test_numbers: bool) -> Option<NhsNumber> {
        let Some(text) = self.raw.get(col::NHS_NUMBER) else {
            self.err(
                Code::NhsMissing,
                "nhs_number",
                "nhs_number is required".into(),
            );
            return None;
        };
        match NhsNumber::parse(text) {
            Err(NhsError::Format) => {
                self.err(
                    Code::NhsFormat,
                    "nhs_number",
                    "nhs_number is not 10 digits (DDDDDDDDDD, DDD DDD DDDD or DDD-DDD-DDDD)".into(),
                );
                None
            }
            Err(NhsError::CheckDigit) => {
                self.err(Code::NhsCheckDigit, "nhs_number", "nhs_number fails the Modulus 11 check digit: check the number against the case file".into());
                None
            }
            Ok(n) if n.is_test_number() && !allow_test_numbers => {
                self.err(
                    Code::NhsTestNumber,
                    "nhs_number",
                    "nhs_number is in the 999 test range, which this hub does not accept".into(),
                );
                None
            }
            Ok(n) => Some(n),
        }
    }

    fn date(&mut self, index: usize, field: &str) -> Option<NaiveDate> {
        let text = self.raw.get(index)?;
        let parsed = clock::parse_date(text);
        if parsed.is_none() {
            self.err(
                Code::DateFormat,
                field,
                format!("{field} {:?} is not a date YYYY-MM-DD", truncate(text, 20)),
            );
        }
        parsed
    }

    /// The dates of an UPSERT and the rules between them and the extract date.
    fn dates(&mut self, plan_type: Option<PlanType>, reference_date: NaiveDate) -> Dates {
        let dates = Dates {
            birth: self.date(col::DATE_OF_BIRTH, "date_of_birth"),
            start: self.date(col::START_DATE, "start_date"),
            end: self.date(col::END_DATE, "end_date"),
        };
        let dob_given = self.raw.get(col::DATE_OF_BIRTH).is_some();
        if !dob_given && plan_type.is_some_and(PlanType::is_child) {
            self.err(
                Code::DobMissing,
                "date_of_birth",
                "date_of_birth is required for CPP and LAC".into(),
            );
        }
        if dates.birth.is_some_and(|d| d > reference_date) {
            self.err(
                Code::DobFuture,
                "date_of_birth",
                format!("date_of_birth is after the extract date {reference_date}"),
            );
        }
        if self.raw.get(col::START_DATE).is_none() {
            self.err(
                Code::StartMissing,
                "start_date",
                "start_date is required for an UPSERT".into(),
            );
        }
        if let Some(s) = dates.start.filter(|s| *s > reference_date) {
            self.err(
                Code::StartFuture,
                "start_date",
                format!("start_date {s} is after the extract date {reference_date}"),
            );
        }
        if let (Some(s), Some(e)) = (dates.start, dates.end) {
            if e < s {
                self.err(
                    Code::EndBeforeStart,
                    "end_date",
                    format!("end_date {e} is before start_date {s}"),
                );
            }
        }
        if let (Some(p), Some(dob)) = (plan_type, dates.birth) {
            let open = dates.end.is_none_or(|e| e > reference_date);
            if p.is_child() && open && birthday(dob, 18) <= reference_date {
                self.err(Code::Over18, "date_of_birth", format!("the child is 18 or older on the extract date {reference_date} and the {} plan is still open: end it (end_date)", p.as_str()));
            }
        }
        dates
    }

    fn text(&mut self, index: usize, field: &str, max: usize) -> Option<String> {
        let value = self.raw.get(index)?;
        if value.chars().count() > max {
            self.err(
                Code::FieldTooLong,
                field,
                format!("{field} is longer than {max} characters"),
            );
        }
        Some(value.to_string())
    }

    fn contacts(&mut self) -> Contacts {
        let contacts = Contacts {
            team: self.text(col::TEAM, "team", MAX_TEAM),
            office_hours_phone: self.text(col::OFFICE_HOURS_PHONE, "office_hours_phone", MAX_PHONE),
            out_of_hours_phone: self.text(col::OUT_OF_HOURS_PHONE, "out_of_hours_phone", MAX_PHONE),
            email: self.text(col::EMAIL, "email", MAX_EMAIL),
        };
        for (value, field) in [
            (&contacts.office_hours_phone, "office_hours_phone"),
            (&contacts.out_of_hours_phone, "out_of_hours_phone"),
        ] {
            if value.as_deref().is_some_and(|v| !is_phone(v)) {
                self.err(Code::ContactFormat, field, format!("{field} is not a phone number (digits, spaces, + ( ) - only, at least 6 digits)"));
            }
        }
        if contacts.email.as_deref().is_some_and(|v| !is_email(v)) {
            self.err(
                Code::ContactFormat,
                "email",
                "email is not an address of the form name@domain".into(),
            );
        }
        contacts
    }
}

fn is_phone(v: &str) -> bool {
    v.chars().all(|c| c.is_ascii_digit() || " +()-".contains(c))
        && v.chars().filter(char::is_ascii_digit).count() >= 6
}

fn is_email(v: &str) -> bool {
    match v.split_once('@') {
        Some((name, domain)) => {
            !name.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !v.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
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
