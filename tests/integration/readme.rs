//! The README's quick start, run as written (on a copy of the project's files), so
//! the instructions cannot rot.

use std::fs;
use std::process::Command;

use crate::harness::*;

#[test]
fn readme_quick_start_works_as_written() {
    let readme = fs::read_to_string(project_dir().join("README.md")).unwrap();
    assert!(readme.contains("cargo run --release -- --config deploy/cpis-hub.example.toml process"));
    assert!(readme.contains("cp fixtures/extract_full.csv var/mailboxes/X26LA204/in/nightly.csv"));
    // The same steps in a scratch copy: deploy/ and fixtures/ beside an empty var/.
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("deploy")).unwrap();
    fs::copy(
        project_dir().join("deploy/cpis-hub.example.toml"),
        dir.path().join("deploy/cpis-hub.example.toml"),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(["--config", "deploy/cpis-hub.example.toml"])
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    run(&["process"]);
    let inbox = dir.path().join("var/mailboxes/X26LA204/in");
    assert!(inbox.is_dir(), "process creates the mailbox folders");
    fs::write(inbox.join("nightly.csv"), fixture("extract_full.csv")).unwrap();
    settle(&inbox.join("nightly.csv"));
    run(&["process"]);
    let out = dir.path().join("var/mailboxes/X26LA204/out");
    let receipt: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(receipt.len(), 1);
    let text = fs::read_to_string(&receipt[0]).unwrap();
    assert!(
        text.contains("status=ACCEPTED records=4 applied=4"),
        "{text}"
    );
    let v = Command::new(BIN)
        .args(["--config", "deploy/cpis-hub.example.toml", "validate"])
        .arg(project_dir().join("fixtures/extract_bad_lines.csv"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(v.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("#cpis-receipt v1"));
}

#[test]
fn init_writes_a_working_config_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let init = |d: &std::path::Path| Command::new(BIN).arg("init").arg(d).output().unwrap();
    assert_eq!(init(dir.path()).status.code(), Some(0));
    assert!(dir.path().join("var/mailboxes/X26LA204/in").is_dir());
    assert_eq!(
        init(dir.path()).status.code(),
        Some(2),
        "init never overwrites"
    );
    let out = Command::new(BIN)
        .arg("--config")
        .arg(dir.path().join("cpis-hub.toml"))
        .arg("process")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("var/cpis-hub.sqlite3").exists());
}

#[test]
fn version_names_the_schema() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("database schema 1"), "{text}");
}

#[test]
fn readme_attendance_demo_notifies_on_the_real_clock() {
    let readme = fs::read_to_string(project_dir().join("README.md")).unwrap();
    assert!(readme.contains("Drop `fixtures/attendance.csv` into `var/mailboxes/X26R0A01/in/`"));
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("deploy")).unwrap();
    fs::copy(
        project_dir().join("deploy/cpis-hub.example.toml"),
        dir.path().join("deploy/cpis-hub.example.toml"),
    )
    .unwrap();
    let process = || {
        Command::new(BIN)
            .args(["--config", "deploy/cpis-hub.example.toml", "process"])
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    process();
    let drop = |mailbox: &str, name: &str, fixture_name: &str| {
        let path = dir
            .path()
            .join("var/mailboxes")
            .join(mailbox)
            .join("in")
            .join(name);
        fs::write(&path, fixture(fixture_name)).unwrap();
        settle(&path);
    };
    drop("X26LA204", "nightly.csv", "extract_full.csv");
    assert_eq!(process().status.code(), Some(0));
    drop("X26R0A01", "attendance.csv", "attendance.csv");
    process();
    let out = dir.path().join("var/mailboxes/X26LA204/out");
    let access: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ACCESS_"))
        .collect();
    assert_eq!(access.len(), 1, "{:?}", fs::read_dir(&out).unwrap().count());
}
