//! A partner is an adversary on the file system (SPEC §6.1, §6.6): whatever it plants
//! in the folders it can write (`in/`, `out/`, the mailbox folder itself), the hub
//! touches nothing outside that partner's own messages, and no other partner waits.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::harness::*;

/// A file outside every mailbox that a partner would like the hub to overwrite.
fn victim(hub: &Hub) -> std::path::PathBuf {
    let path = hub.path().join("victim.bin");
    fs::write(&path, b"precious").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    path
}

fn untouched(path: &Path) {
    assert_eq!(
        fs::read(path).unwrap(),
        b"precious",
        "{} was written",
        path.display()
    );
    assert_eq!(
        fs::metadata(path).unwrap().mode() & 0o777,
        0o644,
        "{}'s mode changed",
        path.display()
    );
}

#[test]
fn links_and_folders_planted_at_the_old_temporary_names_in_out_change_nothing() {
    let hub = Hub::new();
    let target = victim(&hub);
    let out = hub.folder("X26LA204", "out");
    fs::create_dir_all(&out).unwrap();
    // The names the hub used to write under before renaming (predictable: --now and
    // the sequence), for this receipt and the next ones.
    for seq in 1..=3 {
        let tmp = format!(".RECEIPT_X26LA204_20261122T100000Z_{seq:06}.csv.tmp");
        if seq == 2 {
            fs::create_dir(out.join(tmp)).unwrap();
        } else {
            std::os::unix::fs::symlink(&target, out.join(tmp)).unwrap();
        }
    }
    std::os::unix::fs::symlink(&target, hub.database().with_extension("x")).ok();
    hub.drop("X26LA204", "nightly.csv", &fixture("extract_full.csv"));
    hub.drop("X26R0A01", "att.csv", &fixture("attendance.csv"));
    hub.process(0);
    untouched(&target);
    assert_eq!(
        hub.receipt("X26LA204", "nightly.csv").meta("status"),
        "ACCEPTED"
    );
    assert_eq!(
        hub.out("X26R0A01", "RECEIPT").len(),
        1,
        "the other partner is served"
    );
}

#[test]
fn a_folder_planted_at_a_receipt_name_holds_up_only_its_own_partner() {
    let hub = Hub::new();
    let out = hub.folder("X26LA204", "out");
    fs::create_dir_all(out.join("RECEIPT_X26LA204_20261122T100000Z_000001.csv")).unwrap();
    hub.drop("X26LA204", "nightly.csv", &fixture("extract_full.csv"));
    hub.drop("X26R0A01", "att.csv", &fixture("attendance.csv"));
    let first = hub.run(&["process"]);
    assert_eq!(first.status.code(), Some(1));
    let said = String::from_utf8_lossy(&first.stderr);
    assert!(
        said.contains("X26LA204") && said.contains("RECEIPT_X26LA204_20261122T100000Z_000001.csv"),
        "{said}"
    );
    assert_eq!(
        hub.out("X26R0A01", "RECEIPT").len(),
        1,
        "the other partner is served"
    );
    assert_eq!(
        hub.names("X26LA204", "in"),
        ["nightly.csv"],
        "it waits for its receipt"
    );
    // Taken again by the next pass: still one message, answered once it can be.
    hub.process(1);
    fs::remove_dir(out.join("RECEIPT_X26LA204_20261122T100000Z_000001.csv")).unwrap();
    hub.process(0);
    assert_eq!(
        hub.receipt("X26LA204", "nightly.csv").meta("status"),
        "ACCEPTED"
    );
    assert!(hub.names("X26LA204", "in").is_empty());
    assert_eq!(
        hub.sql("SELECT COUNT(*) FROM messages WHERE mailbox = 'X26LA204'"),
        [vec!["1".to_string()]],
        "decided once, never taken as a new message"
    );
}

#[test]
fn a_hard_link_in_in_is_refused_and_its_other_name_keeps_its_mode() {
    let hub = Hub::new();
    let outside = hub.path().join("outside.csv");
    fs::write(&outside, fixture("extract_full.csv")).unwrap();
    fs::set_permissions(&outside, fs::Permissions::from_mode(0o644)).unwrap();
    let inbox = hub.folder("X26LA204", "in");
    fs::create_dir_all(&inbox).unwrap();
    fs::hard_link(&outside, inbox.join("nightly.csv")).unwrap();
    settle(&inbox.join("nightly.csv"));
    hub.process(1);
    let r = hub.receipt("X26LA204", "nightly.csv");
    assert_eq!(
        (r.meta("status"), r.codes()),
        ("REJECTED", vec!["NAME".to_string()])
    );
    assert!(r.text.contains("hard link"), "{}", r.text);
    assert_eq!(
        fs::metadata(&outside).unwrap().mode() & 0o777,
        0o644,
        "chmod went through the link"
    );
    assert_eq!(
        hub.sql("SELECT COUNT(*) FROM records"),
        [vec!["0".to_string()]]
    );
}

#[test]
fn a_mailbox_folder_that_is_a_link_is_refused_at_start_with_its_key() {
    let hub = Hub::new();
    hub.process(0);
    let out = hub.folder("X26LA204", "out");
    fs::remove_dir_all(&out).unwrap();
    std::os::unix::fs::symlink(hub.folder("X26LA317", "out"), &out).unwrap();
    hub.drop("X26LA204", "nightly.csv", &fixture("extract_full.csv"));
    let o = hub.run(&["process"]);
    assert_eq!(o.status.code(), Some(2));
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(
        said.contains("authority[1].mailbox") && said.contains("symbolic link"),
        "{said}"
    );
    assert!(
        hub.names("X26LA317", "out").is_empty(),
        "nothing for LA204 reached LA317"
    );
}

