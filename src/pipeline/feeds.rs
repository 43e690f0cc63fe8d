//! Evaluating and applying the NHS-side inbound files: attendance events (§3.1,
//! §5.2) and NHS number status changes (§3.2, §4.4).
//!
//! Both follow the extract's shape: one streaming pass that applies as it goes,
//! inside a savepoint; if the decision at the end forbids applying (a file-level
//! error, every record invalid, the reject fraction), the pass is rolled back and
//! read again to list the problems only. The rows each file produces for an
//! authority (access notifications, inactive notices) are stored as they will be
//! sent and tied to one reserved outbound file per authority, so a re-send after a
//! crash is byte-identical and no row is sent twice or lost.

use crate::model::{Code, Severity};
use std::collections::HashSet;

use super::decide;
use super::extract::{ExtractError, Opener, Outcome, Sink};
use crate::clock::{self, Clock};
use crate::config::{Config, HubSettings};
use crate::config::{Partner, Role};
use crate::emit;
use crate::formats::Spec;
use crate::formats::{self, Kind};
use crate::index::{self, ledger::Counts, IndexError, Store, Tx};
use crate::parse::{DocReader, Item, RawRecord, Stop};
use crate::validate::{self, AttendanceRules, Problem, StatusRules};

/// What one feed does with its records.
pub(crate) trait FeedHandler {
    fn spec(&self) -> &'static Spec;
    /// The metadata key and value that must name the sender, if any.
    fn owner(&self) -> Option<(&str, &str)>;
    fn required(&self) -> &'static [usize];
    /// Starts a pass (forget per-pass state).
    fn begin(&mut self);
    /// Checks one record and, when `apply`, applies it. Problems go to `problems`.
    fn record(
        &mut self,
        store: Store<'_>,
        raw: &RawRecord,
        apply: bool,
        problems: &mut Vec<Problem>,
    ) -> Result<Verdict, IndexError>;
    /// After an applied pass: reserve the outbound files the rows go in.
    fn finish(&mut self, store: Store<'_>) -> Result<(), IndexError>;
    /// The feed's own counts for the audit log (never an NHS number).
    fn detail(&self) -> serde_json::Value;
}

/// The feed a partner sends (`None` for an authority: its files are extracts).
/// `message_id` ties the rows it makes to their message (0 for a dry run).
pub(crate) fn handler_for<'a>(
    config: &'a Config,
    partner: &'a Partner,
    now: Clock,
    message_id: i64,
) -> Option<Box<dyn FeedHandler + 'a>> {
    match &partner.role {
        Role::Authority { .. } => None,
        Role::Site {
            code,
            name,
            site_codes,
            ..
        } => Some(Box::new(Attendance::new(
            config, code, name, site_codes, now, message_id,
        ))),
        Role::Demographics => Some(Box::new(NhsStatus::new(config, now, message_id))),
    }
}

/// What became of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Valid: applied (or would be).
    Applied,
    /// Has an ERROR: not applied, counts in `rejected`.
    Invalid,
    /// Valid but not applied again (`DUPLICATE_EVENT`): counts in neither.
    Skipped,
}

struct PassCounts {
    records: u64,
    invalid: u64,
    skipped: u64,
    warnings: u64,
    file_error: bool,
}

