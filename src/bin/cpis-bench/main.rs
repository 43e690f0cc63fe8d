//! The benchmark command (issue 7): generates the workloads deterministically from a
//! seed, runs each scenario several times — cpis-hub interleaved with the minimal
//! loader (and `sqlite3 .import`) in the same invocation — and prints median / min /
//! max wall time, records per second, peak RSS and the ratios against the targets.
//!
//!     cargo build --release --bins && target/release/cpis-bench [--runs 3] [--seed 1] [--quick] [--work DIR]
//!
//! Whole-process measurements: each run is a fresh `cpis-hub` process on a fresh copy
//! of its starting state; peak RSS comes from GNU time (`/usr/bin/time -f %M`).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};

mod workload;

use workload::{generate, AUTHORITIES, NOW, SITES};

fn config(sites: usize) -> String {
    let mut c = String::from("[hub]\nmailbox = \"X26HUB01\"\nroot = \"mb\"\ndatabase = \"db/hub.sqlite3\"\nsettle = \"0s\"\nallow_test_nhs_numbers = true\nmass_end_min = 10000000\n\n");
    for a in 0..AUTHORITIES {
        let _ = write!(c, "[[authority]]\ncode = \"LA{a:03}\"\nname = \"Authority {a}\"\nmailbox = \"X26LA{a:03}\"\noffice_hours_phone = \"020 7946 0000\"\nout_of_hours_phone = \"020 7946 0999\"\n\n");
    }
    for s in 0..sites {
        let _ = write!(c, "[[site]]\ncode = \"S{s:03}\"\nname = \"Site {s}\"\nmailbox = \"X26S{s:03}\"\nsite_codes = [\"S{s:03}A\"]\n\n");
    }
    c
}

/// A measured run: wall seconds and peak RSS in MiB.
#[derive(Clone, Copy)]
struct Run {
    secs: f64,
    rss_mib: f64,
}

