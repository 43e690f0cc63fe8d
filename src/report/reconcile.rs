//! `report reconcile --authority CODE FILE`: a FULL extract file against what is
//! held for that authority, without applying it. Streams the file (bounded memory:
//! a 16-byte hash per record to find what is held but not in the file); the list is
//! spooled to a temporary file so the counts can come first.

use crate::model::Code;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use crate::clock::Clock;
use crate::config::Config;
use crate::formats::EXTRACT;
use crate::index::{self, Db, IndexError};
use crate::parse::{DocReader, Item, Stop};
use crate::validate::{self, key_hash, Action, ExtractRecord, ExtractRules, PlanType};

#[derive(Debug, thiserror::Error)]
pub(crate) enum ReconcileError {
    #[error("cannot read {0}: {1}")]
    Read(String, io::Error),
    #[error("{0} cannot be read as an extract: {1}")]
    Unreadable(String, String),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("writing the report: {0}")]
    Write(io::Error),
}

/// The counts of a reconciliation.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts {
    pub identical: u64,
    pub only_in_file: u64,
    pub only_held: u64,
    pub differing: u64,
    /// Lines of the file that fail the extract rules (not compared).
    pub invalid: u64,
    /// The file says `type=DELTA`: compared as if it were a FULL (what it does not
    /// mention shows as only held), which is rarely what was meant.
    pub delta: bool,
}

impl Counts {
    pub(crate) fn matches(&self) -> bool {
        self.only_in_file == 0 && self.only_held == 0 && self.differing == 0 && self.invalid == 0
    }
}

fn date(d: Option<chrono::NaiveDate>) -> Option<String> {
    d.map(|d| d.to_string())
}

/// The fields that differ between a file's record and the held one.
fn differing_fields(r: &ExtractRecord, held: &index::records::StoredRecord) -> Vec<&'static str> {
    let mut f = Vec::new();
    if r.nhs_number.map(|n| n.as_string()).as_deref() != Some(held.nhs_number.as_str()) {
        f.push("nhs_number");
    }
    if date(r.date_of_birth) != held.date_of_birth {
        f.push("date_of_birth");
    }
    if date(r.start_date).as_deref() != Some(held.start_date.as_str()) {
        f.push("start_date");
    }
    if date(r.end_date) != held.end_date {
        f.push("end_date");
    }
    for (name, a, b) in [
        ("team", &r.team, &held.team),
        (
            "office_hours_phone",
            &r.office_hours_phone,
            &held.office_hours_phone,
        ),
        (
            "out_of_hours_phone",
            &r.out_of_hours_phone,
            &held.out_of_hours_phone,
        ),
        ("email", &r.email, &held.email),
    ] {
        if a != b {
            f.push(name);
        }
    }
    f
}

/// What a line of the list says about one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Finding {
    OnlyInFile,
    OnlyHeld,
    Differs,
    Invalid,
}

impl Finding {
    fn as_str(self) -> &'static str {
        match self {
            Finding::OnlyInFile => "ONLY_IN_FILE",
            Finding::OnlyHeld => "ONLY_HELD",
            Finding::Differs => "DIFFERS",
            Finding::Invalid => "INVALID",
        }
    }
}

/// The counts and the spooled list (tab-separated; fields never hold tabs, since
/// control characters are refused). The first write error is kept and returned at
/// the end, so a callback can note findings without returning a `Result`.
struct Tally {
    counts: Counts,
    list: BufWriter<File>,
    failed: Option<io::Error>,
}

impl Tally {
    fn new(delta: bool) -> Result<Tally, ReconcileError> {
        Ok(Tally {
            counts: Counts {
                delta,
                ..Counts::default()
            },
            list: BufWriter::new(tempfile::tempfile().map_err(ReconcileError::Write)?),
            failed: None,
        })
    }

    fn identical(&mut self) {
        self.counts.identical += 1;
    }

    fn note(&mut self, finding: Finding, local_id: &str, plan_type: &str, detail: &str) {
        let c = &mut self.counts;
        *match finding {
            Finding::OnlyInFile => &mut c.only_in_file,
            Finding::OnlyHeld => &mut c.only_held,
            Finding::Differs => &mut c.differing,
            Finding::Invalid => &mut c.invalid,
        } += 1;
        let line = writeln!(
            self.list,
            "{}\t{local_id}\t{plan_type}\t{detail}",
            finding.as_str()
        );
        if let Err(e) = line {
            self.failed.get_or_insert(e);
        }
    }

    /// The counts and the list, read back from the start.
    fn finish(self) -> Result<(Counts, impl BufRead), ReconcileError> {
        if let Some(e) = self.failed {
            return Err(ReconcileError::Write(e));
        }
        let mut spooled = self
            .list
            .into_inner()
            .map_err(|e| ReconcileError::Write(e.into_error()))?;
        spooled
            .seek(SeekFrom::Start(0))
            .map_err(ReconcileError::Write)?;
        Ok((self.counts, BufReader::new(spooled)))
    }
}

