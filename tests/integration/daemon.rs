//! The daemon as a process (SPEC §5.4, §6.6): started for real, fed files, sent
//! SIGTERM, killed with -9, restarted.

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use crate::harness::*;

/// The receipts in a mailbox's `out/`, oldest sequence first.
fn receipts(hub: &Hub, mailbox: &str) -> Vec<Doc> {
    hub.out(mailbox, "RECEIPT")
        .into_iter()
        .map(|(n, d)| Doc::parse(&n, &d))
        .collect()
}

/// A FULL extract of `n` records for LA204, dated before the harness's `NOW`.
fn big_full(n: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(n as usize * 48);
    writeln!(
        out,
        "#cpis-extract v1 authority=LA204 type=FULL extracted_at=2026-11-21T01:00:00Z records={n}"
    )
    .unwrap();
    writeln!(
        out,
        "local_id,nhs_number,plan_type,date_of_birth,start_date"
    )
    .unwrap();
    for i in 0..n {
        writeln!(
            out,
            "B{i:07},{},CPP,2016-04-01,2026-01-10",
            nhs(i % 200_000)
        )
        .unwrap();
    }
    out
}

#[test]
fn the_daemon_takes_files_as_they_arrive_holds_the_lock_and_stops_on_sigterm() {
    let hub = Hub::new();
    let d = Daemon::start(&hub, &[]);
    hub.drop_la317_mesh("M1");
    assert!(
        wait_for(10, || hub.out("X26LA317", "RECEIPT").len() == 1),
        "no receipt: {}",
        d.output()
    );
    hub.drop("X26LA204", "nightly.csv", &fixture("extract_full.csv"));
    assert!(
        wait_for(10, || receipts(&hub, "X26LA204")
            .iter()
            .any(|r| r.meta("source") == "nightly.csv")),
        "{}",
        d.output()
    );

    let second = Command::new(bin())
        .arg("--config")
        .arg(hub.config())
        .arg("run")
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(2), "a second daemon");
    assert!(String::from_utf8_lossy(&second.stderr).contains("another cpis-hub process"));
    let process = Command::new(bin())
        .arg("--config")
        .arg(hub.config())
        .arg("process")
        .output()
        .unwrap();
    assert_eq!(process.status.code(), Some(2));

    let status = Command::new(bin())
        .arg("--config")
        .arg(hub.config())
        .args(["status", "--json"])
        .output()
        .unwrap();
    assert_eq!(status.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(json["daemon_running"], true);
    let la204 = json["partners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["mailbox"] == "X26LA204")
        .unwrap();
    assert_eq!(la204["last_in"]["status"], "ACCEPTED");
    assert_eq!(la204["last_in"]["name"], "nightly.csv");
    assert!(la204["last_out"]["name"]
        .as_str()
        .unwrap()
        .starts_with("RECEIPT_X26LA204_"));
    let text = String::from_utf8(
        Command::new(bin())
            .arg("--config")
            .arg(hub.config())
            .arg("status")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        text.contains("daemon: running") && text.contains("X26LA204"),
        "{text}"
    );

    let log = d.output();
    assert!(
        log.contains("file_ready")
            && log.contains("file_applied")
            && log.contains("outbound_written"),
        "{log}"
    );
    assert!(
        !log.contains("9990010005") && !log.contains("2017-03-14"),
        "an NHS number or a date of birth in the log"
    );
    assert_eq!(d.terminate(), Some(0));
    let after = Command::new(bin())
        .arg("--config")
        .arg(hub.config())
        .arg("status")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&after.stdout).contains("daemon: not running"));
}

#[test]
fn a_burst_is_taken_in_arrival_order_and_a_broken_file_holds_up_nobody() {
    let hub = Hub::new();
    let d = Daemon::start(&hub, &[]);
    hub.drop("X26LA204", "a_broken.csv", b"not an extract at all");
    for i in 0..5 {
        let rows = [child(&format!("R{i}"), i)];
        hub.drop(
            "X26LA204",
            &format!("z_{i}.csv"),
            &extract("DELTA", &format!("2026-11-21T02:0{i}:00Z"), &rows),
        );
    }
    hub.drop("X26R0A01", "att.csv", &fixture("attendance.csv"));
    assert!(
        wait_for(15, || receipts(&hub, "X26LA204").len() == 6
            && hub.out("X26R0A01", "RECEIPT").len() == 1),
        "{}",
        d.output()
    );
    let statuses: Vec<(String, String)> = receipts(&hub, "X26LA204")
        .iter()
        .map(|r| (r.meta("source").to_string(), r.meta("status").to_string()))
        .collect();
    assert_eq!(
        statuses[0],
        ("a_broken.csv".to_string(), "REJECTED".to_string())
    );
    assert!(
        statuses[1..].iter().all(|(_, s)| s == "ACCEPTED"),
        "{statuses:?}: in order, none STALE"
    );
    assert_eq!(d.terminate(), Some(0));
}

