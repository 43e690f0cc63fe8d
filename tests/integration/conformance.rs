//! Runs the shared black-box conformance suite (`../shared/conformance`) against
//! the binary under test: every public case.

use std::process::Command;

use crate::harness::*;

const CASES: &[&str] = &[
    "full_extract_accepted",
    "holdings_list_applied_records",
    "bad_check_digit_line_is_partial",
    "missing_required_column_rejects_file",
    "record_count_mismatch_rejects_file",
    "delta_delete_removes_record",
    "full_ends_absent_records",
    "same_bytes_again_is_duplicate",
    "older_extract_is_stale",
    "partner_mismatch_leaves_other_authority_untouched",
    "nhs_number_separators_accepted",
    "xml_extract_equivalent_to_csv",
    "doctype_xml_rejected",
    "age_18_ends_plan",
    "xml_partner_gets_xml_receipt",
    "mesh_framing_in_and_out",
    "receipt_source_is_percent_encoded",
    "ignored_and_unsupported_names",
    "validate_prints_receipt_and_changes_nothing",
    "process_exit_codes",
    "lookup_is_audited_with_reason",
    "retention_purge_shows_remove_in_next_delta",
    "access_notification_to_holding_authority_only",
    "silent_read_not_notified",
    "unknown_nhs_number_is_forgotten",
    "alerts_full_then_delta",
    "superseded_number_notifies_and_blocks_upserts",
    "outbound_files_names_and_metadata",
    "process_refused_while_daemon_runs",
];

#[test]
fn shared_conformance_cases_pass() {
    let runner = project_dir().join("../shared/conformance/run.py");
    if !runner.exists() {
        skip(&format!(
            "{} is missing (the shared folder sits beside the project)",
            runner.display()
        ));
        return;
    }
    let mut cmd = Command::new("python3");
    cmd.arg(&runner)
        .env("CPIS_HUB_BIN", bin())
        .current_dir(project_dir());
    for case in CASES {
        cmd.arg("-k").arg(case);
    }
    let out = cmd.output().expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let passed = text.lines().filter(|l| l.starts_with("PASS ")).count();
    assert!(
        out.status.success() && passed >= CASES.len(),
        "conformance:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
