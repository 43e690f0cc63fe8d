//! Deployment artefacts and the command line's self-description (issue 8).

use std::fs;
use std::process::Command;

use crate::harness::*;

#[test]
fn the_systemd_unit_verifies_and_is_sandboxed() {
    let unit = fs::read_to_string(project_dir().join("deploy/cpis-hub.service")).unwrap();
    for line in [
        "User=cpis-hub",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/cpis-hub",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "UMask=0077",
        "CapabilityBoundingSet=\n",
        "Restart=on-failure",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=",
    ] {
        assert!(unit.contains(line), "the unit lacks {line:?}");
    }
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        skip("systemd-analyze is not installed to verify the unit (apt-get install systemd)");
        return;
    }
    // Verified with ExecStart pointing at the binary under test (verify checks it exists).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cpis-hub.service");
    fs::write(
        &path,
        unit.replace("/usr/local/bin/cpis-hub", &bin().display().to_string()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_containerfile_builds_from_the_tree_and_runs_unprivileged() {
    let text = fs::read_to_string(project_dir().join("deploy/Containerfile")).unwrap();
    assert!(text.matches("FROM ").count() >= 2, "multi-stage");
    assert!(text.contains("USER cpis-hub") && text.contains("VOLUME [\"/var/lib/cpis-hub\"]"));
    for copied in [
        "Cargo.toml",
        "Cargo.lock",
        "src",
        "deploy",
        "deploy/cpis-hub.example.toml",
    ] {
        assert!(
            project_dir().join(copied).exists(),
            "the Containerfile copies {copied}, which is missing"
        );
    }
}

#[test]
fn every_command_explains_itself_with_an_example() {
    let top = Command::new(bin()).arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&top.stdout).contains("Example"));
    let version = String::from_utf8(
        Command::new(bin())
            .arg("--version")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        version.contains(env!("CARGO_PKG_VERSION")) && version.contains("database schema"),
        "{version}"
    );
    for path in [
        vec!["init"],
        vec!["run"],
        vec!["status"],
        vec!["process"],
        vec!["validate"],
        vec!["lookup"],
        vec!["audit"],
        vec!["backup"],
        vec!["completions"],
        vec!["man"],
        vec!["quarantine"],
        vec!["quarantine", "list"],
        vec!["quarantine", "release"],
        vec!["quarantine", "discard"],
        vec!["report"],
        vec!["report", "summary"],
        vec!["report", "reconcile"],
        vec!["report", "rejections"],
        vec!["alerts"],
        vec!["alerts", "full"],
    ] {
        let out = Command::new(bin())
            .args(&path)
            .arg("--help")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("Example"),
            "`cpis-hub {} --help` has no example:\n{text}",
            path.join(" ")
        );
    }
}

#[test]
fn completions_and_man_page_come_from_the_cli_definition() {
    let bash = String::from_utf8(
        Command::new(bin())
            .args(["completions", "bash"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        bash.contains("quarantine") && bash.contains("reconcile"),
        "bash completion lacks subcommands"
    );
    let zsh = Command::new(bin())
        .args(["completions", "zsh"])
        .output()
        .unwrap();
    assert!(zsh.status.success() && !zsh.stdout.is_empty());
    let man = String::from_utf8(Command::new(bin()).arg("man").output().unwrap().stdout).unwrap();
    assert!(
        man.contains(".TH cpis-hub 1") && man.contains("database schema"),
        "{}",
        &man[..man.len().min(200)]
    );
}

#[test]
fn backup_copies_a_consistent_database_and_never_overwrites() {
    use std::os::unix::fs::PermissionsExt;
    let hub = Hub::new();
    hub.drop("X26LA204", "nightly.csv", &fixture("extract_full.csv"));
    hub.process(0);
    let copy = hub.path().join("backup.sqlite3");
    let out = hub.run(&["backup", copy.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("backed up 4 records"));
    assert_eq!(
        fs::metadata(&copy).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let conn = rusqlite::Connection::open(&copy).unwrap();
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM records", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 4);
    assert_eq!(
        hub.run(&["backup", copy.to_str().unwrap()]).status.code(),
        Some(1),
        "never overwrites"
    );
    assert_eq!(
        hub.sql("SELECT COUNT(*) FROM audit WHERE action = 'backup'")[0][0],
        "1",
        "a backup is audited"
    );
}

/// Every `cpis-hub ...` command line in README.md and docs/ is accepted by the real
/// command line (run with `--help` appended: the syntax is checked, nothing runs).
#[test]
fn every_command_in_the_docs_parses() {
    let mut files = vec![project_dir().join("README.md")];
    for e in fs::read_dir(project_dir().join("docs")).unwrap() {
        files.push(e.unwrap().path());
    }
    let mut checked = 0;
    for file in files {
        let text = fs::read_to_string(&file).unwrap();
        for raw in text.lines() {
            let line = raw.trim().trim_start_matches('`').trim_end_matches('`');
            let Some(pos) = line.find("cpis-hub ") else {
                continue;
            };
            let rest = &line[pos + "cpis-hub ".len()..];
            // Commands in prose or tables are quoted; take what ends the quote.
            let rest = rest
                .split(['`', '|', '(', '>', '#'])
                .next()
                .unwrap_or("")
                .trim();
            let mut args: Vec<String> = rest
                .split_whitespace()
                .map(|a| a.trim_matches('"').to_string())
                .collect();
            if args.is_empty()
                || args[0].starts_with(['-', '[']) && args[0] != "--config"
                || args.iter().any(|a| {
                    a.contains("...") || a.contains('[') || a.contains('|') || a.contains('\\')
                })
            {
                continue;
            }
            if ![
                "--config",
                "--now",
                "--log-format",
                "init",
                "run",
                "status",
                "process",
                "validate",
                "quarantine",
                "lookup",
                "audit",
                "backup",
                "completions",
                "man",
                "report",
                "alerts",
            ]
            .contains(&args[0].as_str())
            {
                continue;
            }
            // Placeholders in upper case (FILE, CODE, DIR) stand for a value.
            for a in &mut args {
                if a.chars().all(|c| c.is_ascii_uppercase() || c == '_') && a.len() > 1 {
                    *a = "X".into();
                }
            }
            args.push("--help".into());
            let out = Command::new(bin())
                .args(&args)
                .env_remove("CPIS_HUB_CONFIG")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}: `cpis-hub {rest}` does not parse: {}",
                file.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} documented commands found");
}
