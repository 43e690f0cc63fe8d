//! What operators and partners are told: clear words for the mistakes people make.

use std::fs;

use crate::harness::*;

#[test]
fn a_semicolon_separated_csv_is_told_to_save_as_comma_separated_utf8() {
    let hub = Hub::new();
    let text = format!(
        "#cpis-extract v1 authority=LA204 type=FULL extracted_at=2026-11-21T01:00:00Z records=1\nlocal_id;nhs_number;plan_type;date_of_birth;start_date\nC1;{};CPP;2016-04-01;2026-01-10\n",
        nhs(1)
    );
    hub.drop("X26LA204", "excel.csv", text.as_bytes());
    hub.process(1);
    let r = hub.receipt("X26LA204", "excel.csv");
    assert_eq!(r.codes(), ["HEADER"]);
    assert!(r.text.contains("comma-separated, UTF-8"), "{}", r.text);
}

#[test]
fn validate_of_a_duplicate_names_the_earlier_file() {
    let hub = Hub::new();
    hub.drop("X26LA204", "monday.csv", &fixture("extract_full.csv"));
    hub.process(0);
    let again = hub.path().join("tuesday.csv");
    fs::write(&again, fixture("extract_full.csv")).unwrap();
    let out = hub.run(&["validate", again.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(Doc::parse("stdout", &out.stdout).meta("status") == "DUPLICATE");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("monday.csv") && said.contains("X26LA204"),
        "{said}"
    );
}

#[test]
fn a_sequence_sent_again_is_repeated_not_missing() {
    let hub = Hub::new();
    let with_seq = |at: &str, seq: u32| {
        String::from_utf8(extract("DELTA", at, &[child("C1", 1)]))
            .unwrap()
            .replacen(" records=", &format!(" sequence={seq} records="), 1)
            .into_bytes()
    };
    hub.drop("X26LA204", "a.csv", &with_seq("2026-11-20T01:00:00Z", 7));
    hub.process(0);
    hub.drop("X26LA204", "b.csv", &with_seq("2026-11-21T01:00:00Z", 7));
    hub.process(0);
    let r = hub.receipt("X26LA204", "b.csv");
    let row = r.row("code", "SEQUENCE_GAP");
    assert!(field(row, "message").contains("repeats"), "{row:?}");
    assert!(!field(row, "message").contains("missing"), "{row:?}");
    hub.drop("X26LA204", "c.csv", &with_seq("2026-11-22T01:00:00Z", 10));
    hub.process(0);
    let r = hub.receipt("X26LA204", "c.csv");
    assert!(field(r.row("code", "SEQUENCE_GAP"), "message").contains("2 file(s) may be missing"));
}

#[test]
fn reconcile_warns_when_given_a_delta() {
    let hub = Hub::new();
    hub.drop("X26LA204", "nightly.csv", &fixture("extract_full.csv"));
    hub.process(0);
    let path = hub.path().join("delta.csv");
    fs::write(&path, fixture("extract_delta.csv")).unwrap();
    let out = hub.run(&[
        "report",
        "reconcile",
        "--authority",
        "LA204",
        path.to_str().unwrap(),
    ]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("is a DELTA extract"), "{said}");
    let full = hub.path().join("full.csv");
    fs::write(&full, fixture("extract_full.csv")).unwrap();
    let out = hub.run(&[
        "report",
        "reconcile",
        "--authority",
        "LA204",
        full.to_str().unwrap(),
    ]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("DELTA"));
}

#[test]
fn files_in_a_folder_that_is_no_mailbox_are_named_in_status_and_the_log() {
    let hub = Hub::new();
    hub.process(0);
    let stray = hub.path().join("mailboxes/X26OLD01/in");
    fs::create_dir_all(&stray).unwrap();
    fs::write(stray.join("nightly.csv"), fixture("extract_full.csv")).unwrap();
    let out = hub.run_env(&["process"], &[("RUST_LOG", "warn")]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("unconfigured_mailbox") && said.contains("X26OLD01"),
        "{said}"
    );
    let status = String::from_utf8(hub.run(&["status"]).stdout).unwrap();
    assert!(
        status.contains("no configured mailbox") && status.contains("X26OLD01"),
        "{status}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&hub.run(&["status", "--json"]).stdout).unwrap();
    assert_eq!(json["unconfigured_folders"][0]["folder"], "X26OLD01");
    assert_eq!(json["unconfigured_folders"][0]["files"], 1);
}
