//! The README's quick start, run as written (on a copy of the project's files), so
//! the instructions cannot rot.

use std::fs;
use std::process::Command;

use crate::harness::*;

#[test]
fn readme_quick_start_works_as_written() {
    let readme = fs::read_to_string(project_dir().join("README.md")).unwrap();
    assert!(readme.contains("cargo run --release -- --config deploy/cpis-hub.demo.toml run"));
    assert!(readme.contains("cp fixtures/extract_full.csv var/mailboxes/X26LA204/in/nightly.csv"));
    // The same steps in a scratch copy: deploy/ beside an empty var/, the daemon
    // running, a fixture copied in (not renamed: the settle time protects it).
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("deploy")).unwrap();
    fs::copy(
        project_dir().join("deploy/cpis-hub.demo.toml"),
        dir.path().join("deploy/cpis-hub.demo.toml"),
    )
    .unwrap();
    let mut daemon = Command::new(bin())
        .args(["--config", "deploy/cpis-hub.demo.toml", "run"])
        .current_dir(dir.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let inbox = dir.path().join("var/mailboxes/X26LA204/in");
    let out = dir.path().join("var/mailboxes/X26LA204/out");
    let wait = |what: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while !what() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        what()
    };
    assert!(
        wait(&|| inbox.is_dir()),
        "the daemon creates the mailbox folders"
    );
    fs::write(inbox.join("nightly.csv"), fixture("extract_full.csv")).unwrap();
    let receipt = || {
        fs::read_dir(&out)
            .unwrap()
            .flatten()
            .find(|e| e.file_name().to_string_lossy().starts_with("RECEIPT_"))
    };
    assert!(wait(&|| receipt().is_some()), "no receipt");
    let text = fs::read_to_string(receipt().unwrap().path()).unwrap();
    assert!(
        text.contains("status=ACCEPTED records=4 applied=4"),
        "{text}"
    );
    let status = Command::new(bin())
        .args(["--config", "deploy/cpis-hub.demo.toml", "status"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&status.stdout).contains("daemon: running"));
    Command::new("kill")
        .arg("-INT")
        .arg(daemon.id().to_string())
        .status()
        .unwrap();
    assert_eq!(
        daemon.wait().unwrap().code(),
        Some(0),
        "Ctrl-C stops it cleanly"
    );
    let v = Command::new(bin())
        .args(["--config", "deploy/cpis-hub.demo.toml", "validate"])
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
    let init = |d: &std::path::Path| Command::new(bin()).arg("init").arg(d).output().unwrap();
    assert_eq!(init(dir.path()).status.code(), Some(0));
    assert!(dir.path().join("var/mailboxes/X26LA204/in").is_dir());
    assert_eq!(
        init(dir.path()).status.code(),
        Some(2),
        "init never overwrites"
    );
    let out = Command::new(bin())
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
    let out = Command::new(bin()).arg("--version").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "database schema {}",
            cpis_hub::index::SCHEMA_VERSION
        )),
        "{text}"
    );
}

#[test]
fn readme_attendance_demo_notifies_on_the_real_clock() {
    let readme = fs::read_to_string(project_dir().join("README.md")).unwrap();
    assert!(readme.contains("Drop `fixtures/attendance.csv` into `var/mailboxes/X26R0A01/in/`"));
    assert!(readme.contains("`process --emit alerts,holdings`"));
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("deploy")).unwrap();
    fs::copy(
        project_dir().join("deploy/cpis-hub.demo.toml"),
        dir.path().join("deploy/cpis-hub.demo.toml"),
    )
    .unwrap();
    let process = || {
        Command::new(bin())
            .args(["--config", "deploy/cpis-hub.demo.toml", "process"])
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
