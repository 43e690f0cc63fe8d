//! The NHS side (SPEC §3, §4.2–4.4, §5.2): attendance events to access
//! notifications, NHS number status to inactive notices, alert extracts.

use std::collections::BTreeMap;
use std::fs;

use crate::crash::snapshot;
use crate::harness::*;

/// LA204 holds the fixture's children (CSV); LA317 holds the same children under
/// its own local ids (XML over MESH).
fn held_hub() -> Hub {
    let hub = Hub::new();
    hub.drop("X26LA204", "nightly.csv", &fixture("extract_full.csv"));
    let la317 = String::from_utf8(fixture("mesh/LA317MSG0001.dat"))
        .unwrap()
        .replace("C-1", "K-1")
        .replace("M-2", "N-2");
    hub.drop_mesh(
        "X26LA317",
        "LA317MSG0001",
        la317.as_bytes(),
        &fixture("mesh/LA317MSG0001.ctl"),
    );
    hub.process(0);
    hub
}

/// Parses an XML outbound file into (attributes, rows of column -> text).
fn xml_doc(data: &[u8]) -> (BTreeMap<String, String>, Vec<BTreeMap<String, String>>) {
    let text = String::from_utf8(data.to_vec()).unwrap();
    let attr_re = |s: &str| -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        for part in s.split("\" ") {
            if let Some((k, v)) = part.trim().split_once("=\"") {
                m.insert(k.to_string(), v.trim_end_matches('"').to_string());
            }
        }
        m
    };
    let root_start = text.find("<Cpis").unwrap();
    let root_end = text[root_start..].find('>').unwrap() + root_start;
    let attrs = attr_re(&text[root_start..root_end]);
    let mut rows = Vec::new();
    for rec in text.split("<Record>").skip(1) {
        let rec = rec.split("</Record>").next().unwrap();
        let mut row = BTreeMap::new();
        let mut rest = rec;
        while let Some(open) = rest.find('<') {
            let close = rest[open..].find('>').unwrap() + open;
            let tag = &rest[open + 1..close];
            let end_tag = format!("</{tag}>");
            let end = rest.find(&end_tag).unwrap();
            row.insert(tag.to_string(), rest[close + 1..end].to_string());
            rest = &rest[end + end_tag.len()..];
        }
        rows.push(row);
    }
    (attrs, rows)
}

#[test]
fn attendance_notifies_each_holding_authority_of_its_own_record_only() {
    let hub = held_hub();
    hub.drop("X26R0A01", "att.csv", &fixture("attendance.csv"));
    hub.process(0);
    let r = hub.receipt("X26R0A01", "att.csv");
    assert_eq!(
        (
            r.meta("site"),
            r.meta("status"),
            r.meta("applied"),
            r.meta("rejected")
        ),
        ("R0A", "PARTIAL", "4", "2")
    );
    assert_eq!(r.codes(), ["SITE_CODE", "SETTING"]);

    let la204 = hub.out("X26LA204", "ACCESS");
    assert_eq!(
        la204.len(),
        1,
        "one ACCESS file per authority per attendance file"
    );
    let access = Doc::parse(&la204[0].0, &la204[0].1);
    assert_eq!(
        (access.meta("authority"), access.meta("records")),
        ("LA204", "2")
    );
    let ids: Vec<&str> = access.rows.iter().map(|r| field(r, "local_id")).collect();
    assert_eq!(
        ids,
        ["C-1001", "M-2001"],
        "EV-0003 is a silent read, EV-0004 is not held"
    );
    assert!(
        !access.text.contains("K-1001"),
        "LA204 sees LA317's local_id"
    );
    let ed = access.row("local_id", "C-1001");
    assert_eq!(
        (
            field(ed, "plan_status"),
            field(ed, "site_ods_code"),
            field(ed, "site_name"),
            field(ed, "user_name"),
            field(ed, "accessed_at")
        ),
        (
            "ACTIVE",
            "R0A02",
            "Example ED",
            "Dr Ada Example",
            "2026-11-21T07:15:00Z"
        )
    );
    assert_eq!(
        field(access.row("local_id", "M-2001"), "site_name"),
        "Example University Hospitals NHS FT",
        "defaults to the configured name"
    );

    let la317 = hub.out("X26LA317", "ACCESS");
    assert!(la317[0].0.ends_with(".dat"));
    let (attrs, rows) = xml_doc(&la317[0].1);
    assert_eq!(attrs["authority"], "LA317");
    let ids: Vec<&str> = rows.iter().map(|r| r["LocalId"].as_str()).collect();
    assert_eq!(ids, ["K-1001", "N-2001"]);
    assert!(!String::from_utf8_lossy(&la317[0].1).contains("C-1001"));

    let h = hub.holdings("X26LA204");
    assert_eq!(field(h.row("local_id", "C-1001"), "accesses"), "1");
    assert_eq!(
        field(h.row("local_id", "C-1001"), "last_accessed_at"),
        "2026-11-21T07:15:00Z"
    );
    assert_eq!(
        field(h.row("local_id", "C-1002"), "accesses"),
        "0",
        "a silent read is not in the history"
    );
    let audit = hub.sql("SELECT detail FROM audit WHERE action = 'attendance'");
    assert!(
        audit[0][0].contains("\"silent_reads\":1") && audit[0][0].contains("\"not_held\":1"),
        "{audit:?}"
    );
    assert!(
        !audit[0][0].contains("9990"),
        "an NHS number in the audit of an attendance file"
    );
    assert!(hub.out("X26R0B01", "ACCESS").is_empty() && hub.out("X26PDS01", "ACCESS").is_empty());
}

