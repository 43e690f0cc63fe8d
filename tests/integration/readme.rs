//! The README's quick start, run as written (on a copy of the project's files), so
//! the instructions cannot rot.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use crate::harness::*;

/// The fenced `sh` blocks of a Markdown text, each as its lines.
fn sh_blocks(text: &str) -> Vec<Vec<String>> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in text.lines() {
        match (&mut current, line.trim_start()) {
            (None, l) if l.starts_with("```sh") => current = Some(Vec::new()),
            (Some(_), l) if l.starts_with("```") => blocks.push(current.take().unwrap()),
            (Some(b), l) => b.push(l.to_string()),
            _ => {}
        }
    }
    blocks
}

/// Every `cargo run` line in the README and the docs.
fn cargo_run_lines() -> Vec<String> {
    let mut texts = vec![fs::read_to_string(project_dir().join("README.md")).unwrap()];
    for entry in fs::read_dir(project_dir().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            texts.push(fs::read_to_string(path).unwrap());
        }
    }
    let mut lines: Vec<String> = texts
        .iter()
        .flat_map(|t| t.lines())
        .filter_map(|l| {
            l.find("cargo run")
                .map(|at| l[at..].trim_end_matches('`').to_string())
        })
        .collect();
    lines.sort();
    lines.dedup();
    lines
}

/// A copy of the project (sources, manifests, deploy/, fixtures/), the files' times
/// kept so that cargo's fingerprints hold across runs; no target/, .git/ or var/.
fn copy_project(to: &Path) {
    fn walk(from: &Path, to: &Path) {
        fs::create_dir_all(to).unwrap();
        for entry in fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name();
            if ["target", ".git", "var"].iter().any(|n| name == *n) {
                continue;
            }
            let (src, dst) = (entry.path(), to.join(&name));
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                walk(&src, &dst);
            } else if kind.is_file() {
                fs::copy(&src, &dst).unwrap();
                let modified = entry.metadata().unwrap().modified().unwrap();
                fs::File::options()
                    .write(true)
                    .open(&dst)
                    .unwrap()
                    .set_modified(modified)
                    .unwrap();
            }
        }
    }
    walk(&project_dir(), to);
}

/// A README line run as written in `dir`: by `sh` when it uses the shell (globs,
/// quotes), else split into words as `sh` would and started directly (so the exit
/// status of `cargo run`, which becomes the hub, is the hub's). Cargo runs on the real
/// clock (libfaketime hangs rustc); the hub it starts gets the clock of the test run
/// through cargo's target runner (`CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER`,
/// inherited).
fn shell(line: &str, dir: &Path) -> Command {
    let mut cmd = if line.contains(['*', '?', '$', '|', ';', '&', '<', '>', '\'', '"']) {
        let mut sh = Command::new("sh");
        sh.arg("-c").arg(line);
        sh
    } else {
        let mut words = line.split_whitespace();
        let mut direct = Command::new(words.next().unwrap());
        direct.args(words);
        direct
    };
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("FAKETIME") {
            cmd.env_remove(key);
        }
    }
    cmd.current_dir(dir)
        .env(
            "CARGO_TARGET_DIR",
            project_dir().join("target/readme-build"),
        )
        .env_remove("LD_PRELOAD")
        .env_remove("CPIS_HUB_FAULT")
        .env_remove("CPIS_HUB_CONFIG");
    cmd
}

fn wait(seconds: u64, what: impl Fn() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while !what() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    what()
}

