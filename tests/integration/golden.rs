//! Golden files: every outbound format of this stage, byte for byte, in CSV and XML
//! (and a MESH .ctl). `UPDATE_GOLDEN=1 cargo test` rewrites them after a deliberate
//! format change; review the diff before committing.

use std::fs;

use crate::harness::*;

fn check(name: &str, actual: &[u8]) {
    let path = project_dir().join("fixtures/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::write(&path, actual).unwrap();
        return;
    }
    let expected = fs::read(&path)
        .unwrap_or_else(|e| panic!("golden file {name}: {e} (UPDATE_GOLDEN=1 writes it)"));
    assert!(
        expected == actual,
        "{name} differs from the golden file:\n--- expected\n{}\n--- actual\n{}",
        String::from_utf8_lossy(&expected),
        String::from_utf8_lossy(actual)
    );
}

fn only_for_la317(data: &[u8]) -> Vec<u8> {
    String::from_utf8(data.to_vec())
        .unwrap()
        .replace("authority=LA204", "authority=LA317")
        .into_bytes()
}

#[test]
fn receipts_and_holdings_match_the_golden_files() {
    let hub = Hub::with("max_reject_fraction = 0.9");
    let ctl = fixture("mesh/LA317MSG0001.ctl");
    hub.drop("X26LA204", "nightly.csv", &fixture("extract_full.csv"));
    hub.drop_mesh(
        "X26LA317",
        "LA317MSG0001",
        &fixture("mesh/LA317MSG0001.dat"),
        &ctl,
    );
    hub.process(0);
    hub.drop(
        "X26LA204",
        "bad_lines.csv",
        &fixture("extract_bad_lines.csv"),
    );
    let ctl2 = String::from_utf8(ctl)
        .unwrap()
        .replace("LA317MSG0001", "LA317MSG0002");
    hub.drop_mesh(
        "X26LA317",
        "LA317MSG0002",
        &only_for_la317(&fixture("extract_bad_lines.csv")),
        ctl2.as_bytes(),
    );
    hub.process(0);
    hub.run(&["process", "--emit", "holdings"]);

    let la204 = hub.out("X26LA204", "RECEIPT");
    assert_eq!(la204.len(), 2);
    check("receipt_accepted.csv", &la204[0].1);
    check("receipt_partial.csv", &la204[1].1);
    let la317 = hub.out("X26LA317", "RECEIPT");
    assert_eq!(la317.len(), 2);
    assert!(
        la317.iter().all(|(n, _)| n.ends_with(".dat")),
        "MESH partner gets .dat files"
    );
    check("receipt_accepted.xml", &la317[0].1);
    check("receipt_partial.xml", &la317[1].1);
    let ctl_name = la317[1].0.replace(".dat", ".ctl");
    check(
        "receipt_partial.ctl",
        &fs::read(hub.folder("X26LA317", "out").join(ctl_name)).unwrap(),
    );
    check("holdings.csv", &hub.out("X26LA204", "HOLDINGS")[0].1);
    check("holdings.xml", &hub.out("X26LA317", "HOLDINGS")[0].1);
}

#[test]
fn outbound_files_are_0640_and_archives_0600() {
    use std::os::unix::fs::PermissionsExt;
    let hub = Hub::new();
    hub.drop("X26LA204", "nightly.csv", &fixture("extract_full.csv"));
    hub.process(0);
    for (name, _) in hub.out("X26LA204", "RECEIPT") {
        let mode = fs::metadata(hub.folder("X26LA204", "out").join(&name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode & !0o640, 0, "{name} mode {mode:o}");
    }
    let archived = hub
        .folder("X26LA204", "archive")
        .join("2026-11-22")
        .join("nightly.csv");
    assert_eq!(
        fs::metadata(archived).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        fs::metadata(hub.database()).unwrap().permissions().mode() & 0o777,
        0o600
    );
}
