//! Applying extracts: the decision order and apply rules of SPEC §4.1 and §5.1.

use crate::harness::*;

#[test]
fn full_fixture_is_accepted_and_held() {
    let hub = Hub::new();
    hub.drop("X26LA204", "nightly.csv", &fixture("extract_full.csv"));
    hub.process(0);
    let r = hub.receipt("X26LA204", "nightly.csv");
    assert_eq!(
        (r.meta("status"), r.meta("records"), r.meta("applied")),
        ("ACCEPTED", "4", "4")
    );
    let h = hub.holdings("X26LA204");
    assert_eq!(h.rows.len(), 4);
    let ended = h.row("local_id", "C-1003");
    assert_eq!(
        (
            field(ended, "status"),
            field(ended, "ended_reason"),
            field(ended, "purge_after")
        ),
        ("ENDED", "AUTHORITY", "2027-11-01")
    );
    assert_eq!(
        field(h.row("local_id", "C-1002"), "nhs_number"),
        "9990010013"
    );
}

#[test]
fn xml_and_csv_forms_give_the_same_holdings() {
    let csv = Hub::new();
    csv.drop("X26LA204", "a.csv", &fixture("extract_full.csv"));
    csv.process(0);
    let xml = Hub::new();
    xml.drop("X26LA204", "a.xml", &fixture("extract_full.xml"));
    xml.process(0);
    assert_eq!(csv.holdings("X26LA204").rows, xml.holdings("X26LA204").rows);
}

#[test]
fn delta_upserts_ends_and_deletes() {
    let hub = Hub::new();
    hub.drop("X26LA204", "full.csv", &fixture("extract_full.csv"));
    hub.drop("X26LA204", "delta.csv", &fixture("extract_delta.csv"));
    hub.process(0);
    assert_eq!(
        hub.receipt("X26LA204", "delta.csv").meta("status"),
        "ACCEPTED"
    );
    let h = hub.holdings("X26LA204");
    let ids: Vec<&str> = h.rows.iter().map(|r| field(r, "local_id")).collect();
    assert_eq!(
        ids,
        ["C-1001", "C-1002", "C-1003", "C-1004"],
        "M-2001 deleted at once, C-1004 added"
    );
    assert_eq!(field(h.row("local_id", "C-1002"), "end_date"), "2026-11-20");
    assert_eq!(
        hub.sql("SELECT COUNT(*) FROM removed")[0][0],
        "1",
        "a DELETE leaves a tombstone for alert REMOVE"
    );
}

#[test]
fn reject_fraction_over_limit_rejects_the_whole_file_but_lists_every_bad_line() {
    let hub = Hub::new();
    hub.drop("X26LA204", "bad.csv", &fixture("extract_bad_lines.csv"));
    hub.process(1);
    let r = hub.receipt("X26LA204", "bad.csv");
    assert_eq!(
        (r.meta("status"), r.meta("applied"), r.meta("rejected")),
        ("REJECTED", "0", "7")
    );
    for code in [
        "REJECT_FRACTION",
        "UNKNOWN_COLUMN",
        "NHS_CHECK_DIGIT",
        "NHS_FORMAT",
        "PLAN_TYPE",
        "DOB_MISSING",
        "END_BEFORE_START",
        "UNKNOWN_RECORD",
        "OVER_18",
    ] {
        assert!(
            r.codes().iter().any(|c| c == code),
            "{code} missing from {}",
            r.text
        );
    }
    assert!(
        !r.text.contains("9990010015"),
        "an NHS number in the receipt"
    );
    assert!(hub
        .names("X26LA204", "failed")
        .contains(&"bad.csv".to_string()));
    assert!(hub.holdings("X26LA204").rows.is_empty(), "nothing applied");
}

