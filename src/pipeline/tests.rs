//! The pipeline's own pieces, below the binary: what happens when an entry is
//! swapped between the scan that saw it and the open that reads it.

use crate::model::Code;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use super::message::process_message;
use super::PassError;
use crate::clock::Clock;
use crate::config::Config;
use crate::fsutil::Dir;
use crate::index::{self, Index, IndexError};
use crate::intake::{Found, Ready};
use crate::model::Status;
use crate::transport;

struct Fixture {
    _dir: tempfile::TempDir,
    config: Config,
    index: Index,
    root: std::path::PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cpis-hub.toml");
    let text = "[hub]\nmailbox = \"X26HUB01\"\nroot = \"mailboxes\"\ndatabase = \"db/hub.sqlite3\"\nsettle = \"0s\"\nallow_test_nhs_numbers = true\n\n[[authority]]\ncode = \"LA204\"\nname = \"Example\"\nmailbox = \"X26LA204\"\n";
    fs::write(&path, text).unwrap();
    let config = Config::load(&path).unwrap();
    transport::ensure_mailboxes(&config).unwrap();
    let index = Index::open(&config.hub.database).unwrap();
    let root = config.hub.root.clone();
    Fixture {
        _dir: dir,
        config,
        index,
        root,
    }
}

/// What the scan saw: a plain file, ready.
fn seen_as_plain(name: &str) -> Found {
    Found {
        item: Ready::Plain {
            name: name.into(),
            size: 10,
        },
        arrived: SystemTime::now(),
    }
}

/// Runs one message on its own thread: a blocked open shows as a timeout, not a
/// hung test.
fn process_in_time(mut f: Fixture, found: Found) -> (Fixture, Result<Status, PassError>) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let partner = f.config.partners[0].clone();
        let root = Dir::open(&f.root).unwrap();
        let dir = transport::folder(&root, "X26LA204", "in").unwrap();
        let now = Clock::at(crate::clock::parse_rfc3339("2026-11-22T10:00:00Z").unwrap());
        let result = process_message(&f.config, &mut f.index, now, &partner, &dir, &found);
        let _ = tx.send((f, result));
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the hub blocked on an entry swapped in after the scan")
}

/// The codes of the first (only) message's receipt.
fn problem_codes(f: &Fixture) -> Vec<Code> {
    let db = f.index.db();
    let receipt = index::ledger::receipt(db, 1).unwrap().expect("a receipt");
    let mut codes = Vec::new();
    index::ledger::for_each_problem(db, receipt.id, |p| {
        codes.push(p.code);
        Ok::<_, IndexError>(())
    })
    .unwrap();
    codes
}

#[test]
fn a_fifo_swapped_in_after_the_scan_is_refused_without_blocking() {
    let f = fixture();
    let inbox = f.root.join("X26LA204/in");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        inbox.join("nightly.csv"),
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
    let (f, result) = process_in_time(f, seen_as_plain("nightly.csv"));
    assert_eq!(result.unwrap(), Status::Rejected);
    assert_eq!(problem_codes(&f), [Code::Name]);
}

#[test]
fn a_link_swapped_in_after_the_scan_is_refused_never_followed() {
    let f = fixture();
    let outside = f.root.parent().unwrap().join("outside.csv");
    fs::write(
        &outside,
        include_bytes!("../../fixtures/extract_full.csv").as_slice(),
    )
    .unwrap();
    fs::set_permissions(&outside, fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::symlink(&outside, f.root.join("X26LA204/in/nightly.csv")).unwrap();
    let (f, result) = process_in_time(f, seen_as_plain("nightly.csv"));
    assert_eq!(result.unwrap(), Status::Rejected);
    assert_eq!(problem_codes(&f), [Code::Name]);
    let held = index::holdings::count_held(f.index.db(), "LA204").unwrap();
    assert_eq!(held, 0, "an outside file was applied as the partner's");
    assert_eq!(
        fs::metadata(&outside).unwrap().permissions().mode() & 0o777,
        0o644
    );
}