#[test]
fn an_event_is_notified_once_across_files() {
    let hub = held_hub();
    hub.drop("X26R0A01", "a.csv", &fixture("attendance.csv"));
    hub.process(0);
    let again = String::from_utf8(fixture("attendance.csv"))
        .unwrap()
        .replace(
            "sent_at=2026-11-21T08:00:00Z",
            "sent_at=2026-11-21T08:05:00Z",
        );
    hub.drop("X26R0A01", "b.csv", again.as_bytes());
    hub.process(0);
    let r = hub.receipt("X26R0A01", "b.csv");
    assert_eq!(
        (r.meta("status"), r.meta("applied"), r.meta("warnings")),
        ("PARTIAL", "0", "4")
    );
    assert_eq!(
        r.codes().iter().filter(|c| *c == "DUPLICATE_EVENT").count(),
        4
    );
    assert_eq!(
        hub.out("X26LA204", "ACCESS").len(),
        1,
        "nothing notified twice"
    );
}

#[test]
fn ended_records_notify_ended_and_the_history_keeps_25() {
    let hub = held_hub();
    let mut text = String::from("#cpis-attendance v1 site=R0A sent_at=2026-11-22T09:00:00Z records=31\nevent_id,nhs_number,accessed_at,site_ods_code,setting,user_name,user_role\n");
    for i in 0..30 {
        text.push_str(&format!(
            "E{i:02},9990010005,2026-11-21T{:02}:{:02}:00Z,R0A02,ED,Dr Example,Registrar\n",
            8 + i / 60,
            i % 60
        ));
    }
    text.push_str("E99,9990010048,2026-11-21T09:00:00Z,R0A66,MIU,Dr Example,Registrar\n");
    hub.drop("X26R0A01", "many.csv", text.as_bytes());
    hub.process(0);
    let h = hub.holdings("X26LA204");
    let c1 = h.row("local_id", "C-1001");
    assert_eq!(
        (field(c1, "accesses"), field(c1, "last_accessed_at")),
        ("25", "2026-11-21T08:29:00Z")
    );
    let access = Doc::parse("a", &hub.out("X26LA204", "ACCESS")[0].1);
    assert_eq!(
        access.rows.len(),
        31,
        "every event is notified; only the history is trimmed"
    );
    let ended = access.row("local_id", "C-1003");
    assert_eq!(
        (field(ended, "plan_status"), field(ended, "plan_end_date")),
        ("ENDED", "2026-11-01")
    );
}

#[test]
fn attendance_for_another_site_is_partner_mismatch() {
    let hub = held_hub();
    let text = String::from_utf8(fixture("attendance.csv"))
        .unwrap()
        .replace("site=R0A", "site=R0B");
    hub.drop("X26R0A01", "other.csv", text.as_bytes());
    hub.process(1);
    let r = hub.receipt("X26R0A01", "other.csv");
    assert_eq!(r.meta("status"), "REJECTED");
    assert!(r.codes().contains(&"PARTNER_MISMATCH".to_string()));
    assert!(hub.out("X26LA204", "ACCESS").is_empty());
}

#[test]
fn a_crash_at_any_step_of_an_attendance_file_sends_each_notification_once() {
    let scenario = |fault: Option<&str>| {
        let hub = held_hub();
        hub.drop("X26R0A01", "att.xml", &fixture("attendance.xml"));
        if let Some(point) = fault {
            let out = hub.run_env(&["process"], &[("CPIS_HUB_FAULT", point)]);
            assert!(!out.status.success(), "{point} did not fire");
        }
        hub.process(0);
        hub.process(0);
        snapshot(&hub)
    };
    let expected = scenario(None);
    assert!(expected
        .0
        .keys()
        .any(|k| k.starts_with("X26LA204/out/ACCESS_")));
    for point in cpis_hub::FAULT_POINTS {
        let got = scenario(Some(point));
        assert_eq!(got.1, expected.1, "index after a crash at {point}");
        assert_eq!(
            got.0.keys().collect::<Vec<_>>(),
            expected.0.keys().collect::<Vec<_>>(),
            "files after a crash at {point}"
        );
        for (name, bytes) in &expected.0 {
            assert!(
                got.0[name] == *bytes,
                "{name} differs after a crash at {point}"
            );
        }
    }
}