#[test]
fn full_ends_absent_records_but_a_rejected_readable_line_still_counts_as_mentioned() {
    let hub = Hub::new();
    let rows: Vec<String> = (1..=4).map(|i| child(&format!("K{i}"), i)).collect();
    hub.drop(
        "X26LA204",
        "one.csv",
        &extract("FULL", "2026-11-21T01:00:00Z", &rows),
    );
    hub.process(0);
    // K2 has a typo in its NHS number: rejected, but mentioned; K4 is left out.
    let second = [
        rows[0].clone(),
        format!("UPSERT,K2,{}0,CPP,2016-04-01,2026-01-10,", &nhs(2)[..9]),
        rows[2].clone(),
    ];
    hub.drop(
        "X26LA204",
        "two.csv",
        &extract("FULL", "2026-11-22T01:00:00Z", &second),
    );
    hub.process(0);
    assert_eq!(hub.receipt("X26LA204", "two.csv").meta("status"), "PARTIAL");
    let h = hub.holdings("X26LA204");
    assert_eq!(
        field(h.row("local_id", "K2"), "status"),
        "ACTIVE",
        "a typo never ends a plan"
    );
    let k4 = h.row("local_id", "K4");
    assert_eq!(
        (
            field(k4, "status"),
            field(k4, "ended_reason"),
            field(k4, "end_date")
        ),
        ("ENDED", "ABSENT_FROM_FULL", "2026-11-22")
    );
}

#[test]
fn a_record_twice_in_one_file_is_rejected_at_every_occurrence() {
    let hub = Hub::new();
    let rows = [
        child("D1", 1),
        child("D2", 2),
        child("D1", 3),
        child("D3", 4),
    ];
    hub.drop(
        "X26LA204",
        "dup.csv",
        &extract("DELTA", "2026-11-21T01:00:00Z", &rows),
    );
    hub.process(0);
    let r = hub.receipt("X26LA204", "dup.csv");
    assert_eq!(
        (r.meta("status"), r.meta("applied"), r.meta("rejected")),
        ("PARTIAL", "2", "2")
    );
    let lines: Vec<&str> = r
        .rows
        .iter()
        .filter(|row| field(row, "code") == "DUPLICATE_RECORD")
        .map(|row| field(row, "line"))
        .collect();
    assert_eq!(lines, ["3", "5"]);
    let ids: Vec<String> = hub
        .holdings("X26LA204")
        .rows
        .iter()
        .map(|r| field(r, "local_id").to_string())
        .collect();
    assert_eq!(ids, ["D2", "D3"]);
}

#[test]
fn upsert_without_end_date_reopens_an_ended_record() {
    let hub = Hub::new();
    let ended = format!("UPSERT,R1,{},CPP,2016-04-01,2026-01-10,2026-11-01", nhs(1));
    hub.drop(
        "X26LA204",
        "a.csv",
        &extract("DELTA", "2026-11-21T01:00:00Z", &[ended]),
    );
    hub.drop(
        "X26LA204",
        "b.csv",
        &extract("DELTA", "2026-11-21T02:00:00Z", &[child("R1", 1)]),
    );
    hub.process(0);
    let h = hub.holdings("X26LA204");
    let r1 = h.row("local_id", "R1");
    assert_eq!(
        (
            field(r1, "status"),
            field(r1, "end_date"),
            field(r1, "ended_reason")
        ),
        ("ACTIVE", "", "")
    );
}

#[test]
fn unchanged_rows_are_not_written_again() {
    let hub = Hub::new();
    let rows: Vec<String> = (1..=3).map(|i| child(&format!("U{i}"), i)).collect();
    hub.drop(
        "X26LA204",
        "a.csv",
        &extract("FULL", "2026-11-21T01:00:00Z", &rows),
    );
    hub.process(0);
    let before = hub.sql("SELECT value FROM counters WHERE name = 'change_seq'");
    hub.drop(
        "X26LA204",
        "b.csv",
        &extract("FULL", "2026-11-22T01:00:00Z", &rows),
    );
    hub.process(0);
    assert_eq!(hub.receipt("X26LA204", "b.csv").meta("status"), "ACCEPTED");
    assert_eq!(
        hub.sql("SELECT value FROM counters WHERE name = 'change_seq'"),
        before,
        "an unchanged night changed records"
    );
}

