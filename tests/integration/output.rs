//! What the commands do with their own output: a reader that goes away, a stderr
//! that cannot be written, a log that is not read at a terminal.

use std::fs;
use std::io::Read;
use std::process::{Command, Stdio};

use crate::harness::*;

/// Runs the command with its stdout a pipe whose reader is already gone, as
/// `cpis-hub ... | head -1` leaves it once `head` has its line.
fn with_closed_stdout(hub: &Hub, args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(bin())
        .arg("--config")
        .arg(hub.config())
        .arg("--now")
        .arg(&hub.now)
        .args(args)
        .env_remove("CPIS_HUB_FAULT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (child.wait().unwrap().code(), stderr)
}

#[test]
fn commands_piped_into_a_reader_that_goes_away_end_quietly() {
    let hub = Hub::new();
    hub.drop("X26LA204", "nightly.csv", &fixture("extract_full.csv"));
    hub.process(0);
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["quarantine", "list"],
        &["lookup", "9990010005", "--reason", "pipe test"],
        &["audit"],
        &["report", "summary"],
        &["completions", "bash"],
        &["man"],
    ] {
        let (code, stderr) = with_closed_stdout(&hub, args);
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?} said: {stderr}");
    }
}

#[test]
fn a_stderr_that_cannot_be_written_never_stops_the_hub() {
    let hub = Hub::new();
    hub.drop("X26LA204", "nightly.csv", &fixture("extract_full.csv"));
    let full = fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = Command::new(bin())
        .arg("--config")
        .arg(hub.config())
        .arg("--now")
        .arg(&hub.now)
        .arg("process")
        .env("RUST_LOG", "info")
        .env_remove("CPIS_HUB_FAULT")
        .stderr(full)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        hub.receipt("X26LA204", "nightly.csv").meta("status"),
        "ACCEPTED"
    );
}

#[test]
fn logs_carry_no_colour_codes_when_stderr_is_not_a_terminal() {
    let hub = Hub::new();
    hub.drop("X26LA204", "nightly.csv", &fixture("extract_full.csv"));
    let out = hub.run_env(&["process"], &[("RUST_LOG", "info")]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("file_applied"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "escape codes in a log file: {log:?}"
    );
}
