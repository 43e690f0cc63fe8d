//! Operator reports (SPEC §5.3, §7 `report`): golden text and CSV, exit codes,
//! filters, retention of rejected-line details, and the HTML page rendered in
//! headless Chromium.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::harness::*;

/// LA204: a FULL, then a file with bad lines (PARTIAL); LA317: a quarantined FULL;
/// an attendance file notifying LA204.
fn reported_hub() -> Hub {
    let mut hub = Hub::with("max_reject_fraction = 0.9");
    hub.drop("X26LA204", "nightly.csv", &fixture("extract_full.csv"));
    let rows: Vec<String> = (1..=12).map(|i| child(&format!("Q{i}"), 100 + i)).collect();
    let text = String::from_utf8(extract("FULL", "2026-11-21T01:00:00Z", &rows))
        .unwrap()
        .replace("authority=LA204", "authority=LA317");
    hub.drop_mesh(
        "X26LA317",
        "Q1",
        text.as_bytes(),
        &fixture("mesh/LA317MSG0001.ctl"),
    );
    hub.process(0);
    hub.now = "2026-11-22T11:00:00Z".into();
    let text = String::from_utf8(extract("FULL", "2026-11-21T02:00:00Z", &rows[..1]))
        .unwrap()
        .replace("authority=LA204", "authority=LA317");
    hub.drop_mesh(
        "X26LA317",
        "Q2",
        text.as_bytes(),
        &fixture("mesh/LA317MSG0001.ctl"),
    );
    hub.drop(
        "X26LA204",
        "bad_lines.csv",
        &fixture("extract_bad_lines.csv"),
    );
    hub.drop("X26R0A01", "attendance.csv", &fixture("attendance.csv"));
    hub.process(1);
    hub.now = "2026-11-23T09:00:00Z".into();
    hub
}