#[test]
fn sequence_gap_is_a_warning_only() {
    let hub = Hub::new();
    let mut a =
        String::from_utf8(extract("DELTA", "2026-11-21T01:00:00Z", &[child("S1", 1)])).unwrap();
    a = a.replacen("records=1", "sequence=7 records=1", 1);
    let mut b =
        String::from_utf8(extract("DELTA", "2026-11-21T02:00:00Z", &[child("S2", 2)])).unwrap();
    b = b.replacen("records=1", "sequence=9 records=1", 1);
    hub.drop("X26LA204", "a.csv", a.as_bytes());
    hub.drop("X26LA204", "b.csv", b.as_bytes());
    hub.process(0);
    let r = hub.receipt("X26LA204", "b.csv");
    assert_eq!((r.meta("status"), r.meta("warnings")), ("ACCEPTED", "1"));
    assert_eq!(field(r.row("code", "SEQUENCE_GAP"), "severity"), "WARNING");
}

#[test]
fn test_numbers_are_refused_when_not_allowed() {
    let hub = Hub::with("allow_test_nhs_numbers = false");
    hub.write_config();
    let text = std::fs::read_to_string(hub.config()).unwrap().replacen(
        "allow_test_nhs_numbers = true\n",
        "",
        1,
    );
    std::fs::write(hub.config(), text).unwrap();
    hub.drop(
        "X26LA204",
        "a.csv",
        &extract(
            "DELTA",
            "2026-11-21T01:00:00Z",
            &[child("T1", 1), child("T2", 2)],
        ),
    );
    hub.process(1);
    let r = hub.receipt("X26LA204", "a.csv");
    assert_eq!(r.meta("status"), "REJECTED");
    assert_eq!(
        r.codes().iter().filter(|c| *c == "NHS_TEST_NUMBER").count(),
        2
    );
}

#[test]
fn extracted_at_in_the_future_is_a_metadata_error() {
    let hub = Hub::new();
    hub.drop(
        "X26LA204",
        "a.csv",
        &extract("DELTA", "2026-11-23T01:00:00Z", &[child("F1", 1)]),
    );
    hub.process(1);
    let r = hub.receipt("X26LA204", "a.csv");
    assert_eq!(r.meta("status"), "REJECTED");
    assert_eq!(field(r.row("code", "METADATA"), "field"), "extracted_at");
}