fn run_pass(
    store: Store<'_>,
    handler: &mut dyn FeedHandler,
    pre: &[Problem],
    open: Opener<'_>,
    apply: bool,
    sink: &mut dyn Sink,
) -> Result<PassCounts, ExtractError> {
    let mut c = PassCounts {
        records: 0,
        invalid: 0,
        skipped: 0,
        warnings: 0,
        file_error: false,
    };
    let mut push = |store: Store<'_>, c: &mut PassCounts, p: Problem| -> Result<(), IndexError> {
        if p.severity == Severity::Warning {
            c.warnings += 1;
        } else if p.line.is_none() {
            c.file_error = true;
        }
        sink.push(store, p)
    };
    handler.begin();
    for p in pre {
        push(store, &mut c, p.clone())?;
    }
    let (reader, prelude) = match DocReader::open(open()?, handler.spec()) {
        Ok(ok) => ok,
        Err(Stop::Io(e)) => return Err(ExtractError::Io(e)),
        Err(Stop::Content(fp)) => {
            push(store, &mut c, Problem::from_file(fp))?;
            return Ok(c);
        }
    };
    for w in prelude.warnings {
        push(store, &mut c, Problem::from_file(w))?;
    }
    let (header, meta_problems) = validate::feed_metadata(&prelude.metadata, handler.owner());
    for p in meta_problems {
        push(store, &mut c, p)?;
    }
    let columns =
        validate::required_columns(&prelude.present, handler.spec().columns, handler.required());
    let columns_ok = columns.is_empty();
    for p in columns {
        push(store, &mut c, p)?;
    }
    let can_apply = apply && !c.file_error;
    let mut fatal = false;
    let mut problems = Vec::new();
    for item in reader {
        match item {
            Item::Warning(w) => push(store, &mut c, Problem::from_file(w))?,
            Item::Io(e) => return Err(ExtractError::Io(e)),
            Item::Fatal(fp) => {
                push(store, &mut c, Problem::from_file(fp))?;
                fatal = true;
                break;
            }
            Item::Record(raw) => {
                c.records += 1;
                if !columns_ok {
                    continue;
                }
                problems.clear();
                match handler.record(store, &raw, can_apply, &mut problems)? {
                    Verdict::Applied => {}
                    Verdict::Invalid => c.invalid += 1,
                    Verdict::Skipped => c.skipped += 1,
                }
                for p in problems.drain(..) {
                    push(store, &mut c, p)?;
                }
            }
        }
    }
    if !fatal {
        if let Some(declared) = header.records {
            if declared != c.records {
                let msg = format!("the metadata declares records={declared} but the file holds {} records: the file may be truncated; send it again", c.records);
                push(
                    store,
                    &mut c,
                    Problem::file(Code::RecordCount, "records", msg),
                )?;
            }
        }
    }
    Ok(c)
}

/// Evaluates a feed file and, when `apply` and the decision allows, applies it in the
/// caller's transaction.
pub(crate) fn evaluate(
    store: Store<'_>,
    handler: &mut dyn FeedHandler,
    hub: &HubSettings,
    pre: &[Problem],
    open: Opener<'_>,
    apply: bool,
    sink: &mut dyn Sink,
) -> Result<Outcome, ExtractError> {
    if apply {
        store.tx()?.savepoint("feed_pass")?;
    }
    let result = (|| {
        let mut c = run_pass(store, handler, pre, open, apply, sink)?;
        let findings = decide::Findings {
            file_error: c.file_error,
            records: c.records,
            invalid: c.invalid,
            ..decide::Findings::default()
        };
        let (status, extra) = decide::decide(&findings, hub.max_reject_fraction);
        if apply && !status.applies() {
            store.tx()?.rollback_to("feed_pass")?;
            sink.reset();
            c = run_pass(store, handler, pre, open, false, sink)?;
        }
        if let Some(p) = extra {
            sink.push(store, p)?;
        }
        if apply && status.applies() {
            handler.finish(store)?;
        }
        Ok(Outcome {
            status,
            counts: Counts {
                records: c.records,
                applied: if status.applies() {
                    c.records - c.invalid - c.skipped
                } else {
                    0
                },
                rejected: c.invalid,
                warnings: c.warnings,
            },
            header: validate::ExtractHeader {
                extract_type: None,
                extracted_at: None,
                sequence: None,
                records: None,
            },
            would_end: 0,
        })
    })();
    if apply {
        match &result {
            Ok(_) => store.tx()?.release("feed_pass")?,
            Err(_) => {
                store.tx()?.rollback_to("feed_pass")?;
                store.tx()?.release("feed_pass")?
            }
        }
    }
    result
}