fn measure(cwd: &Path, program: &Path, args: &[&str]) -> anyhow::Result<Run> {
    let rss_file = cwd.join(".rss");
    let start = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&rss_file)
        .arg(program)
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "error")
        .output()
        .context("running /usr/bin/time (apt-get install time)")?;
    let secs = start.elapsed().as_secs_f64();
    if !out.status.success() && out.status.code() != Some(1) {
        bail!(
            "{} {args:?} failed: {}",
            program.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let kb: f64 = fs::read_to_string(&rss_file)?
        .lines()
        .last()
        .unwrap_or("0")
        .trim()
        .parse()
        .unwrap_or(0.0);
    Ok(Run {
        secs,
        rss_mib: kb / 1024.0,
    })
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    let status = Command::new("cp").arg("-a").arg(from).arg(to).status()?;
    if !status.success() {
        bail!("cp -a {} {}", from.display(), to.display());
    }
    Ok(())
}

/// A fresh hub folder (config, empty or copied state) with `files` dropped in.
fn hub_dir(
    work: &Path,
    name: &str,
    sites: usize,
    state: Option<&Path>,
    drops: &[(PathBuf, String, String)],
) -> anyhow::Result<PathBuf> {
    let dir = work.join("runs").join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    fs::write(dir.join("cpis-hub.toml"), config(sites))?;
    if let Some(state) = state {
        copy_dir(&state.join("db"), &dir.join("db"))?;
        copy_dir(&state.join("mb"), &dir.join("mb"))?;
    }
    let past = std::time::SystemTime::now() - std::time::Duration::from_secs(600);
    for (src, mailbox, name) in drops {
        let inbox = dir.join("mb").join(mailbox).join("in");
        fs::create_dir_all(&inbox)?;
        fs::copy(src, inbox.join(name))?;
        fs::File::options()
            .write(true)
            .open(inbox.join(name))?
            .set_modified(past)?;
    }
    Ok(dir)
}

fn night(dir: &Path, which: &str) -> Vec<(PathBuf, String, String)> {
    (0..AUTHORITIES)
        .map(|a| {
            (
                dir.join(which).join(format!("LA{a:03}.csv")),
                format!("X26LA{a:03}"),
                format!("{which}.csv"),
            )
        })
        .collect()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

struct Row {
    scenario: String,
    tool: String,
    records: u64,
    runs: Vec<Run>,
}

fn print_table(rows: &[Row]) {
    println!(
        "{:<34} {:<16} {:>9} {:>9} {:>9} {:>12} {:>10}",
        "scenario", "tool", "median s", "min s", "max s", "records/s", "peak MiB"
    );
    for r in rows {
        let mut secs: Vec<f64> = r.runs.iter().map(|x| x.secs).collect();
        let m = median(&mut secs);
        let rss = r.runs.iter().map(|x| x.rss_mib).fold(0.0, f64::max);
        let rate = if r.records > 0 {
            format!("{:.0}", r.records as f64 / m)
        } else {
            "-".into()
        };
        println!(
            "{:<34} {:<16} {:>9.3} {:>9.3} {:>9.3} {:>12} {:>10.1}",
            r.scenario,
            r.tool,
            m,
            secs[0],
            secs[secs.len() - 1],
            rate,
            rss
        );
    }
}

fn ratio_line(label: &str, a: &Row, b: &Row, target: f64) {
    let pair: Vec<f64> = a
        .runs
        .iter()
        .zip(&b.runs)
        .map(|(x, y)| x.secs / y.secs)
        .collect();
    let mut p = pair.clone();
    let r = median(&mut p);
    let verdict = if r <= target { "met" } else { "MISSED" };
    println!(
        "{label:<58} {r:>6.2}x  (target <= {target}x: {verdict}; per run {})",
        pair.iter()
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
}

impl Row {
    fn new(scenario: &str, tool: &str, records: u64) -> Row {
        Row {
            scenario: scenario.into(),
            tool: tool.into(),
            records,
            runs: vec![],
        }
    }
}

/// One invocation: where the binaries, the workloads and the run folders are.
struct Bench {
    hub: PathBuf,
    loader: PathBuf,
    work: PathBuf,
    data: PathBuf,
    runs: usize,
    national: u64,
    /// The national night applied once by the hub: the starting state of the
    /// re-apply, attendance and alert scenarios.
    base: PathBuf,
    base_loader: PathBuf,
    night1: Vec<String>,
    night2: Vec<String>,
}

impl Bench {
    fn prepare(work: PathBuf, seed: u64, runs: usize) -> anyhow::Result<Bench> {
        let exe_dir = std::env::current_exe()?
            .parent()
            .map(Path::to_path_buf)
            .context("exe dir")?;
        let data = work.join("data");
        eprintln!(
            "generating workloads (seed {seed}) in {} ...",
            data.display()
        );
        generate(&data, seed)?;
        let national: u64 = fs::read_to_string(data.join(format!("generated-{seed}")))?
            .split_whitespace()
            .last()
            .unwrap_or("0")
            .parse()
            .unwrap_or(0);
        let files = |night: &str| -> Vec<String> {
            (0..AUTHORITIES)
                .map(|a| {
                    data.join(format!("{night}/LA{a:03}.csv"))
                        .display()
                        .to_string()
                })
                .collect()
        };
        let bench = Bench {
            hub: exe_dir.join("cpis-hub"),
            loader: exe_dir.join("minimal-loader"),
            runs,
            national,
            base: hub_dir(&work, "base-hub", 1, None, &night(&data, "night1"))?,
            base_loader: work.join("runs/base-loader.sqlite3"),
            night1: files("night1"),
            night2: files("night2"),
            data,
            work,
        };
        // Reference states: the national night applied once, by each tool.
        eprintln!("preparing the national index ...");
        bench.hub_run(&bench.base, &["process"])?;
        let _ = fs::remove_file(&bench.base_loader);
        bench.load(&bench.base_loader, &bench.night1)?;
        Ok(bench)
    }

    fn hub_run(&self, dir: &Path, extra: &[&str]) -> anyhow::Result<Run> {
        let mut a: Vec<&str> = vec!["--config", "cpis-hub.toml", "--now", NOW];
        a.extend_from_slice(extra);
        measure(dir, &self.hub, &a)
    }

    /// The minimal loader over `files` into the database `db`.
    fn load(&self, db: &Path, files: &[String]) -> anyhow::Result<Run> {
        let mut la: Vec<&str> = vec![db.to_str().unwrap_or_default()];
        la.extend(files.iter().map(String::as_str));
        measure(&self.work, &self.loader, &la)
    }

    /// `sqlite3 .import` of the national night: a floor with no validation at all.
    fn sqlite_import(&self) -> anyhow::Result<Run> {
        let idb = self.work.join("runs/import.sqlite3");
        let _ = fs::remove_file(&idb);
        let mut script = String::from("CREATE TABLE records (local_id TEXT, nhs_number TEXT, plan_type TEXT, date_of_birth TEXT, start_date TEXT, end_date TEXT, PRIMARY KEY (local_id, plan_type));\n");
        for f in &self.night1 {
            let _ = writeln!(script, ".import --csv --skip 2 {f} records");
        }
        fs::write(self.work.join("runs/import.sql"), script)?;
        let sh = format!(
            "sqlite3 {} < runs/import.sql 2>/dev/null; true",
            idb.display()
        );
        measure(&self.work, Path::new("/bin/sh"), &["-c", &sh])
    }

    /// The national night on an empty index (hub, loader, sqlite3) and re-applied
    /// the next night (hub, loader).
    fn nights(&self) -> anyhow::Result<Vec<Row>> {
        let n = self.national;
        let mut a = Row::new("national night, empty index", "cpis-hub", n);
        let mut b = Row::new("national night, empty index", "minimal loader", n);
        let mut c = Row::new("national night, empty index", "sqlite3 .import", n);
        let mut ra = Row::new("national night re-applied", "cpis-hub", n);
        let mut rb = Row::new("national night re-applied", "minimal loader", n);
        for i in 0..self.runs {
            eprintln!("national night, run {} of {} ...", i + 1, self.runs);
            let d = hub_dir(
                &self.work,
                "night-hub",
                1,
                None,
                &night(&self.data, "night1"),
            )?;
            a.runs.push(self.hub_run(&d, &["process"])?);
            let db = self.work.join("runs/night-loader.sqlite3");
            let _ = fs::remove_file(&db);
            b.runs.push(self.load(&db, &self.night1)?);
            c.runs.push(self.sqlite_import()?);

            let d = hub_dir(
                &self.work,
                "reapply-hub",
                1,
                Some(&self.base),
                &night(&self.data, "night2"),
            )?;
            ra.runs.push(self.hub_run(&d, &["process"])?);
            let db = self.work.join("runs/reapply-loader.sqlite3");
            fs::copy(&self.base_loader, &db)?;
            rb.runs.push(self.load(&db, &self.night2)?);
        }
        Ok(vec![a, b, c, ra, rb])
    }

    /// One authority's 1M-record FULL on an empty index (hub, loader).
    fn million(&self) -> anyhow::Result<Vec<Row>> {
        let mut x = Row::new("1M-record FULL, empty index", "cpis-hub", 1_000_000);
        let mut y = Row::new("1M-record FULL, empty index", "minimal loader", 1_000_000);
        let f = self.data.join("full_1m.csv");
        for i in 0..self.runs {
            eprintln!("1M FULL, run {} of {} ...", i + 1, self.runs);
            let d = hub_dir(
                &self.work,
                "big-hub",
                1,
                None,
                &[(f.clone(), "X26LA000".into(), "full.csv".into())],
            )?;
            x.runs.push(self.hub_run(&d, &["process"])?);
            let db = self.work.join("runs/big-loader.sqlite3");
            let _ = fs::remove_file(&db);
            y.runs
                .push(self.load(&db, &[f.to_str().unwrap_or_default().to_string()])?);
        }
        Ok(vec![x, y])
    }

    /// 10k attendance events, and FULL alert extracts to 200 sites and to one, with
    /// the disk's floor for 200 distinct files beside them.
    fn flows(&self) -> anyhow::Result<Vec<Row>> {
        let mut att = Row::new("10k attendance, national index", "cpis-hub", 10_000);
        let mut full200 = Row::new("FULL alerts, national index", "200 sites", 0);
        let mut full1 = Row::new("FULL alerts, national index", "1 site", 0);
        let mut copies = Row::new("FULL alerts, national index", "cp x200 + syncfs", 0);
        for i in 0..self.runs {
            eprintln!("attendance and alerts, run {} of {} ...", i + 1, self.runs);
            let d = hub_dir(
                &self.work,
                "att-hub",
                1,
                Some(&self.base),
                &[(
                    self.data.join("attendance.csv"),
                    "X26S000".into(),
                    "att.csv".into(),
                )],
            )?;
            att.runs.push(self.hub_run(&d, &["process"])?);
            let d = hub_dir(&self.work, "alerts200", SITES, Some(&self.base), &[])?;
            full200
                .runs
                .push(self.hub_run(&d, &["process", "--emit", "alerts"])?);
            let d = hub_dir(&self.work, "alerts1", 1, Some(&self.base), &[])?;
            full1
                .runs
                .push(self.hub_run(&d, &["process", "--emit", "alerts"])?);
            copies.runs.push(self.copy_floor(&d)?);
        }
        Ok(vec![att, full200, full1, copies])
    }

    /// The physical floor of the 200-site case: the 1-site run's bytes copied 200
    /// times by `cp`, then made durable (`sync -f` = syncfs, as the hub does).
    fn copy_floor(&self, one_site: &Path) -> anyhow::Result<Run> {
        let out = one_site.join("mb/X26S000/out");
        let rendered = fs::read_dir(&out)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "csv"))
            .context("the 1-site run wrote no alert file")?;
        let cp = self.work.join("runs/cp200");
        let _ = fs::remove_dir_all(&cp);
        fs::create_dir_all(&cp)?;
        let sh = format!(
            "for i in $(seq 1 {SITES}); do cp {} {}/$i; done; sync -f {}",
            rendered.display(),
            cp.display(),
            cp.display()
        );
        let run = measure(&self.work, Path::new("/bin/sh"), &["-c", &sh])?;
        fs::remove_dir_all(&cp)?;
        Ok(run)
    }
}

/// The ratios against the targets, after the table. `rows` as `main` built them:
/// nights (5), then the 1M FULL (2) unless quick, then the flows (4).
fn print_ratios(rows: &[Row]) {
    println!("ratios (medians of the per-run ratios; runs interleaved in this invocation):");
    ratio_line(
        "national night, empty index: cpis-hub / minimal loader",
        &rows[0],
        &rows[1],
        1.5,
    );
    ratio_line(
        "national night re-applied: cpis-hub / minimal loader",
        &rows[3],
        &rows[4],
        0.5,
    );
    let mut next = 5;
    if rows.len() > 9 {
        ratio_line(
            "1M FULL: cpis-hub / minimal loader",
            &rows[5],
            &rows[6],
            1.3,
        );
        let peak = rows[5].runs.iter().map(|r| r.rss_mib).fold(0.0, f64::max);
        println!(
            "{:<58} {peak:>6.1} MiB (target <= 64 MiB: {})",
            "1M FULL: cpis-hub peak RSS",
            if peak <= 64.0 { "met" } else { "MISSED" }
        );
        next = 7;
    }
    let mut att_secs: Vec<f64> = rows[next].runs.iter().map(|r| r.secs).collect();
    let m = median(&mut att_secs);
    println!(
        "{:<58} {m:>6.3} s   (target <= 0.5 s: {})",
        "10k attendance events incl. notification files",
        if m <= 0.5 { "met" } else { "MISSED" }
    );
    ratio_line(
        "FULL alerts: 200 sites / 1 site",
        &rows[next + 1],
        &rows[next + 2],
        1.2,
    );
    let mut floor: Vec<f64> = rows[next + 1]
        .runs
        .iter()
        .zip(&rows[next + 3].runs)
        .map(|(a, b)| a.secs / b.secs)
        .collect();
    println!(
        "{:<58} {:>6.2}x  (no target: the disk's floor for 200 distinct files)",
        "FULL alerts: 200 sites / (cp x200 + syncfs)",
        median(&mut floor)
    );
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().position(|a| a == name);
    let value = |name: &str, default: &str| {
        flag(name)
            .and_then(|i| args.get(i + 1))
            .cloned()
            .unwrap_or_else(|| default.to_string())
    };
    let runs: usize = value("--runs", "3").parse()?;
    let seed: u64 = value("--seed", "1").parse()?;
    let quick = flag("--quick").is_some();
    // --keep leaves the run folders (target/bench-work/runs) for profiling.
    let work = PathBuf::from(value("--work", "target/bench-work"));
    fs::create_dir_all(&work)?;
    let bench = Bench::prepare(fs::canonicalize(&work)?, seed, runs)?;

    let mut rows = bench.nights()?;
    if !quick {
        rows.extend(bench.million()?);
    }
    rows.extend(bench.flows()?);
    if flag("--keep").is_none() {
        let _ = fs::remove_dir_all(bench.work.join("runs"));
    }

    println!(
        "cpis-hub benchmark, seed {seed}, {runs} interleaved runs per scenario, national night = {} records in {AUTHORITIES} files",
        bench.national
    );
    println!();
    print_table(&rows);
    println!();
    print_ratios(&rows);
    println!();
    println!("daemon latency and idle CPU: python3 bench/daemon_latency.py (bench/run.sh runs it after this)");
    Ok(())
}
