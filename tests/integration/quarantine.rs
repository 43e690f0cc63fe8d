//! The mass-end guard and operator decisions (SPEC §5.1, §5.3, §6.6).

use crate::harness::*;

fn full(at: &str, ids: std::ops::RangeInclusive<u32>) -> Vec<u8> {
    let rows: Vec<String> = ids.map(|i| child(&format!("Q{i}"), i)).collect();
    extract("FULL", at, &rows)
}

/// 20 held, then a FULL naming 5: it would end 15 > max(0.2 x 20, 10).
fn quarantined_hub() -> (Hub, String) {
    let hub = Hub::new();
    hub.drop("X26LA204", "a.csv", &full("2026-11-21T01:00:00Z", 1..=20));
    hub.process(0);
    hub.drop("X26LA204", "b.csv", &full("2026-11-22T01:00:00Z", 1..=5));
    hub.process(1);
    let r = hub.receipt("X26LA204", "b.csv");
    assert_eq!((r.meta("status"), r.meta("applied")), ("QUARANTINED", "0"));
    assert!(
        field(r.row("code", "MASS_END"), "message").contains("end 15 of the 20"),
        "{}",
        r.text
    );
    assert_eq!(hub.names("X26LA204", "quarantine"), ["b.csv"]);
    let list = String::from_utf8(hub.run(&["quarantine", "list"]).stdout).unwrap();
    let id = hub.sql("SELECT id FROM messages WHERE status = 'QUARANTINED'")[0][0].clone();
    assert!(list.contains("b.csv") && list.contains(&id), "{list}");
    (hub, id)
}

fn receipts_for(hub: &Hub, name: &str) -> Vec<Doc> {
    hub.out("X26LA204", "RECEIPT")
        .into_iter()
        .map(|(n, d)| Doc::parse(&n, &d))
        .filter(|d| d.meta("source") == name)
        .collect()
}

#[test]
fn mass_end_is_quarantined_then_released_by_the_next_pass() {
    let (hub, id) = quarantined_hub();
    assert_eq!(
        hub.holdings("X26LA204")
            .rows
            .iter()
            .filter(|r| field(r, "status") == "ENDED")
            .count(),
        0
    );
    assert_eq!(
        hub.run(&["quarantine", "release", &id]).status.code(),
        Some(0)
    );
    assert_eq!(
        hub.names("X26LA204", "quarantine"),
        ["b.csv"],
        "the decision waits for a pass"
    );
    hub.process(0);
    let receipts = receipts_for(&hub, "b.csv");
    assert_eq!(receipts.len(), 2, "a released file gets a second receipt");
    assert_eq!(
        (receipts[1].meta("status"), receipts[1].meta("applied")),
        ("ACCEPTED", "5")
    );
    assert!(hub.names("X26LA204", "quarantine").is_empty());
    assert!(hub.folder("X26LA204", "archive/2026-11-22/b.csv").exists());
    assert_eq!(
        hub.holdings("X26LA204")
            .rows
            .iter()
            .filter(|r| field(r, "ended_reason") == "ABSENT_FROM_FULL")
            .count(),
        15
    );
    let audit = hub.sql("SELECT action FROM audit WHERE action LIKE 'quarantine%' ORDER BY id");
    assert_eq!(
        audit,
        [
            vec!["quarantine_release_requested".to_string()],
            vec!["quarantine_release".to_string()]
        ]
    );
}

#[test]
fn discard_sends_rejected_discarded_and_applies_nothing() {
    let (hub, id) = quarantined_hub();
    hub.run(&["quarantine", "discard", &id]);
    hub.process(0);
    let receipts = receipts_for(&hub, "b.csv");
    assert_eq!(receipts[1].meta("status"), "REJECTED");
    assert_eq!(receipts[1].codes(), ["DISCARDED"]);
    assert!(hub
        .names("X26LA204", "failed")
        .contains(&"b.csv".to_string()));
    assert_eq!(
        hub.holdings("X26LA204")
            .rows
            .iter()
            .filter(|r| field(r, "status") == "ENDED")
            .count(),
        0
    );
}

#[test]
fn release_checks_stale_again() {
    let (hub, id) = quarantined_hub();
    hub.drop(
        "X26LA204",
        "c.csv",
        &extract("DELTA", "2026-11-22T02:00:00Z", &[child("Q21", 21)]),
    );
    hub.process(0);
    hub.run(&["quarantine", "release", &id]);
    hub.process(1);
    assert_eq!(receipts_for(&hub, "b.csv")[1].meta("status"), "STALE");
    assert!(hub
        .names("X26LA204", "failed")
        .contains(&"b.csv".to_string()));
}

#[test]
fn only_quarantined_messages_take_decisions() {
    let (hub, _) = quarantined_hub();
    let accepted = hub.sql("SELECT id FROM messages WHERE status = 'ACCEPTED'")[0][0].clone();
    let out = hub.run(&["quarantine", "release", &accepted]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not QUARANTINED"));
}