#[test]
fn kill_9_in_the_middle_of_a_large_file_loses_nothing_and_applies_nothing_twice() {
    let hub = Hub::new();
    let d = Daemon::start(&hub, &[]);
    hub.drop("X26LA204", "big.csv", &big_full(150_000));
    assert!(
        wait_for(10, || d.output().contains("file_ready")),
        "{}",
        d.output()
    );
    std::thread::sleep(Duration::from_millis(200));
    let receipts_at_kill = hub.out("X26LA204", "RECEIPT").len();
    d.kill9();
    let d = Daemon::start(&hub, &[]);
    assert!(
        wait_for(60, || hub.out("X26LA204", "RECEIPT").len() == 1),
        "{}",
        d.output()
    );
    assert_eq!(d.terminate(), Some(0));
    let r = hub.receipt("X26LA204", "big.csv");
    assert_eq!(
        (r.meta("status"), r.meta("records"), r.meta("applied")),
        ("ACCEPTED", "150000", "150000")
    );
    assert_eq!(
        hub.sql("SELECT COUNT(*), group_concat(status), group_concat(state) FROM messages"),
        [vec!["1".to_string(), "ACCEPTED".into(), "done".into()]]
    );
    assert!(hub.names("X26LA204", "in").is_empty());
    assert_eq!(hub.holdings("X26LA204").rows.len(), 150_000);
    eprintln!("receipts present when killed: {receipts_at_kill}");
}

#[test]
fn sigterm_finishes_the_file_in_hand_then_exits_0() {
    let hub = Hub::new();
    let d = Daemon::start(&hub, &[]);
    hub.drop("X26LA204", "big.csv", &big_full(100_000));
    assert!(
        wait_for(10, || d.output().contains("file_ready")),
        "{}",
        d.output()
    );
    assert_eq!(d.terminate(), Some(0));
    let r = hub.receipt("X26LA204", "big.csv");
    assert_eq!(
        r.meta("status"),
        "ACCEPTED",
        "the file in hand was finished"
    );
    assert!(
        hub.folder("X26LA204", "archive")
            .read_dir()
            .unwrap()
            .count()
            == 1
    );
}

#[test]
fn transient_read_errors_are_retried_with_backoff_and_the_file_waits_in_in() {
    let hub = Hub::new();
    let d = Daemon::start(&hub, &[("CPIS_HUB_FAULT", "transient_read:2")]);
    hub.drop("X26LA204", "nightly.csv", &fixture("extract_full.csv"));
    assert!(
        wait_for(20, || hub.out("X26LA204", "RECEIPT").len() == 1),
        "{}",
        d.output()
    );
    let log = d.output();
    assert_eq!(log.matches("retry_scheduled").count(), 2, "{log}");
    assert_eq!(
        hub.receipt("X26LA204", "nightly.csv").meta("status"),
        "ACCEPTED"
    );
    assert_eq!(d.terminate(), Some(0));
}

#[test]
fn process_leaves_a_transiently_unreadable_file_in_in_and_exits_1() {
    let hub = Hub::new();
    hub.drop("X26LA204", "nightly.csv", &fixture("extract_full.csv"));
    let out = hub.run_env(&["process"], &[("CPIS_HUB_FAULT", "transient_read:1")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("left in in/"));
    assert_eq!(hub.names("X26LA204", "in"), ["nightly.csv"]);
    hub.process(0);
    assert_eq!(
        hub.receipt("X26LA204", "nightly.csv").meta("status"),
        "ACCEPTED"
    );
}

#[test]
fn an_idle_daemon_does_not_spin() {
    // Regression: reading in/ is an inotify access event; waking on it made the
    // loop run passes back to back (30% CPU while idle).
    let hub = Hub::new();
    let d = Daemon::start(&hub, &[("RUST_LOG", "debug")]);
    hub.drop("X26LA204", "nightly.csv", &fixture("extract_full.csv"));
    assert!(wait_for(10, || hub.out("X26LA204", "RECEIPT").len() == 1));
    let before = d.output().matches("pass_done").count();
    std::thread::sleep(Duration::from_secs(2));
    let after = d.output().matches("pass_done").count();
    assert!(
        after - before <= 3,
        "{} passes in 2 idle seconds (rescan_every is 30 s)",
        after - before
    );
    assert_eq!(d.terminate(), Some(0));
}

#[test]
fn json_logs_carry_the_event_vocabulary_and_no_personal_data() {
    let hub = Hub::new();
    hub.drop("X26LA204", "nightly.csv", &fixture("extract_full.csv"));
    hub.drop("X26R0A01", "att.csv", &fixture("attendance.csv"));
    let out = hub.run_env(
        &[
            "--log-format",
            "json",
            "process",
            "--emit",
            "alerts,holdings",
        ],
        &[("RUST_LOG", "info")],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stderr).unwrap();
    let mut events = std::collections::BTreeSet::new();
    for line in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if let Some(e) = v["fields"]["event"].as_str() {
            events.insert(e.to_string());
        }
    }
    for e in [
        "file_ready",
        "file_applied",
        "outbound_written",
        "alerts_reserved",
    ] {
        assert!(events.contains(e), "{e} missing from {events:?}");
    }
    for personal in ["9990010005", "2017-03-14", "Dr Ada Example", "Mid Wife"] {
        assert!(!text.contains(personal), "{personal} in the log");
    }
}

