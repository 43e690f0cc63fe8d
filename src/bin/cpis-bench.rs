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

/// splitmix64: tiny, and the same numbers for the same seed forever.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// Valid NHS numbers of the 999 test range, in order (there are about 909,000).
fn nhs_numbers() -> Vec<String> {
    let mut out = Vec::with_capacity(910_000);
    for body in 999_000_000u64..1_000_000_000 {
        let digits: Vec<u64> = body
            .to_string()
            .bytes()
            .map(|b| u64::from(b - b'0'))
            .collect();
        let total: u64 = digits.iter().zip((2..=10).rev()).map(|(d, w)| d * w).sum();
        match 11 - total % 11 {
            10 => continue,
            11 => out.push(format!("{body}0")),
            c => out.push(format!("{body}{c}")),
        }
    }
    out
}

const AUTHORITIES: usize = 152;
const SITES: usize = 200;
const EXTRACT_DAY: &str = "2026-11-21";
const NOW: &str = "2026-11-22T10:00:00Z";

fn date(days_before: i64) -> String {
    let base = chrono::NaiveDate::parse_from_str(EXTRACT_DAY, "%Y-%m-%d").unwrap_or_default();
    (base - chrono::Duration::days(days_before)).to_string()
}

/// One extract line.
fn record(rng: &mut Rng, authority: usize, i: usize, nhs: &str) -> String {
    let roll = rng.below(100);
    let plan = if roll < 38 {
        "CPP"
    } else if roll < 98 {
        "LAC"
    } else {
        "UCPP"
    };
    let dob = if plan == "UCPP" {
        String::new()
    } else {
        date(rng.below(17 * 365) as i64 + 30)
    };
    let start = rng.below(900) as i64 + 1;
    let end = if rng.chance(0.20) {
        date(rng.below(start.min(360) as u64) as i64)
    } else {
        String::new()
    };
    let mut nhs = nhs.to_string();
    if rng.chance(0.005) {
        nhs.replace_range(9..10, if nhs.ends_with('0') { "1" } else { "0" }); // an invalid check digit
    } else if rng.chance(0.05) {
        nhs = format!("{} {} {}", &nhs[..3], &nhs[3..6], &nhs[6..]);
    }
    format!(
        "LA{authority:03}-{i:06},{nhs},{plan},{dob},{},{end}",
        date(start)
    )
}

fn write_extract(
    path: &Path,
    authority: usize,
    lines: &[String],
    extracted_at: &str,
    sequence: u32,
    bom_crlf: bool,
) -> anyhow::Result<()> {
    let eol = if bom_crlf { "\r\n" } else { "\n" };
    let mut text = String::with_capacity(lines.len() * 60);
    if bom_crlf {
        text.push('\u{feff}');
    }
    let _ = write!(text, "#cpis-extract v1 authority=LA{authority:03} type=FULL extracted_at={extracted_at} sequence={sequence} records={}{eol}", lines.len());
    text.push_str("local_id,nhs_number,plan_type,date_of_birth,start_date,end_date");
    text.push_str(eol);
    for l in lines {
        text.push_str(l);
        text.push_str(eol);
    }
    fs::write(path, text).with_context(|| path.display().to_string())
}