#[test]
fn validate_answers_like_process_and_changes_nothing() {
    let hub = Hub::new();
    let path = hub.path().join("check.csv");
    std::fs::write(&path, fixture("extract_bad_lines.csv")).unwrap();
    let out = hub.run(&["validate", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let printed = Doc::parse("stdout", &out.stdout);
    assert_eq!(printed.meta("status"), "REJECTED");
    assert!(printed.codes().contains(&"UNKNOWN_RECORD".to_string()));
    assert!(!hub.database().exists(), "validate created the database");
    let xml = hub.run(&["validate", path.to_str().unwrap(), "--xml"]);
    assert!(String::from_utf8_lossy(&xml.stdout).contains("<CpisReceipt xmlns=\"urn:cpis-hub:v1\""));
}

#[test]
fn validate_of_a_file_naming_no_partner_is_rejected_partner_mismatch() {
    let hub = Hub::new();
    let path = hub.path().join("other.csv");
    let text = String::from_utf8(fixture("extract_full.csv"))
        .unwrap()
        .replace("LA204", "LA999");
    std::fs::write(&path, text).unwrap();
    let out = hub.run(&["validate", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let printed = Doc::parse("stdout", &out.stdout);
    assert_eq!(
        (printed.meta("status"), printed.codes()[0].as_str()),
        ("REJECTED", "PARTNER_MISMATCH")
    );
}

#[test]
fn config_errors_name_the_key_and_exit_2() {
    let hub = Hub::with("alerts_every = \"soon\"");
    let out = hub.run(&["process"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("hub.alerts_every"));
}

#[test]
fn age_18_ends_the_plan_on_the_birthday_at_the_next_pass() {
    let mut hub = Hub::new();
    let teen = "UPSERT,T1,9990010005,LAC,2008-12-01,2026-01-10,".to_string();
    hub.drop(
        "X26LA204",
        "a.csv",
        &extract("DELTA", "2026-11-21T01:00:00Z", &[teen]),
    );
    hub.process(0);
    hub.now = "2026-12-03T10:00:00Z".into();
    let h = hub.holdings("X26LA204");
    let t1 = h.row("local_id", "T1");
    assert_eq!(
        (
            field(t1, "status"),
            field(t1, "ended_reason"),
            field(t1, "end_date")
        ),
        ("ENDED", "AGE_18", "2026-12-01")
    );
}

#[test]
fn retention_purges_and_leaves_only_counts_in_the_audit_log() {
    let mut hub = Hub::new();
    hub.now = "2025-11-10T10:00:00Z".into(); // within the retention of the ending
    let ended = "UPSERT,P1,9990010005,CPP,2016-04-01,2025-01-10,2025-11-01".to_string();
    hub.drop(
        "X26LA204",
        "a.csv",
        &extract("DELTA", "2025-11-09T01:00:00Z", &[ended]),
    );
    hub.process(0);
    assert_eq!(hub.holdings("X26LA204").rows.len(), 1);
    hub.now = "2026-11-23T10:00:00Z".into(); // end 2025-11-01 + 365 days = 2026-11-01: already due
    assert!(hub.holdings("X26LA204").rows.is_empty());
    let audit = hub.sql("SELECT detail FROM audit WHERE action = 'purge'");
    assert_eq!(audit.len(), 1);
    assert!(
        audit[0][0].contains("\"purged\":1") && !audit[0][0].contains("9990010005"),
        "{audit:?}"
    );
}

/// SPEC §5.1: a record sent after its retention ended is not held (again): counted,
/// not applied, a WARNING EXPIRED. Regression: the pass purged it, then the file
/// re-inserted it, and holdings and the sites' alerts carried it past its purge date.
#[test]
fn a_record_sent_past_its_retention_is_not_held_again() {
    let mut hub = Hub::new();
    hub.now = "2025-11-25T10:00:00Z".into();
    let ended = format!("UPSERT,E1,{},CPP,2016-04-01,2025-01-10,2025-11-20", nhs(1));
    let open = format!("UPSERT,K1,{},CPP,2016-04-01,2025-01-10,", nhs(2));
    hub.drop(
        "X26LA204",
        "a.csv",
        &extract(
            "FULL",
            "2025-11-25T01:00:00Z",
            &[ended.clone(), open.clone()],
        ),
    );
    hub.process(0);
    assert_eq!(hub.holdings("X26LA204").rows.len(), 2);
    // A year on: the pass purges E1 (retention ended 2026-11-20); the night's FULL
    // sends it again, unchanged.
    hub.now = NOW.into();
    hub.drop(
        "X26LA204",
        "b.csv",
        &extract("FULL", "2026-11-22T01:00:00Z", &[ended, open]),
    );
    let out = hub.run(&["process", "--emit", "alerts"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = hub.receipt("X26LA204", "b.csv");
    assert_eq!(
        (
            r.meta("status"),
            r.meta("records"),
            r.meta("applied"),
            r.meta("warnings")
        ),
        ("ACCEPTED", "2", "1", "1")
    );
    let row = r.row("ref", "E1");
    assert_eq!(
        (
            field(row, "severity"),
            field(row, "code"),
            field(row, "field")
        ),
        ("WARNING", "EXPIRED", "end_date")
    );
    let held = hub.holdings("X26LA204");
    assert_eq!(held.rows.len(), 1, "{}", held.text);
    assert_eq!(field(&held.rows[0], "local_id"), "K1");
    let (_, alerts) = hub.out("X26R0A01", "ALERTS").pop().unwrap();
    assert!(
        !String::from_utf8_lossy(&alerts).contains(&nhs(1)),
        "a site was sent the expired record"
    );
}

/// Runs the same nights on two hubs, one reading the authority's held records into
/// memory (the normal path) and one reading each record from the index
/// (`held_in_memory:0`), and checks they end byte-identical: receipts, holdings, rows.
#[test]
fn held_records_in_memory_and_read_per_line_agree() {
    let c = |id: &str, n: u32, start: &str, end: &str| {
        format!("UPSERT,{id},{},CPP,2016-04-01,{start},{end}", nhs(n))
    };
    let nights: Vec<(&str, Vec<u8>)> = vec![
        (
            "a.csv",
            extract(
                "FULL",
                "2026-11-19T01:00:00Z",
                &(1..=8)
                    .map(|i| c(&format!("C{i}"), i, "2026-01-10", ""))
                    .collect::<Vec<_>>(),
            ),
        ),
        (
            "b.csv",
            extract(
                "FULL",
                "2026-11-20T01:00:00Z",
                &[
                    c("C1", 1, "2026-01-10", ""),
                    c("C2", 2, "2026-02-11", ""),
                    c("C4", 4, "2026-01-10", "2026-11-01"),
                    c("C5", 5, "2026-01-10", ""),
                    c("C6", 6, "2026-01-10", ""),
                    c("C7", 7, "2026-01-10", ""),
                    c("C8", 8, "2026-01-10", ""),
                    c("C9", 9, "2026-01-10", ""),
                    c("C10", 10, "2026-01-10", ""),
                    c("C10", 11, "2026-01-10", ""),
                    "UPSERT,C12,9990000001,CPP,2016-04-01,2026-01-10,".into(),
                ],
            ),
        ),
        ("c.csv", {
            let mut text = String::from("#cpis-extract v1 authority=LA204 type=DELTA extracted_at=2026-11-21T01:00:00Z records=4\naction,local_id,nhs_number,plan_type,date_of_birth,start_date,end_date\n");
            text.push_str("DELETE,C1,,CPP,,,\nDELETE,C99,,CPP,,,\n");
            text.push_str(&(c("C3", 3, "2026-01-10", "") + "\n"));
            text.push_str(&(c("C4", 4, "2026-01-10", "2026-11-01") + "\n"));
            text.into_bytes()
        }),
        (
            "d.csv",
            extract(
                "FULL",
                "2026-11-22T01:00:00Z",
                &[
                    c("C2", 2, "2026-02-11", ""),
                    c("C3", 3, "2026-01-10", ""),
                    c("C4", 4, "2026-01-10", "2026-11-01"),
                    c("C5", 5, "2026-01-10", ""),
                    c("C6", 6, "2026-01-10", "2026-11-20"),
                    c("C7", 7, "2026-01-10", ""),
                    c("C8", 8, "2026-01-10", ""),
                    c("C9", 9, "2026-01-10", ""),
                ],
            ),
        ),
    ];
    let memory = Hub::new();
    let per_line = Hub::new();
    for (name, data) in &nights {
        for (hub, env) in [(&memory, ""), (&per_line, "held_in_memory:0")] {
            hub.drop("X26LA204", name, data);
            hub.run_env(&["process"], &[("CPIS_HUB_FAULT", env)]);
        }
        assert_eq!(
            memory.out("X26LA204", "RECEIPT"),
            per_line.out("X26LA204", "RECEIPT"),
            "after {name}"
        );
    }
    let rows = "SELECT id, local_id, plan_type, nhs_number, start_date, end_date, ended_reason, created_seq, change_seq, row_hash FROM records ORDER BY id";
    assert_eq!(memory.sql(rows), per_line.sql(rows));
    assert_eq!(
        memory.holdings("X26LA204").rows,
        per_line.holdings("X26LA204").rows
    );
    // And the nights did what they say.
    let r = memory.receipt("X26LA204", "b.csv");
    assert_eq!(r.meta("status"), "PARTIAL");
    assert_eq!(
        r.codes(),
        ["DUPLICATE_RECORD", "DUPLICATE_RECORD", "NHS_CHECK_DIGIT"]
    );
    let c = memory.receipt("X26LA204", "c.csv");
    assert_eq!(c.codes(), ["UNKNOWN_RECORD"]);
    let ended = |id: &str| {
        memory.sql(&format!(
            "SELECT coalesce(end_date, ''), coalesce(ended_reason, '') FROM records WHERE local_id = '{id}'"
        ))
    };
    assert_eq!(ended("C3"), [["", ""]], "reopened after ABSENT_FROM_FULL");
    assert_eq!(ended("C6"), [["2026-11-20", "AUTHORITY"]]);
    assert!(ended("C1").is_empty(), "deleted");
    // A night that changes nothing writes nothing.
    let seq = memory.sql("SELECT value FROM counters WHERE name = 'change_seq'");
    let d2 = String::from_utf8(nights[3].1.clone())
        .unwrap()
        .replace("2026-11-22T01:00:00Z", "2026-11-22T02:00:00Z");
    memory.drop("X26LA204", "e.csv", d2.as_bytes());
    memory.process(0);
    assert_eq!(
        memory.sql("SELECT value FROM counters WHERE name = 'change_seq'"),
        seq
    );
}

/// The age-18 scan is skipped until the earliest due birthday it knows of; a plan
/// the authority ended early and later reopens must bring that day forward again.
#[test]
fn age_18_still_ends_a_plan_reopened_after_the_last_scan() {
    let mut hub = Hub::new();
    let ended = "UPSERT,T2,9990010005,LAC,2008-12-01,2026-01-10,2026-03-01".to_string();
    hub.drop(
        "X26LA204",
        "a.csv",
        &extract("DELTA", "2026-11-21T01:00:00Z", &[ended]),
    );
    hub.process(0);
    hub.now = "2026-11-23T10:00:00Z".into();
    hub.process(0); // a pass that scans: nothing is due any more
    let reopened = "UPSERT,T2,9990010005,LAC,2008-12-01,2026-01-10,".to_string();
    hub.drop(
        "X26LA204",
        "b.csv",
        &extract("DELTA", "2026-11-23T01:00:00Z", &[reopened]),
    );
    hub.process(0);
    hub.now = "2026-12-02T10:00:00Z".into();
    let h = hub.holdings("X26LA204");
    let t2 = h.row("local_id", "T2");
    assert_eq!(
        (field(t2, "ended_reason"), field(t2, "end_date")),
        ("AGE_18", "2026-12-01")
    );
}

/// Memory must not grow with the file: 16 bytes per record for the FULL rule and
/// duplicates, plus the authority's records held before the file. A 400,000-record
/// FULL, into an empty index and then again onto itself, stays well inside the
/// 64 MiB budget (a map of every inserted row, the bug this guards, needed ~110 MiB).
#[test]
fn a_large_full_is_applied_and_reapplied_in_bounded_memory() {
    let hub = Hub::new();
    let mut text = String::from(
        "#cpis-extract v1 authority=LA204 type=FULL extracted_at=2026-11-21T01:00:00Z records=400000\naction,local_id,nhs_number,plan_type,date_of_birth,start_date,end_date\n",
    );
    // Distinct local ids; NHS numbers may repeat (siblings share nothing, but the
    // rules allow it), which keeps generation cheap.
    for i in 0..400_000u32 {
        text.push_str(&format!(
            "UPSERT,L{i:07},{},CPP,2016-04-01,2026-01-10,\n",
            nhs(i % 5000)
        ));
    }
    hub.drop("X26LA204", "big.csv", text.as_bytes());
    let (code, first) = process_measured(&hub);
    assert_eq!(code, 0);
    let again = text.replace("2026-11-21T01:00:00Z", "2026-11-21T02:00:00Z");
    hub.drop("X26LA204", "again.csv", again.as_bytes());
    let (code, second) = process_measured(&hub);
    assert_eq!(code, 0);
    assert_eq!(
        hub.receipt("X26LA204", "again.csv").meta("applied"),
        "400000"
    );
    let peak_mib = first.max(second) / 1024;
    assert!(
        peak_mib < 64,
        "peak RSS {peak_mib} MiB for a 400,000-record FULL"
    );
}

/// A file read three times — once to find a record twice, once to find that too
/// many lines are invalid, once to answer without applying — leaves nothing applied
/// and lists every problem exactly once.
#[test]
fn a_file_read_three_times_applies_nothing_and_lists_each_problem_once() {
    let hub = Hub::new();
    let rows = vec![
        child("A1", 1),
        child("B1", 2),
        child("B1", 3),
        "UPSERT,X1,9990000001,CPP,2016-04-01,2026-01-10,".to_string(),
        "UPSERT,X2,9990000001,CPP,2016-04-01,2026-01-10,".to_string(),
        "UPSERT,X3,9990000001,CPP,2016-04-01,2026-01-10,".to_string(),
    ];
    hub.drop(
        "X26LA204",
        "a.csv",
        &extract("FULL", "2026-11-21T01:00:00Z", &rows),
    );
    hub.process(1);
    let r = hub.receipt("X26LA204", "a.csv");
    assert_eq!(r.meta("status"), "REJECTED");
    let mut codes = r.codes();
    codes.sort();
    assert_eq!(
        codes,
        [
            "DUPLICATE_RECORD",
            "DUPLICATE_RECORD",
            "NHS_CHECK_DIGIT",
            "NHS_CHECK_DIGIT",
            "NHS_CHECK_DIGIT",
            "REJECT_FRACTION"
        ]
    );
    assert_eq!(hub.sql("SELECT COUNT(*) FROM records"), [["0"]]);
    assert_eq!(
        hub.sql("SELECT COUNT(*) FROM messages"),
        [["1"]],
        "one ledger row"
    );
}

/// The purge reads the table only once an ending can be old enough; an ending the
/// hub sets itself (ABSENT_FROM_FULL) after the last full read must bring that day
/// forward, or the record would outlive its retention.
#[test]
fn a_plan_the_hub_ended_is_purged_when_its_retention_ends() {
    let mut hub = Hub::with("mass_end_min = 100");
    hub.drop(
        "X26LA204",
        "a.csv",
        &extract(
            "FULL",
            "2026-11-21T01:00:00Z",
            &[child("A1", 1), child("B1", 2)],
        ),
    );
    hub.process(0);
    hub.now = "2026-11-23T10:00:00Z".into();
    hub.drop(
        "X26LA204",
        "b.csv",
        &extract("FULL", "2026-11-23T01:00:00Z", &[child("A1", 1)]),
    );
    hub.process(0);
    assert_eq!(
        hub.sql("SELECT end_date, ended_reason FROM records WHERE local_id = 'B1'"),
        [["2026-11-23", "ABSENT_FROM_FULL"]]
    );
    hub.now = "2027-11-22T10:00:00Z".into(); // 364 days on: kept
    hub.process(0);
    assert_eq!(
        hub.sql("SELECT COUNT(*) FROM records WHERE local_id = 'B1'"),
        [["1"]]
    );
    hub.now = "2027-11-23T10:00:00Z".into(); // 365 days on: purged
    hub.process(0);
    assert_eq!(
        hub.sql("SELECT COUNT(*) FROM records WHERE local_id = 'B1'"),
        [["0"]]
    );
}