#[test]
fn a_file_that_can_never_be_read_goes_to_failed_with_a_receipt() {
    let hub = Hub::new();
    hub.drop("X26LA204", "nightly.csv", &fixture("extract_full.csv"));
    let out = hub.run_env(&["process"], &[("CPIS_HUB_FAULT", "permanent_read:1")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("moved to failed/"));
    let r = hub.receipt("X26LA204", "nightly.csv");
    assert_eq!(
        (r.meta("status"), r.codes()[0].as_str()),
        ("REJECTED", "READ_ERROR")
    );
    assert!(hub
        .names("X26LA204", "failed")
        .contains(&"nightly.csv".to_string()));
    assert!(hub.names("X26LA204", "in").is_empty());
}

#[test]
fn a_file_that_fails_the_same_way_is_answered_after_bounded_retries_by_process() {
    let hub = Hub::new();
    hub.drop("X26LA204", "poison.csv", &fixture("extract_full.csv"));
    let poison = [("CPIS_HUB_FAULT", "poison:poison.csv")];
    for attempt in 1..3 {
        hub.drop_la317_mesh(&format!("M{attempt}"));
        let out = hub.run_env(&["process"], &poison);
        assert_eq!(out.status.code(), Some(1), "attempt {attempt}");
        assert_eq!(
            hub.names("X26LA204", "in"),
            ["poison.csv"],
            "attempt {attempt}"
        );
        assert_eq!(
            hub.out("X26LA317", "RECEIPT").len(),
            attempt,
            "the other partner is never held up"
        );
    }
    let out = hub.run_env(&["process"], &poison);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("moved to failed/"));
    let r = hub.receipt("X26LA204", "poison.csv");
    assert_eq!(
        (r.meta("status"), r.codes()),
        ("REJECTED", vec!["PROCESSING_ERROR".to_string()])
    );
    assert!(
        !r.text.contains("constraint"),
        "internals stay in the log: {}",
        r.text
    );
    assert!(hub
        .names("X26LA204", "failed")
        .contains(&"poison.csv".to_string()));
    let out = hub.run_env(&["process"], &poison);
    assert_eq!(out.status.code(), Some(0), "answered once, never again");
}

#[test]
fn the_daemon_answers_a_poison_file_after_bounded_retries_and_serves_the_others() {
    let hub = Hub::new();
    let d = Daemon::start(&hub, &[("CPIS_HUB_FAULT", "poison:poison.csv")]);
    hub.drop("X26LA204", "poison.csv", &fixture("extract_full.csv"));
    hub.drop_la317_mesh("M1");
    assert!(
        wait_for(10, || hub.out("X26LA317", "RECEIPT").len() == 1),
        "{}",
        d.output()
    );
    assert!(
        wait_for(30, || hub.out("X26LA204", "RECEIPT").len() == 1),
        "{}",
        d.output()
    );
    assert_eq!(
        hub.receipt("X26LA204", "poison.csv").codes(),
        ["PROCESSING_ERROR"]
    );
    assert_eq!(d.output().matches("retry_scheduled").count(), 2);
    assert_eq!(d.terminate(), Some(0));
}

#[test]
fn a_file_taken_back_while_backing_off_leaves_the_daemon_idle() {
    // Regression: the backoff entry of a file that left in/ outlived it; once its
    // time passed the daemon ran ~30 passes a second.
    let hub = Hub::new();
    let d = Daemon::start(
        &hub,
        &[
            ("CPIS_HUB_FAULT", "transient_read:1"),
            ("RUST_LOG", "debug"),
        ],
    );
    hub.drop("X26LA204", "nightly.csv", &fixture("extract_full.csv"));
    assert!(
        wait_for(10, || d.output().contains("retry_scheduled")),
        "{}",
        d.output()
    );
    std::fs::remove_file(hub.folder("X26LA204", "in").join("nightly.csv")).unwrap();
    std::thread::sleep(Duration::from_millis(1500)); // past the 1 s backoff
    let before = d.output().matches("pass_done").count();
    std::thread::sleep(Duration::from_secs(2));
    let after = d.output().matches("pass_done").count();
    assert!(
        after - before <= 3,
        "{} passes in 2 idle seconds after the file left",
        after - before
    );
    assert_eq!(d.terminate(), Some(0));
}
