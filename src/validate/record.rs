//! The rules of one extract line (SPEC §2.3): each field checked in column order,
//! every problem reported, a typed record only when there are none.
//!
//! Owns nothing; pure. Must never stop at the first problem (a receipt lists them
//! all), nor put an NHS number in a problem's text.

use chrono::NaiveDate;

use super::{truncate, ExtractType, PlanType, Problem};
use crate::clock::{self, birthday};
use crate::formats::extract_col as col;
use crate::model::Code;
use crate::nhs::{NhsError, NhsNumber};
use crate::parse::RawRecord;

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