fn unreadable(name: &str, p: &crate::parse::FileProblem) -> ReconcileError {
    ReconcileError::Unreadable(name.to_string(), format!("{}: {}", p.code, p.message))
}

/// Compares `file` with what `authority` holds. Writes counts then the list.
pub(crate) fn reconcile(
    db: Db<'_>,
    config: &Config,
    authority: &str,
    file: &Path,
    now: &Clock,
    csv: bool,
    out: &mut dyn Write,
) -> Result<Counts, ReconcileError> {
    let name = file.display().to_string();
    let source = File::open(file).map_err(|e| ReconcileError::Read(name.clone(), e))?;
    let (reader, prelude) = DocReader::open(source, &EXTRACT).map_err(|stop| match stop {
        Stop::Content(p) => unreadable(&name, &p),
        Stop::Io(e) => ReconcileError::Read(name.clone(), e),
    })?;
    let (header, _) = validate::extract_metadata(&prelude.metadata, authority, now.now());
    let rules = ExtractRules {
        extract_type: Some(validate::ExtractType::Full),
        reference_date: header.reference_date(now.today()),
        allow_test_numbers: config.hub.allow_test_nhs_numbers,
    };
    let mut tally = Tally::new(header.extract_type == Some(validate::ExtractType::Delta))?;
    let mut hashes: Vec<u128> = Vec::new();
    for item in reader {
        let raw = match item {
            Item::Record(raw) => raw,
            Item::Warning(_) => continue,
            Item::Fatal(p) => return Err(unreadable(&name, &p)),
            Item::Io(e) => return Err(ReconcileError::Read(name, e)),
        };
        let checked = rules.check(&raw);
        if let Some((local_id, plan)) = &checked.key {
            hashes.push(key_hash(local_id, *plan));
        }
        match checked.record.filter(|r| r.action == Action::Upsert) {
            Some(r) => compare(db, authority, &r, &mut tally)?,
            None => {
                let code = checked.problems.first().map_or(Code::Action, |p| p.code);
                let (local_id, plan) = checked
                    .key
                    .as_ref()
                    .map_or(("", ""), |(l, p)| (l.as_str(), p.as_str()));
                let detail = format!("line {} {code}", raw.line);
                tally.note(Finding::Invalid, local_id, plan, &detail);
            }
        }
    }
    hashes.sort_unstable();
    // Held and open, but not in the file: a FULL would end these.
    index::records::for_each_open(db, authority, rules.reference_date, |_, local_id, plan| {
        if let Some(p) = PlanType::parse(plan) {
            if hashes.binary_search(&key_hash(local_id, p)).is_err() {
                tally.note(Finding::OnlyHeld, local_id, plan, "");
            }
        }
    })?;
    let (counts, list) = tally.finish()?;
    write_report(authority, &name, &counts, list, csv, out).map_err(ReconcileError::Write)?;
    Ok(counts)
}

/// One valid line of the file against the record held under its key.
fn compare(
    db: Db<'_>,
    authority: &str,
    r: &ExtractRecord,
    tally: &mut Tally,
) -> Result<(), ReconcileError> {
    let plan = r.plan_type.as_str();
    match index::records::find_record(db, authority, &r.local_id, r.plan_type)? {
        None => tally.note(Finding::OnlyInFile, &r.local_id, plan, ""),
        Some(held) => {
            let fields = differing_fields(r, &held);
            if fields.is_empty() {
                tally.identical();
            } else {
                tally.note(Finding::Differs, &r.local_id, plan, &fields.join(","));
            }
        }
    }
    Ok(())
}