/// Reserves one outbound file of `kind` per authority a file produced rows for, and
/// ties those rows to it (`attach`).
fn reserve_per_authority(
    store: Store<'_>,
    config: &Config,
    now: &Clock,
    kind: Kind,
    authorities: Vec<String>,
    attach: impl Fn(&Tx<'_>, &str, i64) -> Result<u64, IndexError>,
) -> Result<(), IndexError> {
    for authority in authorities {
        let Some(partner) = config.authority(&authority) else {
            continue;
        };
        let row =
            emit::render::reserve(store.tx()?, config, &partner.mailbox, kind, now, None, None)?;
        attach(store.tx()?, &authority, row.id)?;
    }
    Ok(())
}

/// Attendance events from one site organisation.
pub(crate) struct Attendance<'a> {
    pub config: &'a Config,
    pub site_code: &'a str,
    pub site_name: &'a str,
    pub site_codes: &'a [String],
    pub now: Clock,
    pub message_id: i64,
    /// Event ids met in this pass (for in-file duplicates when not applying).
    seen: HashSet<String>,
    pub notified: u64,
    pub silent_reads: u64,
    pub not_held: u64,
    pub duplicates: u64,
}

impl<'a> Attendance<'a> {
    pub(crate) fn new(
        config: &'a Config,
        site_code: &'a str,
        site_name: &'a str,
        site_codes: &'a [String],
        now: Clock,
        message_id: i64,
    ) -> Self {
        Attendance {
            config,
            site_code,
            site_name,
            site_codes,
            now,
            message_id,
            seen: HashSet::new(),
            notified: 0,
            silent_reads: 0,
            not_held: 0,
            duplicates: 0,
        }
    }
}

impl FeedHandler for Attendance<'_> {
    fn detail(&self) -> serde_json::Value {
        serde_json::json!({"site": self.site_code, "notified": self.notified, "silent_reads": self.silent_reads, "not_held": self.not_held, "duplicate_events": self.duplicates})
    }

    fn spec(&self) -> &'static Spec {
        &formats::ATTENDANCE
    }
    fn owner(&self) -> Option<(&str, &str)> {
        Some(("site", self.site_code))
    }
    fn required(&self) -> &'static [usize] {
        validate::ATTENDANCE_REQUIRED
    }
    fn begin(&mut self) {
        self.seen.clear();
        self.notified = 0;
        self.silent_reads = 0;
        self.not_held = 0;
        self.duplicates = 0;
    }

    fn record(
        &mut self,
        store: Store<'_>,
        raw: &RawRecord,
        apply: bool,
        problems: &mut Vec<Problem>,
    ) -> Result<Verdict, IndexError> {
        let rules = AttendanceRules {
            site_codes: self.site_codes,
            now: self.now.now(),
            allow_test_numbers: self.config.hub.allow_test_nhs_numbers,
        };
        let (event, _, mut found) = rules.check(raw);
        problems.append(&mut found);
        let Some(ev) = event else {
            return Ok(Verdict::Invalid);
        };
        let today = self.now.today().to_string();
        let first = if apply {
            index::flows::mark_event_seen(store.tx()?, self.site_code, &ev.event_id, &today)?
        } else {
            !index::flows::event_seen(store.db(), self.site_code, &ev.event_id)?
                && self.seen.insert(ev.event_id.clone())
        };
        if !first {
            self.duplicates += 1;
            problems.push(Problem {
                line: Some(raw.line),
                reference: ev.event_id.clone(),
                severity: Severity::Warning,
                code: Code::DuplicateEvent,
                field: "event_id".into(),
                message: "this event was processed before (earlier in this file or in an earlier file); it was not notified again".into(),
            });
            return Ok(Verdict::Skipped);
        }
        if !ev.unscheduled {
            self.silent_reads += 1;
            return Ok(Verdict::Applied);
        }
        let nhs = ev.nhs_number.as_string();
        let held = index::flows::held_by_nhs(store.db(), &nhs)?;
        if held.is_empty() {
            self.not_held += 1;
            return Ok(Verdict::Applied);
        }
        if !apply {
            return Ok(Verdict::Applied);
        }
        let accessed_at = clock::rfc3339(ev.accessed_at);
        let today_date = self.now.today();
        for r in held {
            let ended = r
                .end_date
                .as_deref()
                .and_then(clock::parse_date)
                .is_some_and(|e| e <= today_date);
            index::flows::insert_notification(
                store.tx()?,
                &index::flows::Notification {
                    message_id: self.message_id,
                    authority: r.authority.clone(),
                    local_id: r.local_id.clone(),
                    nhs_number: nhs.clone(),
                    plan_type: r.plan_type.clone(),
                    plan_status: if ended { "ENDED" } else { "ACTIVE" }.into(),
                    plan_end_date: r.end_date.clone(),
                    accessed_at: accessed_at.clone(),
                    site_ods_code: ev.site_ods_code.clone(),
                    site_name: ev
                        .site_name
                        .clone()
                        .unwrap_or_else(|| self.site_name.to_string()),
                    setting: ev.setting.clone(),
                    user_name: ev.user_name.clone(),
                    user_role: ev.user_role.clone(),
                    created_on: today.clone(),
                    ..Default::default()
                },
            )?;
            index::flows::add_access(
                store.tx()?,
                r.id,
                &accessed_at,
                &ev.site_ods_code,
                &ev.setting,
            )?;
            self.notified += 1;
        }
        Ok(Verdict::Applied)
    }

    fn finish(&mut self, store: Store<'_>) -> Result<(), IndexError> {
        let authorities = index::flows::notification_authorities(store.db(), self.message_id)?;
        reserve_per_authority(
            store,
            self.config,
            &self.now,
            Kind::Access,
            authorities,
            |tx, authority, outbound| {
                index::flows::attach_notifications(tx, self.message_id, authority, outbound)
            },
        )
    }
}

