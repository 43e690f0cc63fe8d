//! Golden files: every outbound format of this stage, byte for byte, in CSV and XML
//! (and a MESH .ctl). `UPDATE_GOLDEN=1 cargo test` rewrites them after a deliberate
//! format change; review the diff before committing.

use std::fs;

use crate::harness::*;

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

/// Alert ids are random by design (never derived from local_id): replace each with
/// a stable placeholder in order of appearance before comparing.
fn mask_alert_ids(data: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(data.to_vec()).unwrap();
    let mut seen: Vec<String> = Vec::new();
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(pos) = rest.find(|c: char| c.is_ascii_hexdigit()) {
        let candidate: String = rest[pos..]
            .chars()
            .take_while(|c| c.is_ascii_hexdigit())
            .collect();
        out.push_str(&rest[..pos]);
        if candidate.len() == 24
            && candidate
                .chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
        {
            let i = seen
                .iter()
                .position(|s| *s == candidate)
                .unwrap_or_else(|| {
                    seen.push(candidate.clone());
                    seen.len() - 1
                });
            out.push_str(&format!("ALERT-{:02}", i + 1));
        } else {
            out.push_str(&candidate);
        }
        rest = &rest[pos + candidate.len()..];
    }
    out.push_str(rest);
    out.into_bytes()
}

#[test]
fn nhs_side_outputs_match_the_golden_files() {
    let hub = Hub::new();
    hub.drop("X26LA204", "nightly.csv", &fixture("extract_full.csv"));
    hub.drop_la317_mesh("LA317MSG0001");
    hub.process(0);
    hub.drop("X26R0A01", "attendance.csv", &fixture("attendance.csv"));
    hub.drop("X26PDS01", "nhs_status.xml", &fixture("nhs_status.xml"));
    hub.run(&["process", "--emit", "alerts"]);

    check(
        "receipt_attendance.csv",
        &hub.out("X26R0A01", "RECEIPT")[0].1,
    );
    check(
        "receipt_nhs_status.csv",
        &hub.out("X26PDS01", "RECEIPT")[0].1,
    );
    check("access.csv", &hub.out("X26LA204", "ACCESS")[0].1);
    check("access.xml", &hub.out("X26LA317", "ACCESS")[0].1);
    check("inactive.csv", &hub.out("X26LA204", "INACTIVE")[0].1);
    check("inactive.xml", &hub.out("X26LA317", "INACTIVE")[0].1);
    check(
        "alerts_full.csv",
        &mask_alert_ids(&hub.out("X26R0A01", "ALERTS")[0].1),
    );
    check(
        "alerts_full.xml",
        &mask_alert_ids(&hub.out("X26R0B01", "ALERTS")[0].1),
    );
    // Both sites' FULL files carry the same rows (rendered once).
    let csv = String::from_utf8(hub.out("X26R0A01", "ALERTS")[0].1.clone()).unwrap();
    assert_eq!(csv.lines().count(), 2 + 8);

    let mut hub = hub;
    hub.now = "2026-11-22T11:00:00Z".into();
    hub.drop("X26LA204", "delta.csv", &fixture("extract_delta.csv"));
    hub.run(&["process", "--emit", "alerts"]);
    let ids_full = mask_alert_ids(
        &[
            hub.out("X26R0A01", "ALERTS")[0].1.clone(),
            hub.out("X26R0A01", "ALERTS")[1].1.clone(),
        ]
        .concat(),
    );
    let text = String::from_utf8(ids_full).unwrap();
    let delta = text.split("#cpis-alerts").nth(2).unwrap();
    check(
        "alerts_delta.csv",
        format!("#cpis-alerts{delta}").as_bytes(),
    );
}
