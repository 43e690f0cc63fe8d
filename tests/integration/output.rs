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

/// A small file system mounted for one test (tmpfs), unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// `None` where mounting is not allowed (not root): the test then says so and
    /// skips, except under CI, where it must run.
    fn mount(at: &std::path::Path, size: &str) -> Option<Tmpfs> {
        fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            skip("a tmpfs cannot be mounted here (not root?)");
            return None;
        }
        Some(Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_under_the_database_loses_nothing_exits_1_and_names_the_database() {
    let hub = Hub::new();
    let Some(_disk) = Tmpfs::mount(&hub.path().join("db"), "2m") else {
        return;
    };
    hub.process(0);
    // Fill the disk, then bring a file whose records need more room than is left.
    let filler = hub.path().join("db/filler");
    let free = {
        let st = rustix::fs::statvfs(hub.path().join("db")).unwrap();
        st.f_bavail * st.f_frsize
    };
    fs::write(&filler, vec![0u8; free.saturating_sub(64 * 1024) as usize]).unwrap();
    let rows: Vec<String> = (0..3000).map(|i| child(&format!("D{i:05}"), i)).collect();
    hub.drop(
        "X26LA204",
        "big.csv",
        &extract("DELTA", "2026-11-21T01:00:00Z", &rows),
    );
    let out = hub.run(&["process"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "not a usage error: {said}");
    assert!(
        said.contains("db/cpis-hub.sqlite3"),
        "the database is named: {said}"
    );
    assert_eq!(
        said.matches("disk is full").count(),
        1,
        "the cause once: {said}"
    );
    assert_eq!(hub.names("X26LA204", "in"), ["big.csv"], "nothing lost");
    fs::remove_file(&filler).unwrap();
    hub.process(0);
    let r = hub.receipt("X26LA204", "big.csv");
    assert_eq!((r.meta("status"), r.meta("applied")), ("ACCEPTED", "3000"));
}

/// Regression: the audit log took its actor from `$USER` / `$SUDO_USER` and its time
/// from `--now`, both chosen by whoever runs the command.
#[test]
fn the_audit_log_records_the_real_user_and_time_never_what_the_caller_says() {
    let hub = Hub::new();
    hub.drop("X26LA204", "nightly.csv", &fixture("extract_full.csv"));
    hub.process(0);
    let before = chrono::Utc::now() - chrono::Duration::seconds(5);
    let out = hub.run_env(
        &["lookup", "9990010005", "--reason", "forgery test"],
        &[("USER", "somebody-else"), ("SUDO_USER", "somebody-else")],
    );
    assert_eq!(out.status.code(), Some(0));
    let rows = hub.sql("SELECT actor, at, pretend_at FROM audit WHERE action = 'lookup'");
    let (actor, at, pretend) = (&rows[0][0], &rows[0][1], &rows[0][2]);
    assert!(!actor.contains("somebody-else"), "{actor}");
    let uid = rustix::process::getuid().as_raw();
    assert!(actor.contains(&format!("uid {uid}")), "{actor}");
    let at = cpis_hub::parse_rfc3339(at).unwrap();
    assert!(at >= before, "the real time, not --now: {at}");
    assert_eq!(pretend, NOW, "--now kept beside it");
}

/// Regression: `backup` let SQLite create the copy with the umask and chmod'ed it
/// afterwards, so the whole database was readable by everyone while it was written.
#[test]
fn a_backup_is_never_readable_by_others_even_while_it_is_written() {
    let hub = Hub::new();
    hub.drop("X26LA204", "nightly.csv", &fixture("extract_full.csv"));
    hub.process(0);
    let copy = hub.path().join("copy.sqlite3");
    let mut cmd = Command::new(bin());
    cmd.arg("--config")
        .arg(hub.config())
        .args(["backup"])
        .arg(&copy)
        .env("CPIS_HUB_FAULT", "backup_copied");
    // A permissive umask, as an operator's shell may have.
    with_umask_022(&mut cmd);
    let out = cmd.output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("fault injected"));
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(&copy).unwrap().mode() & 0o777, 0o600);
}

/// Runs the command under `umask 022` (through `sh`, without unsafe code).
fn with_umask_022(cmd: &mut Command) {
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg("umask 022; exec \"$@\"")
        .arg("sh")
        .arg(program)
        .args(args);
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    *cmd = sh;
}