#[test]
fn readme_commands_work_as_written_on_a_copy_of_the_project() {
    let readme = fs::read_to_string(project_dir().join("README.md")).unwrap();
    let blocks = sh_blocks(&readme);
    // The two set-up commands: the first block's two command lines.
    let setup: Vec<&String> = blocks[0]
        .iter()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(setup.len(), 2, "the README's two commands: {setup:?}");
    let (main_job, test_command) = (setup[0].as_str(), setup[1].as_str());
    assert_eq!(
        main_job,
        "cargo run --release -- --config deploy/cpis-hub.demo.toml run"
    );
    // The test command is the one CI runs (it cannot run itself from here).
    let ci = fs::read_to_string(project_dir().join(".ci/run")).unwrap();
    assert!(
        ci.lines().any(|l| l.trim() == test_command),
        ".ci/run must run `{test_command}` exactly"
    );
    let walkthrough = &blocks[1];
    let ran: Vec<String> = [main_job]
        .into_iter()
        .chain(walkthrough.iter().map(String::as_str))
        .filter(|l| l.contains("cargo run"))
        .map(str::to_string)
        .collect();
    let mut ran_sorted = ran.clone();
    ran_sorted.sort();
    ran_sorted.dedup();
    assert_eq!(
        ran_sorted,
        cargo_run_lines(),
        "every `cargo run` line of the README and docs is run by this test"
    );

    let dir = tempfile::tempdir().unwrap();
    copy_project(dir.path());
    let mut daemon = shell(main_job, dir.path())
        .process_group(0)
        .stderr(std::process::Stdio::from(
            fs::File::create(dir.path().join("daemon.log")).unwrap(),
        ))
        .spawn()
        .unwrap();
    let log = || fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default();
    // The first run in a fresh target/readme-build compiles the hub.
    assert!(
        wait(1200, || log().contains("daemon_started")),
        "the daemon did not start: {}",
        log()
    );
    let receipts = dir.path().join("var/mailboxes/X26LA204/out");
    let mut printed = String::new();
    for line in walkthrough {
        let line = line.split('#').next().unwrap().trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with("sleep ") {
            // The README waits a moment for hub.settle; the test waits for the receipt
            // itself, so a slow machine does not make it fail.
            assert!(
                wait(60, || fs::read_dir(&receipts).unwrap().flatten().any(|e| e
                    .file_name()
                    .to_string_lossy()
                    .starts_with("RECEIPT_"))),
                "no receipt: {}",
                log()
            );
            continue;
        }
        let out = shell(line, dir.path()).output().unwrap();
        assert!(
            out.status.success(),
            "`{line}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        printed.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    assert!(
        printed.contains("status=ACCEPTED records=4 applied=4"),
        "the README's promise: {printed}"
    );
    assert!(printed.contains("daemon: running"), "{printed}");
    // Ctrl-C: SIGINT to the foreground process group (cargo has become the hub).
    let sent = Command::new("kill")
        .args(["-s", "INT", "--"])
        .arg(format!("-{}", daemon.id()))
        .status()
        .unwrap();
    assert!(sent.success());
    let code = daemon.wait().unwrap().code();
    assert!(
        wait(20, || log().contains("daemon_stopped")),
        "Ctrl-C stops it cleanly: {}",
        log()
    );
    // Under a target runner (faketime: the clock moved) the exit status is the
    // runner's, which Ctrl-C stops too; the hub's own is 0 and says so in the log.
    if std::env::var_os("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER").is_none() {
        assert_eq!(code, Some(0), "Ctrl-C stops it cleanly: {}", log());
    }
    let v = Command::new(bin())
        .args(["--config", "deploy/cpis-hub.demo.toml", "validate"])
        .arg(project_dir().join("fixtures/extract_bad_lines.csv"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(v.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("#cpis-receipt v1"));

    // The binary `cargo run --release` built is a production build: fault injection
    // is not in it, so CPIS_HUB_FAULT cannot abort it.
    let next_night = fs::read_to_string(project_dir().join("fixtures/demo/nightly.csv"))
        .unwrap()
        .replace("01:30:00Z sequence=1", "02:30:00Z sequence=2");
    fs::write(
        dir.path().join("var/mailboxes/X26LA204/in/again.csv"),
        next_night,
    )
    .unwrap();
    settle(&dir.path().join("var/mailboxes/X26LA204/in/again.csv"));
    let production = project_dir().join("target/readme-build/release/cpis-hub");
    let p = Command::new(production)
        .args(["--config", "deploy/cpis-hub.demo.toml", "process"])
        .current_dir(dir.path())
        .env("CPIS_HUB_FAULT", "before_commit")
        .env_remove("LD_PRELOAD")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&p.stderr);
    assert!(
        said.contains("fault_injection_ignored") && !said.contains("fault injected"),
        "{said}"
    );
    assert_eq!(p.status.code(), Some(0), "{said}");
}

#[test]
fn init_writes_a_working_config_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let init = |d: &Path| Command::new(bin()).arg("init").arg(d).output().unwrap();
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
        text.contains(&format!("database schema {}", cpis_hub::SCHEMA_VERSION)),
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
    drop("X26LA204", "nightly.csv", "demo/nightly.csv");
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

#[test]
fn the_readme_lists_every_command() {
    use clap::CommandFactory;
    let readme = fs::read_to_string(project_dir().join("README.md")).unwrap();
    for sub in cpis_hub::Cli::command().get_subcommands() {
        let name = sub.get_name();
        assert!(
            readme.contains(&format!("| `cpis-hub {name}")),
            "README's command table lacks `{name}`"
        );
    }
    assert!(readme.contains("docs/operator-guide.md"));
}