#[test]
fn superseded_number_notifies_holders_and_blocks_later_upserts() {
    let hub = held_hub();
    hub.drop("X26PDS01", "status.csv", &fixture("nhs_status.csv"));
    hub.process(0);
    let r = hub.receipt("X26PDS01", "status.csv");
    assert_eq!(
        (r.meta("mailbox"), r.meta("status"), r.meta("applied")),
        ("X26PDS01", "ACCEPTED", "2")
    );
    let inactive = Doc::parse("i", &hub.out("X26LA204", "INACTIVE")[0].1);
    assert_eq!(inactive.rows.len(), 1, "9990010129 is not held: no notice");
    let row = &inactive.rows[0];
    assert_eq!(
        (
            field(row, "local_id"),
            field(row, "status"),
            field(row, "replacement_nhs_number"),
            field(row, "effective_date")
        ),
        ("C-1002", "SUPERSEDED", "9990010110", "2026-11-21")
    );
    let (_, rows) = xml_doc(&hub.out("X26LA317", "INACTIVE")[0].1);
    assert_eq!(rows[0]["LocalId"], "K-1002");
    assert_eq!(
        field(
            hub.holdings("X26LA204").row("local_id", "C-1002"),
            "nhs_status"
        ),
        "SUPERSEDED"
    );
    let upsert = "UPSERT,C-2002,9990010013,LAC,2012-09-30,2025-01-15,".to_string();
    hub.drop(
        "X26LA204",
        "d.csv",
        &extract(
            "DELTA",
            "2026-11-22T02:00:00Z",
            &[upsert, child("C-2003", 7)],
        ),
    );
    hub.process(0);
    let r = hub.receipt("X26LA204", "d.csv");
    let problem = r.row("code", "NHS_INACTIVE");
    assert!(
        field(problem, "message").contains("9990010110"),
        "{}",
        r.text
    );
}

fn alerts(hub: &Hub, mailbox: &str) -> Vec<(String, Vec<u8>)> {
    hub.out(mailbox, "ALERTS")
}

#[test]
fn alerts_full_first_then_deltas_and_a_remove_once() {
    let hub = held_hub();
    hub.run(&["process", "--emit", "alerts"]);
    let first = alerts(&hub, "X26R0A01");
    assert_eq!(first.len(), 1);
    let full = Doc::parse("f", &first[0].1);
    assert_eq!(
        (full.meta("site"), full.meta("type"), full.meta("records")),
        ("R0A", "FULL", "8")
    );
    assert!(full.rows.iter().all(|r| field(r, "change") == "ADD"));
    for local in ["C-1001", "K-1001", "M-2001"] {
        assert!(!full.text.contains(local), "alerts carry local_id {local}");
    }
    let mother = full
        .rows
        .iter()
        .find(|r| field(r, "plan_type") == "UCPP")
        .unwrap();
    assert_eq!(field(mother, "subject"), "MOTHER");
    let c1 = full
        .rows
        .iter()
        .find(|r| field(r, "nhs_number") == "9990010005" && field(r, "authority_code") == "LA204")
        .unwrap();
    assert_eq!(
        (
            field(c1, "authority_name"),
            field(c1, "team"),
            field(c1, "office_hours_phone")
        ),
        (
            "Example Borough Council",
            "Children's Services, North",
            "020 7946 0101"
        )
    );
    let c2 = full
        .rows
        .iter()
        .find(|r| field(r, "nhs_number") == "9990010013" && field(r, "authority_code") == "LA204")
        .unwrap();
    assert_eq!(
        field(c2, "out_of_hours_phone"),
        "020 7946 0999",
        "the authority's number when the record has none"
    );
    let xml_full = &alerts(&hub, "X26R0B01")[0].1;
    let (attrs, xml_rows) = xml_doc(xml_full);
    assert_eq!(
        (
            attrs["site"].as_str(),
            attrs["type"].as_str(),
            xml_rows.len()
        ),
        ("R0B", "FULL", 8)
    );
    let alert_of = |nhs: &str, authority: &str| {
        field(
            full.rows
                .iter()
                .find(|r| field(r, "nhs_number") == nhs && field(r, "authority_code") == authority)
                .unwrap(),
            "alert_id",
        )
        .to_string()
    };

    let mut hub = hub;
    hub.now = "2026-11-22T11:00:00Z".into();
    hub.drop("X26LA204", "delta.csv", &fixture("extract_delta.csv"));
    hub.run(&["process", "--emit", "alerts"]);
    let now = alerts(&hub, "X26R0A01");
    assert_eq!(now.len(), 2);
    let delta = Doc::parse("d", &now[1].1);
    assert_eq!(
        (delta.meta("type"), delta.meta("since")),
        ("DELTA", full.meta("created_at"))
    );
    let changes: BTreeMap<String, String> = delta
        .rows
        .iter()
        .map(|r| {
            (
                field(r, "alert_id").to_string(),
                field(r, "change").to_string(),
            )
        })
        .collect();
    assert_eq!(changes.len(), 3, "{}", delta.text);
    assert_eq!(changes[&alert_of("9990010013", "LA204")], "UPDATE");
    assert_eq!(changes[&alert_of("9990010021", "LA204")], "REMOVE");
    let added = delta
        .rows
        .iter()
        .find(|r| field(r, "change") == "ADD")
        .unwrap();
    assert_eq!(field(added, "nhs_number"), "9990010056");
    let remove = delta.row("change", "REMOVE");
    assert_eq!(
        (field(remove, "nhs_number"), field(remove, "plan_type")),
        ("9990010021", ""),
        "a REMOVE row needs only alert_id and nhs_number"
    );
    assert_eq!(
        alerts(&hub, "X26R0B01").len(),
        2,
        "a full-mode site gets a FULL at every alerts emit"
    );

    hub.now = "2026-11-22T12:00:00Z".into();
    hub.run(&["process", "--emit", "alerts"]);
    assert_eq!(
        alerts(&hub, "X26R0A01").len(),
        2,
        "no DELTA when nothing changed"
    );
}

