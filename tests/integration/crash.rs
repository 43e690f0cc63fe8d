//! Crash order (SPEC §5.1 last rule): the process is aborted at each step of a
//! message's life (`CPIS_HUB_FAULT`), restarted, and must end exactly where an
//! uninterrupted run ends: no file lost, none applied twice, one receipt whose
//! bytes and name are those of the uninterrupted run.

use std::collections::BTreeMap;
use std::fs;

use crate::harness::*;

/// Everything under the mailbox root (name -> bytes) but the root's owner marker
/// (each hub's database has its own identity), plus the facts of the index.
pub(crate) fn snapshot(hub: &Hub) -> (BTreeMap<String, Vec<u8>>, Vec<Vec<String>>) {
    let mut files = BTreeMap::new();
    let root = hub.path().join("mailboxes");
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == ".cpis-hub-root") {
                continue;
            } else {
                files.insert(
                    path.strip_prefix(&root).unwrap().display().to_string(),
                    fs::read(&path).unwrap(),
                );
            }
        }
    }
    let facts = hub.sql(
        "SELECT (SELECT COUNT(*) FROM messages), (SELECT group_concat(status) FROM messages), (SELECT COUNT(*) FROM outbound),
                (SELECT COUNT(*) FROM records), (SELECT group_concat(local_id || ':' || coalesce(end_date, '-')) FROM (SELECT * FROM records ORDER BY local_id)),
                (SELECT value FROM counters WHERE name = 'change_seq'), (SELECT COUNT(*) FROM messages WHERE state <> 'done'), (SELECT COUNT(*) FROM outbound WHERE state <> 'written')",
    );
    (files, facts)
}

fn scenario(fault: Option<&str>, mesh: bool) -> (BTreeMap<String, Vec<u8>>, Vec<Vec<String>>) {
    let hub = Hub::new();
    hub.drop("X26LA204", "first.csv", &fixture("extract_full.csv"));
    hub.process(0);
    if mesh {
        hub.drop_la317_mesh("M1");
    } else {
        hub.drop("X26LA204", "second.csv", &fixture("extract_delta.csv"));
    }
    if let Some(point) = fault {
        let out = hub.run_env(&["process"], &[("CPIS_HUB_FAULT", point)]);
        assert!(
            !out.status.success(),
            "{point}: the fault did not fire: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("fault injected"),
            "{point}"
        );
    }
    hub.process(0);
    hub.process(0); // a further pass changes nothing
    snapshot(&hub)
}

#[test]
fn a_crash_at_any_step_ends_where_an_uninterrupted_run_ends() {
    for mesh in [false, true] {
        let expected = scenario(None, mesh);
        assert_eq!(expected.1[0][6..], ["0".to_string(), "0".to_string()]);
        for point in cpis_hub::FAULT_POINTS {
            let got = scenario(Some(point), mesh);
            assert_eq!(
                got.1, expected.1,
                "index after a crash at {point} (mesh={mesh})"
            );
            let names = |s: &BTreeMap<String, Vec<u8>>| s.keys().cloned().collect::<Vec<_>>();
            assert_eq!(
                names(&got.0),
                names(&expected.0),
                "files after a crash at {point} (mesh={mesh})"
            );
            for (name, bytes) in &expected.0 {
                assert!(
                    got.0[name] == *bytes,
                    "{name} differs after a crash at {point} (mesh={mesh})"
                );
            }
        }
    }
}

#[test]
fn a_receipt_written_before_the_crash_is_rewritten_byte_identical() {
    let hub = Hub::new();
    hub.drop("X26LA204", "first.csv", &fixture("extract_full.csv"));
    let out = hub.run_env(&["process"], &[("CPIS_HUB_FAULT", "after_receipt")]);
    assert!(!out.status.success());
    let before = hub.out("X26LA204", "RECEIPT");
    assert_eq!(before.len(), 1);
    assert_eq!(
        hub.names("X26LA204", "in"),
        ["first.csv"],
        "the file waits in in/ until its receipt is marked"
    );
    hub.process(0);
    assert_eq!(
        hub.out("X26LA204", "RECEIPT"),
        before,
        "same name, same bytes"
    );
    assert_eq!(
        hub.sql("SELECT COUNT(*) FROM messages")[0][0],
        "1",
        "not applied twice"
    );
}
