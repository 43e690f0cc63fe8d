//! The workload generator: every extract, attendance file and the 1M FULL of a
//! benchmark, made from a seed (the same files for the same seed, forever).
//! Synthetic only: NHS numbers in the 999 test range, invented names and codes.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use anyhow::Context;

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

pub(crate) const AUTHORITIES: usize = 152;
pub(crate) const SITES: usize = 200;
const EXTRACT_DAY: &str = "2026-11-21";
pub(crate) const NOW: &str = "2026-11-22T10:00:00Z";

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
pub(crate) fn generate(dir: &Path, seed: u64) -> anyhow::Result<()> {
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