#[test]
fn an_operator_request_sends_a_full_at_the_next_pass() {
    let hub = held_hub();
    hub.run(&["process", "--emit", "alerts"]);
    assert_eq!(
        hub.run(&["alerts", "full", "--site", "NOPE"]).status.code(),
        Some(2)
    );
    assert_eq!(
        hub.run(&["alerts", "full", "--site", "R0A"]).status.code(),
        Some(0)
    );
    assert_eq!(
        alerts(&hub, "X26R0A01").len(),
        1,
        "queued, not written by the command"
    );
    hub.process(0);
    let files = alerts(&hub, "X26R0A01");
    assert_eq!(files.len(), 2);
    assert_eq!(Doc::parse("f", &files[1].1).meta("type"), "FULL");
    assert_eq!(alerts(&hub, "X26R0B01").len(), 1, "only the requested site");
    hub.process(0);
    assert_eq!(
        alerts(&hub, "X26R0A01").len(),
        2,
        "a request is carried out once"
    );
}

#[test]
fn lookup_shows_records_and_recent_accesses_and_is_audited() {
    let hub = held_hub();
    hub.drop("X26R0A01", "att.csv", &fixture("attendance.csv"));
    hub.process(0);
    let out = hub.run(&[
        "lookup",
        "999 001 0005",
        "--reason",
        "ED safeguarding check",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("C-1001")
            && text.contains("K-1001")
            && text.contains("Example County Council"),
        "{text}"
    );
    assert!(text.contains("2026-11-21T07:15:00Z  R0A02  ED"), "{text}");
    assert_eq!(
        hub.run(&["lookup", "9990010005"]).status.code(),
        Some(2),
        "--reason is required"
    );
    let audit = String::from_utf8(hub.run(&["audit", "--json"]).stdout).unwrap();
    assert!(
        audit.contains("ED safeguarding check") && audit.contains("\"nhs_number\":\"9990010005\""),
        "{audit}"
    );
    // The audit log keeps the real time of each entry (and --now beside it): --since
    // is a real date. Tomorrow's shows nothing, today's everything.
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::London)
        .date_naive();
    let tomorrow = (today + chrono::Duration::days(1)).to_string();
    let since = String::from_utf8(hub.run(&["audit", "--since", &tomorrow]).stdout).unwrap();
    assert!(since.trim().is_empty(), "{since}");
    let since =
        String::from_utf8(hub.run(&["audit", "--since", &today.to_string()]).stdout).unwrap();
    assert!(
        since.contains("lookup") && since.contains(&format!("(--now {NOW})")),
        "{since}"
    );
}

#[test]
fn validate_checks_feed_files_too() {
    let hub = held_hub();
    let path = hub.path().join("att.csv");
    fs::write(&path, fixture("attendance.csv")).unwrap();
    let out = hub.run(&["validate", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let printed = Doc::parse("stdout", &out.stdout);
    assert_eq!(
        (printed.meta("site"), printed.meta("status")),
        ("R0A", "PARTIAL")
    );
    assert!(
        hub.out("X26LA204", "ACCESS").is_empty(),
        "validate notified"
    );
}