/// NHS number status changes from the demographics feed.
pub(crate) struct NhsStatus<'a> {
    pub config: &'a Config,
    pub now: Clock,
    pub message_id: i64,
    pub marked: u64,
    pub notices: u64,
}

impl<'a> NhsStatus<'a> {
    pub(crate) fn new(config: &'a Config, now: Clock, message_id: i64) -> Self {
        NhsStatus {
            config,
            now,
            message_id,
            marked: 0,
            notices: 0,
        }
    }
}

impl FeedHandler for NhsStatus<'_> {
    fn detail(&self) -> serde_json::Value {
        serde_json::json!({"marked": self.marked, "notices": self.notices})
    }

    fn spec(&self) -> &'static Spec {
        &formats::NHS_STATUS
    }
    fn owner(&self) -> Option<(&str, &str)> {
        None
    }
    fn required(&self) -> &'static [usize] {
        validate::STATUS_REQUIRED
    }
    fn begin(&mut self) {
        self.marked = 0;
        self.notices = 0;
    }

    fn record(
        &mut self,
        store: Store<'_>,
        raw: &RawRecord,
        apply: bool,
        problems: &mut Vec<Problem>,
    ) -> Result<Verdict, IndexError> {
        let rules = StatusRules {
            allow_test_numbers: self.config.hub.allow_test_nhs_numbers,
        };
        let (change, mut found) = rules.check(raw);
        problems.append(&mut found);
        let Some(c) = change else {
            return Ok(Verdict::Invalid);
        };
        if !apply {
            return Ok(Verdict::Applied);
        }
        let nhs = c.nhs_number.as_string();
        let replacement = c.replacement.map(|r| r.as_string());
        let effective = c.effective_date.to_string();
        index::flows::set_nhs_status(
            store.tx()?,
            &nhs,
            c.status,
            replacement.as_deref(),
            &effective,
        )?;
        self.marked += 1;
        for r in index::flows::held_by_nhs(store.db(), &nhs)? {
            index::flows::insert_inactive(
                store.tx()?,
                &index::flows::InactiveNotice {
                    message_id: self.message_id,
                    authority: r.authority,
                    local_id: r.local_id,
                    nhs_number: nhs.clone(),
                    plan_type: r.plan_type,
                    status: c.status.to_string(),
                    replacement: replacement.clone(),
                    effective_date: effective.clone(),
                    created_on: self.now.today().to_string(),
                },
            )?;
            self.notices += 1;
        }
        Ok(Verdict::Applied)
    }

    fn finish(&mut self, store: Store<'_>) -> Result<(), IndexError> {
        let authorities = index::flows::inactive_authorities(store.db(), self.message_id)?;
        reserve_per_authority(
            store,
            self.config,
            &self.now,
            Kind::Inactive,
            authorities,
            |tx, authority, outbound| {
                index::flows::attach_inactive(tx, self.message_id, authority, outbound)
            },
        )
    }
}