#[test]
fn a_mailbox_folder_swapped_for_a_link_while_running_sends_nothing_elsewhere() {
    // The start check passed; the swap comes while the daemon runs. Each pass reaches
    // LA204's out/ without following the link: LA204 waits, LA317 receives nothing of
    // LA204's, and LA317's own files go on.
    let hub = Hub::new();
    let d = Daemon::start(&hub, &[]);
    let out = hub.folder("X26LA204", "out");
    fs::remove_dir_all(&out).unwrap();
    std::os::unix::fs::symlink(hub.folder("X26LA317", "out"), &out).unwrap();
    hub.drop("X26LA204", "nightly.csv", &fixture("extract_full.csv"));
    hub.drop_la317_mesh("M1");
    assert!(
        wait_for(10, || hub
            .names("X26LA317", "out")
            .iter()
            .any(|n| n.starts_with("RECEIPT_X26LA317"))),
        "{}",
        d.output()
    );
    assert!(
        wait_for(10, || d.output().contains("partner_skipped")),
        "{}",
        d.output()
    );
    let la317 = hub.names("X26LA317", "out");
    assert!(la317.iter().all(|n| !n.contains("X26LA204")), "{la317:?}");
    assert_eq!(hub.names("X26LA204", "in"), ["nightly.csv"]);
    // Put right: LA204 is served at the next pass.
    fs::remove_file(&out).unwrap();
    fs::create_dir(&out).unwrap();
    fs::write(hub.folder("X26LA204", "in").join(".wake.part"), b"").unwrap(); // an event
    assert!(
        wait_for(20, || hub
            .names("X26LA204", "out")
            .iter()
            .any(|n| n.starts_with("RECEIPT_X26LA204"))),
        "{}",
        d.output()
    );
    assert_eq!(d.terminate(), Some(0));
}

#[test]
fn the_database_inside_the_mailbox_root_is_refused_at_start() {
    let hub = Hub::new();
    let text = fs::read_to_string(hub.config()).unwrap().replace(
        "database = \"db/cpis-hub.sqlite3\"",
        "database = \"mailboxes/db/cpis-hub.sqlite3\"",
    );
    fs::write(hub.config(), text).unwrap();
    let o = hub.run(&["process"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("hub.database"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!hub.path().join("mailboxes/db/cpis-hub.sqlite3").exists());
}

#[test]
fn world_writable_root_or_mailbox_folders_are_refused_at_start() {
    let hub = Hub::new();
    hub.process(0);
    let root = hub.path().join("mailboxes");
    fs::set_permissions(&root, fs::Permissions::from_mode(0o777)).unwrap();
    let o = hub.run(&["process"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("hub.root"));
    fs::set_permissions(&root, fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(
        hub.folder("X26R0A01", "in"),
        fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    let o = hub.run(&["process"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("site[1].mailbox"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn a_second_database_on_the_same_root_is_refused_and_writes_nothing_there() {
    let hub = Hub::new();
    hub.drop("X26LA204", "nightly.csv", &fixture("extract_full.csv"));
    let o = hub.run(&["process", "--emit", "alerts"]);
    assert_eq!(o.status.code(), Some(0));
    let before: Vec<Vec<String>> = ["X26R0A01", "X26R0B01", "X26LA204"]
        .iter()
        .map(|m| hub.names(m, "out"))
        .collect();
    // Another hub: its own database, the same mailbox root.
    let other = hub.path().join("other.toml");
    fs::write(
        &other,
        fs::read_to_string(hub.config())
            .unwrap()
            .replace("db/cpis-hub.sqlite3", "db2/other.sqlite3"),
    )
    .unwrap();
    let o = std::process::Command::new(bin())
        .arg("--config")
        .arg(&other)
        .args(["--now", NOW, "process", "--emit", "alerts,holdings"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(
        said.contains("db/cpis-hub.sqlite3") && said.contains("db2/other.sqlite3"),
        "names both: {said}"
    );
    let after: Vec<Vec<String>> = ["X26R0A01", "X26R0B01", "X26LA204"]
        .iter()
        .map(|m| hub.names(m, "out"))
        .collect();
    assert_eq!(
        before, after,
        "no FULL alerts with restarted sequences, no holdings"
    );
    hub.process(0);
}

/// Regression: a kill while a FULL alert extract was being written left
/// `.staging/alerts-full.*` (NHS numbers and dates of birth, mode 0644) until the
/// next FULL. Staged files are 0600 from their creation, in the hub's own folder,
/// and the next pass removes whatever an interrupted one left.
#[test]
fn a_pass_killed_while_writing_alerts_leaves_nothing_readable_and_the_next_removes_it() {
    let hub = Hub::new();
    hub.drop("X26LA204", "nightly.csv", &fixture("extract_full.csv"));
    hub.process(0);
    let out = hub.run_env(
        &["process", "--emit", "alerts"],
        &[("CPIS_HUB_FAULT", "alerts_body_written")],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("fault injected"));
    let staging = hub.path().join("mailboxes/.staging");
    assert_eq!(fs::metadata(&staging).unwrap().mode() & 0o777, 0o700);
    let left: Vec<_> = fs::read_dir(&staging)
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    assert!(!left.is_empty(), "the body was being written");
    for entry in &left {
        assert_eq!(
            entry.metadata().unwrap().mode() & 0o777,
            0o600,
            "{:?}",
            entry.file_name()
        );
    }
    hub.process(0);
    assert_eq!(
        fs::read_dir(&staging).unwrap().count(),
        0,
        "removed by the next pass"
    );
    assert_eq!(
        hub.out("X26R0A01", "ALERTS").len(),
        1,
        "the FULL written whole"
    );
}