fn write_report(
    authority: &str,
    file: &str,
    c: &Counts,
    list: impl BufRead,
    csv: bool,
    out: &mut dyn Write,
) -> io::Result<()> {
    if csv {
        let mut w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(out);
        w.write_record(["kind", "local_id", "plan_type", "detail"])?;
        for (kind, n) in [
            ("IDENTICAL", c.identical),
            ("ONLY_IN_FILE", c.only_in_file),
            ("ONLY_HELD", c.only_held),
            ("DIFFERS", c.differing),
            ("INVALID", c.invalid),
        ] {
            w.write_record(["COUNT", kind, "", &n.to_string()])?;
        }
        for line in list.lines() {
            let line = line?;
            let parts: Vec<&str> = line.splitn(4, '\t').collect();
            w.write_record(&parts)?;
        }
        return w.flush();
    }
    writeln!(
        out,
        "Reconciliation of {file} against what is held for {authority}"
    )?;
    writeln!(out, "  identical     {:>8}", c.identical)?;
    writeln!(
        out,
        "  only in file  {:>8}   (held nowhere: a FULL would add them)",
        c.only_in_file
    )?;
    writeln!(
        out,
        "  only held     {:>8}   (open at the hub, not in the file: a FULL would end them)",
        c.only_held
    )?;
    writeln!(
        out,
        "  differing     {:>8}   (fields named below)",
        c.differing
    )?;
    writeln!(
        out,
        "  invalid lines {:>8}   (fail the extract rules; not compared)",
        c.invalid
    )?;
    writeln!(
        out,
        "{}",
        if c.matches() {
            "RESULT: the file matches what is held"
        } else {
            "RESULT: the file and the hub differ"
        }
    )?;
    let mut first = true;
    for line in list.lines() {
        let line = line?;
        if first {
            writeln!(out)?;
            writeln!(
                out,
                "{:<13} {:<30} {:<5} DETAIL",
                "KIND", "LOCAL_ID", "PLAN"
            )?;
            first = false;
        }
        let parts: Vec<&str> = line.splitn(4, '\t').collect();
        let get = |i: usize| parts.get(i).copied().unwrap_or("");
        writeln!(
            out,
            "{}",
            format!("{:<13} {:<30} {:<5} {}", get(0), get(1), get(2), get(3)).trim_end()
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::records::StoredRecord;
    use crate::nhs::NhsNumber;

    fn held() -> StoredRecord {
        StoredRecord {
            id: 1,
            nhs_number: "9990000018".into(),
            date_of_birth: Some("2015-03-01".into()),
            start_date: "2026-01-05".into(),
            end_date: None,
            ended_reason: None,
            team: Some("North Team".into()),
            office_hours_phone: Some("01632 960001".into()),
            out_of_hours_phone: None,
            email: None,
        }
    }

    fn record() -> ExtractRecord {
        let d = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok();
        ExtractRecord {
            action: Action::Upsert,
            local_id: "C1".into(),
            plan_type: PlanType::Cpp,
            nhs_number: NhsNumber::parse("9990000018").ok(),
            date_of_birth: d("2015-03-01"),
            start_date: d("2026-01-05"),
            end_date: None,
            team: Some("North Team".into()),
            office_hours_phone: Some("01632 960001".into()),
            out_of_hours_phone: None,
            email: None,
        }
    }

    #[test]
    fn the_same_record_differs_in_nothing() {
        assert!(differing_fields(&record(), &held()).is_empty());
    }

    #[test]
    fn each_changed_field_is_named_once_in_order() {
        let mut r = record();
        r.end_date = chrono::NaiveDate::from_ymd_opt(2026, 11, 1);
        r.team = Some("South Team".into());
        r.email = Some("duty@example.org".into());
        assert_eq!(differing_fields(&r, &held()), ["end_date", "team", "email"]);
    }

    #[test]
    fn the_tally_counts_each_finding_and_the_list_keeps_the_order() {
        let mut t = Tally::new(false).unwrap();
        t.identical();
        t.note(Finding::OnlyInFile, "C2", "CPP", "");
        t.note(Finding::Differs, "C3", "LAC", "team");
        t.note(Finding::OnlyHeld, "C4", "CPP", "");
        t.note(Finding::Invalid, "", "", "line 7 NHS_CHECK_DIGIT");
        let (counts, list) = t.finish().unwrap();
        assert_eq!(
            (
                counts.identical,
                counts.only_in_file,
                counts.differing,
                counts.only_held,
                counts.invalid
            ),
            (1, 1, 1, 1, 1)
        );
        assert!(!counts.matches());
        let mut csv = Vec::new();
        write_report("LA204", "f.csv", &counts, list, true, &mut csv).unwrap();
        let csv = String::from_utf8(csv).unwrap();
        assert!(
            csv.ends_with(
                "ONLY_IN_FILE,C2,CPP,\nDIFFERS,C3,LAC,team\nONLY_HELD,C4,CPP,\nINVALID,,,line 7 NHS_CHECK_DIGIT\n"
            ),
            "{csv}"
        );
        assert!(csv.starts_with("kind,local_id,plan_type,detail\nCOUNT,IDENTICAL,,1\n"));
    }

    #[test]
    fn nothing_found_reads_as_a_match() {
        let mut t = Tally::new(false).unwrap();
        t.identical();
        let (counts, list) = t.finish().unwrap();
        assert!(counts.matches());
        let mut text = Vec::new();
        write_report("LA204", "f.csv", &counts, list, false, &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains("RESULT: the file matches what is held"),
            "{text}"
        );
        assert!(
            !text.contains("KIND"),
            "no list header without a list: {text}"
        );
    }
}