fn run_ok(hub: &Hub, args: &[&str], code: i32) -> Vec<u8> {
    let out = hub.run(args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn summary_text_and_csv_match_the_golden_files() {
    let hub = reported_hub();
    check(
        "report_summary.txt",
        &run_ok(&hub, &["report", "summary"], 0),
    );
    let csv = run_ok(&hub, &["report", "summary", "--csv"], 0);
    check("report_summary.csv", &csv);
    let doc = String::from_utf8(csv).unwrap();
    let la204 = doc.lines().find(|l| l.starts_with("LA204,")).unwrap();
    assert!(
        la204.contains(",2,1,1,1,") && la204.ends_with(",2"),
        "open by plan type, ended, 2 notifications: {la204}"
    );
    let la317 = doc.lines().find(|l| l.starts_with("LA317,")).unwrap();
    assert!(la317.contains(",0,1,"), "one quarantined file: {la317}");
}

#[test]
fn reconcile_lists_counts_then_differences_and_exits_by_result() {
    let hub = reported_hub();
    fs::write(hub.path().join("delta.csv"), fixture("extract_delta.csv")).unwrap();
    check(
        "report_reconcile.txt",
        &run_ok(
            &hub,
            &["report", "reconcile", "--authority", "LA204", "delta.csv"],
            1,
        ),
    );
    check(
        "report_reconcile.csv",
        &run_ok(
            &hub,
            &[
                "report",
                "reconcile",
                "--authority",
                "LA204",
                "--csv",
                "delta.csv",
            ],
            1,
        ),
    );
    // What LA204 holds, written back as a FULL, matches.
    let same = hub.path().join("same.csv");
    let h = hub.holdings("X26LA204");
    let mut text = format!("#cpis-extract v1 authority=LA204 type=FULL extracted_at=2026-11-22T01:00:00Z records={}\nlocal_id,nhs_number,plan_type,date_of_birth,start_date,end_date,team,office_hours_phone,out_of_hours_phone,email\n", h.rows.len());
    let full = String::from_utf8(fixture("extract_full.csv")).unwrap();
    for row in &h.rows {
        let line = full
            .lines()
            .find(|l| l.starts_with(&format!("{},", field(row, "local_id"))))
            .map(str::to_string);
        text.push_str(&line.unwrap_or_else(|| {
            format!(
                "{},{},{},{},{},{},,,,",
                field(row, "local_id"),
                field(row, "nhs_number"),
                field(row, "plan_type"),
                field(row, "date_of_birth"),
                field(row, "start_date"),
                field(row, "end_date")
            )
        }));
        text.push('\n');
    }
    fs::write(&same, text).unwrap();
    let out = String::from_utf8(run_ok(
        &hub,
        &[
            "report",
            "reconcile",
            "--authority",
            "LA204",
            same.to_str().unwrap(),
        ],
        0,
    ))
    .unwrap();
    assert!(
        out.contains("RESULT: the file matches what is held"),
        "{out}"
    );
    assert_eq!(
        hub.run(&[
            "report",
            "reconcile",
            "--authority",
            "NOPE",
            same.to_str().unwrap()
        ])
        .status
        .code(),
        Some(2)
    );
    let before = hub.sql("SELECT COUNT(*) FROM messages");
    run_ok(
        &hub,
        &[
            "report",
            "reconcile",
            "--authority",
            "LA204",
            same.to_str().unwrap(),
        ],
        0,
    );
    assert_eq!(
        hub.sql("SELECT COUNT(*) FROM messages"),
        before,
        "reconcile applied nothing"
    );
}

#[test]
fn rejections_list_nhs_problems_by_default_and_filter() {
    let hub = reported_hub();
    check(
        "report_rejections.txt",
        &run_ok(&hub, &["report", "rejections"], 0),
    );
    check(
        "report_rejections.csv",
        &run_ok(&hub, &["report", "rejections", "--all", "--csv"], 0),
    );
    let dob = String::from_utf8(run_ok(
        &hub,
        &["report", "rejections", "--code", "DOB_MISSING"],
        0,
    ))
    .unwrap();
    assert!(dob.contains("C-3005") && !dob.contains("C-3002"), "{dob}");
    let none = String::from_utf8(run_ok(
        &hub,
        &["report", "rejections", "--authority", "LA317"],
        0,
    ))
    .unwrap();
    assert!(none.contains("no rejected lines"), "{none}");
    let later = String::from_utf8(run_ok(
        &hub,
        &["report", "rejections", "--since", "2026-11-23"],
        0,
    ))
    .unwrap();
    assert!(later.contains("no rejected lines"), "{later}");
    assert!(
        !String::from_utf8(run_ok(&hub, &["report", "rejections", "--all"], 0))
            .unwrap()
            .contains("99900100"),
        "an NHS number in the list"
    );
}

#[test]
fn rejected_line_details_are_kept_90_days() {
    let mut hub = reported_hub();
    hub.now = "2027-02-19T10:00:00Z".into(); // 89 days after the file
    hub.process(0);
    assert!(
        String::from_utf8(run_ok(&hub, &["report", "rejections"], 0))
            .unwrap()
            .contains("C-3002")
    );
    hub.now = "2027-02-21T10:00:00Z".into(); // 91 days
    hub.process(0);
    assert!(
        String::from_utf8(run_ok(&hub, &["report", "rejections", "--all"], 0))
            .unwrap()
            .contains("no rejected lines")
    );
}

fn chromium() -> Option<&'static str> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

#[test]
fn the_html_summary_renders_in_headless_chromium() {
    let hub = reported_hub();
    let page = hub.path().join("summary.html");
    run_ok(
        &hub,
        &["report", "summary", "--html", page.to_str().unwrap()],
        0,
    );
    let html = fs::read_to_string(&page).unwrap();
    assert!(html.contains("<svg") && html.contains("LA204") && html.contains("National total"));
    assert!(!html.contains("<script"), "no script");
    let without_svg_ns = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    assert!(
        !without_svg_ns.contains("http") && !html.contains("src=") && !html.contains("<link"),
        "no external asset"
    );
    let Some(browser) = chromium() else {
        skip("chromium is not installed to render the HTML report (apt-get install chromium)");
        return;
    };
    let png = hub.path().join("summary.png");
    let flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
    ];
    let url = format!("file://{}", page.display());
    let shot = Command::new(browser)
        .args(flags)
        .arg(format!(
            "--user-data-dir={}",
            hub.path().join("chromium-profile").display()
        ))
        .arg("--window-size=1280,1000")
        .arg(format!("--screenshot={}", png.display()))
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        shot.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let log = String::from_utf8_lossy(&shot.stderr);
    for bad in ["Failed to load resource", "Uncaught", "net::ERR_"] {
        assert!(
            !log.contains(bad),
            "the page loaded with an error ({bad}): {log}"
        );
    }
    let image = fs::read(&png).unwrap();
    assert!(
        image.starts_with(b"\x89PNG\r\n\x1a\n") && image.len() > 20_000,
        "no real screenshot ({} bytes)",
        image.len()
    );
    let dom = Command::new(browser)
        .args(flags)
        .arg(format!(
            "--user-data-dir={}",
            hub.path().join("chromium-profile2").display()
        ))
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains("National total") && dom.contains("<svg"),
        "the page did not parse as expected"
    );
}

#[test]
fn the_reports_page_shows_the_current_outputs() {
    let page = fs::read_to_string(project_dir().join("docs/reports.md")).unwrap();
    for golden in [
        "report_summary.txt",
        "report_reconcile.txt",
        "report_rejections.txt",
    ] {
        let text = fs::read_to_string(project_dir().join("fixtures/golden").join(golden)).unwrap();
        assert!(
            page.contains(text.trim_end()),
            "docs/reports.md is out of date for {golden}: regenerate its examples"
        );
    }
}