/// Generates every workload under `dir` (skipped when already there for this seed).
fn generate(dir: &Path, seed: u64) -> anyhow::Result<()> {
    let stamp = dir.join(format!("generated-{seed}"));
    if stamp.exists() {
        return Ok(());
    }
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir.join("night1"))?;
    fs::create_dir_all(dir.join("night2"))?;
    let numbers = nhs_numbers();
    let mut rng = Rng(seed);
    let mut next_nhs = 0usize;
    let mut held: Vec<String> = Vec::new();
    for a in 0..AUTHORITIES {
        let size = (1700.0 * (0.3 + 1.4 * (rng.below(1000) as f64 / 1000.0))) as usize;
        let lines: Vec<String> = (0..size)
            .map(|i| {
                let nhs = &numbers[next_nhs % numbers.len()];
                next_nhs += 1;
                held.push(nhs.clone());
                record(&mut rng, a, i, nhs)
            })
            .collect();
        let bom_crlf = rng.chance(0.1);
        write_extract(
            &dir.join(format!("night1/LA{a:03}.csv")),
            a,
            &lines,
            "2026-11-21T01:30:00Z",
            1,
            bom_crlf,
        )?;
        write_extract(
            &dir.join(format!("night2/LA{a:03}.csv")),
            a,
            &lines,
            "2026-11-22T01:30:00Z",
            2,
            bom_crlf,
        )?;
    }
    // One FULL of 1,000,000 records (NHS numbers reused past the test range's end).
    let mut rng1m = Rng(seed ^ 0x1111);
    let lines: Vec<String> = (0..1_000_000)
        .map(|i| record(&mut rng1m, 0, i, &numbers[i % numbers.len()]))
        .collect();
    write_extract(
        &dir.join("full_1m.csv"),
        0,
        &lines,
        "2026-11-21T01:30:00Z",
        1,
        false,
    )?;
    // 10,000 attendance events, about 10% for held NHS numbers.
    let mut text = String::from("#cpis-attendance v1 site=S000 sent_at=2026-11-22T09:00:00Z records=10000\nevent_id,nhs_number,accessed_at,site_ods_code,setting,user_name,user_role\n");
    for i in 0..10_000 {
        let nhs = if rng.chance(0.10) {
            held[rng.below(held.len() as u64) as usize].clone()
        } else {
            numbers[numbers.len() - 1 - i].clone()
        };
        let _ = writeln!(
            text,
            "E{i:05},{nhs},2026-11-22T0{}:{:02}:00Z,S000A,ED,Dr Example,Registrar",
            6 + i % 3,
            i % 60
        );
    }
    fs::write(dir.join("attendance.csv"), text)?;
    fs::write(
        &stamp,
        format!("records in the national night: {}\n", held.len()),
    )?;
    Ok(())
}

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
    let exe_dir = std::env::current_exe()?
        .parent()
        .map(Path::to_path_buf)
        .context("exe dir")?;
    let hub = exe_dir.join("cpis-hub");
    let loader = exe_dir.join("minimal-loader");
    let work = PathBuf::from(value("--work", "target/bench-work"));
    fs::create_dir_all(&work)?;
    let work = fs::canonicalize(&work)?;
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
    let mut rows: Vec<Row> = Vec::new();
    let now = ["--config", "cpis-hub.toml", "--now", NOW];
    let hub_run = |dir: &Path, extra: &[&str]| -> anyhow::Result<Run> {
        let mut a: Vec<&str> = now.to_vec();
        a.extend_from_slice(extra);
        measure(dir, &hub, &a)
    };

    // Reference states: the national night applied once, by each tool.
    eprintln!("preparing the national index ...");
    let base = hub_dir(&work, "base-hub", 1, None, &night(&data, "night1"))?;
    hub_run(&base, &["process"])?;
    let base_loader = work.join("runs/base-loader.sqlite3");
    let _ = fs::remove_file(&base_loader);
    let night1: Vec<String> = (0..AUTHORITIES)
        .map(|a| {
            data.join(format!("night1/LA{a:03}.csv"))
                .display()
                .to_string()
        })
        .collect();
    let night2: Vec<String> = (0..AUTHORITIES)
        .map(|a| {
            data.join(format!("night2/LA{a:03}.csv"))
                .display()
                .to_string()
        })
        .collect();
    let mut largs: Vec<&str> = vec![base_loader.to_str().unwrap_or_default()];
    largs.extend(night1.iter().map(String::as_str));
    measure(&work, &loader, &largs)?;

    let mut a = Row {
        scenario: "national night, empty index".into(),
        tool: "cpis-hub".into(),
        records: national,
        runs: vec![],
    };
    let mut b = Row {
        scenario: "national night, empty index".into(),
        tool: "minimal loader".into(),
        records: national,
        runs: vec![],
    };
    let mut c = Row {
        scenario: "national night, empty index".into(),
        tool: "sqlite3 .import".into(),
        records: national,
        runs: vec![],
    };
    let mut ra = Row {
        scenario: "national night re-applied".into(),
        tool: "cpis-hub".into(),
        records: national,
        runs: vec![],
    };
    let mut rb = Row {
        scenario: "national night re-applied".into(),
        tool: "minimal loader".into(),
        records: national,
        runs: vec![],
    };
    for i in 0..runs {
        eprintln!("national night, run {} of {runs} ...", i + 1);
        let d = hub_dir(&work, "night-hub", 1, None, &night(&data, "night1"))?;
        a.runs.push(hub_run(&d, &["process"])?);
        let db = work.join("runs/night-loader.sqlite3");
        let _ = fs::remove_file(&db);
        let mut la: Vec<&str> = vec![db.to_str().unwrap_or_default()];
        la.extend(night1.iter().map(String::as_str));
        b.runs.push(measure(&work, &loader, &la)?);
        let idb = work.join("runs/import.sqlite3");
        let _ = fs::remove_file(&idb);
        let mut script = String::from("CREATE TABLE records (local_id TEXT, nhs_number TEXT, plan_type TEXT, date_of_birth TEXT, start_date TEXT, end_date TEXT, PRIMARY KEY (local_id, plan_type));\n");
        for f in &night1 {
            let _ = writeln!(script, ".import --csv --skip 2 {f} records");
        }
        fs::write(work.join("runs/import.sql"), script)?;
        c.runs.push(measure(
            &work,
            Path::new("/bin/sh"),
            &[
                "-c",
                &format!(
                    "sqlite3 {} < runs/import.sql 2>/dev/null; true",
                    idb.display()
                ),
            ],
        )?);

        let d = hub_dir(
            &work,
            "reapply-hub",
            1,
            Some(&base),
            &night(&data, "night2"),
        )?;
        ra.runs.push(hub_run(&d, &["process"])?);
        let db = work.join("runs/reapply-loader.sqlite3");
        fs::copy(&base_loader, &db)?;
        let mut la: Vec<&str> = vec![db.to_str().unwrap_or_default()];
        la.extend(night2.iter().map(String::as_str));
        rb.runs.push(measure(&work, &loader, &la)?);
    }
    let (mut ma, mut mb) = (None, None);
    if !quick {
        let mut x = Row {
            scenario: "1M-record FULL, empty index".into(),
            tool: "cpis-hub".into(),
            records: 1_000_000,
            runs: vec![],
        };
        let mut y = Row {
            scenario: "1M-record FULL, empty index".into(),
            tool: "minimal loader".into(),
            records: 1_000_000,
            runs: vec![],
        };
        for i in 0..runs {
            eprintln!("1M FULL, run {} of {runs} ...", i + 1);
            let d = hub_dir(
                &work,
                "big-hub",
                1,
                None,
                &[(
                    data.join("full_1m.csv"),
                    "X26LA000".into(),
                    "full.csv".into(),
                )],
            )?;
            x.runs.push(hub_run(&d, &["process"])?);
            let db = work.join("runs/big-loader.sqlite3");
            let _ = fs::remove_file(&db);
            let f = data.join("full_1m.csv");
            y.runs.push(measure(
                &work,
                &loader,
                &[
                    db.to_str().unwrap_or_default(),
                    f.to_str().unwrap_or_default(),
                ],
            )?);
        }
        ma = Some(x);
        mb = Some(y);
    }
    let mut att = Row {
        scenario: "10k attendance, national index".into(),
        tool: "cpis-hub".into(),
        records: 10_000,
        runs: vec![],
    };
    let mut full200 = Row {
        scenario: "FULL alerts, national index".into(),
        tool: "200 sites".into(),
        records: 0,
        runs: vec![],
    };
    let mut full1 = Row {
        scenario: "FULL alerts, national index".into(),
        tool: "1 site".into(),
        records: 0,
        runs: vec![],
    };
    let mut copies = Row {
        scenario: "FULL alerts, national index".into(),
        tool: "cp x200 + syncfs".into(),
        records: 0,
        runs: vec![],
    };
    for i in 0..runs {
        eprintln!("attendance and alerts, run {} of {runs} ...", i + 1);
        let d = hub_dir(
            &work,
            "att-hub",
            1,
            Some(&base),
            &[(
                data.join("attendance.csv"),
                "X26S000".into(),
                "att.csv".into(),
            )],
        )?;
        att.runs.push(hub_run(&d, &["process"])?);
        let d = hub_dir(&work, "alerts200", SITES, Some(&base), &[])?;
        full200
            .runs
            .push(hub_run(&d, &["process", "--emit", "alerts"])?);
        let d = hub_dir(&work, "alerts1", 1, Some(&base), &[])?;
        full1
            .runs
            .push(hub_run(&d, &["process", "--emit", "alerts"])?);
        // The physical floor of the 200-site case: the same bytes copied 200 times
        // by `cp`, then made durable (`sync -f` = syncfs, as the hub does).
        let out = d.join("mb/X26S000/out");
        let rendered = fs::read_dir(&out)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "csv"))
            .context("the 1-site run wrote no alert file")?;
        let cp = work.join("runs/cp200");
        let _ = fs::remove_dir_all(&cp);
        fs::create_dir_all(&cp)?;
        copies.runs.push(measure(
            &work,
            Path::new("/bin/sh"),
            &[
                "-c",
                &format!(
                    "for i in $(seq 1 {SITES}); do cp {} {}/$i; done; sync -f {}",
                    rendered.display(),
                    cp.display(),
                    cp.display()
                ),
            ],
        )?);
        fs::remove_dir_all(&cp)?;
    }
    if flag("--keep").is_none() {
        let _ = fs::remove_dir_all(work.join("runs"));
    }

    println!("cpis-hub benchmark, seed {seed}, {runs} interleaved runs per scenario, national night = {national} records in {AUTHORITIES} files");
    println!();
    rows.extend([a, b, c, ra, rb]);
    if let (Some(x), Some(y)) = (ma, mb) {
        rows.extend([x, y]);
    }
    rows.extend([att, full200, full1, copies]);
    print_table(&rows);
    println!();
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
    println!();
    println!("daemon latency and idle CPU: python3 bench/daemon_latency.py (bench/run.sh runs it after this)");
    Ok(())
}
