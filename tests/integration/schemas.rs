//! The XSDs of `mailbox-schemas/` hold for every XML fixture and golden output.

use std::process::Command;

use crate::harness::*;

#[test]
fn xml_fixtures_and_golden_outputs_validate_against_their_schemas() {
    if Command::new("xmllint").arg("--version").output().is_err() {
        skip("xmllint is not installed (apt-get install libxml2-utils)");
        return;
    }
    let dir = project_dir();
    for (schema, files) in [
        ("cpis-extract.xsd", vec!["fixtures/extract_full.xml"]),
        (
            "cpis-receipt.xsd",
            vec![
                "fixtures/golden/receipt_accepted.xml",
                "fixtures/golden/receipt_partial.xml",
            ],
        ),
        ("cpis-holdings.xsd", vec!["fixtures/golden/holdings.xml"]),
        (
            "dts-control.xsd",
            vec![
                "fixtures/golden/receipt_partial.ctl",
                "fixtures/mesh/LA317MSG0001.ctl",
            ],
        ),
        ("cpis-attendance.xsd", vec!["fixtures/attendance.xml"]),
        ("cpis-nhs-status.xsd", vec!["fixtures/nhs_status.xml"]),
        ("cpis-access.xsd", vec!["fixtures/golden/access.xml"]),
        ("cpis-inactive.xsd", vec!["fixtures/golden/inactive.xml"]),
        ("cpis-alerts.xsd", vec!["fixtures/golden/alerts_full.xml"]),
    ] {
        for file in files {
            let out = Command::new("xmllint")
                .arg("--noout")
                .arg("--schema")
                .arg(dir.join("mailbox-schemas").join(schema))
                .arg(dir.join(file))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{file} against {schema}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
