//! The least a correct loader must do (the benchmark's reference, issue 7): stream a
//! CSV extract, check NHS number + Modulus 11, ISO dates and plan type, and upsert
//! with one prepared statement in one transaction per file. No receipts, no ledger,
//! no FULL rule, no duplicate or staleness checks.
//!
//!     minimal-loader DATABASE FILE...

use std::fs::File;
use std::io::{BufRead, BufReader};

use anyhow::Context;
use rusqlite::{params, Connection};

fn nhs_ok(text: &str) -> Option<String> {
    let digits: String = text.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    if digits.len() != 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let d: Vec<u32> = digits.bytes().map(|b| u32::from(b - b'0')).collect();
    let total: u32 = d[..9].iter().zip((2..=10).rev()).map(|(x, w)| x * w).sum();
    let check = match 11 - total % 11 {
        11 => 0,
        10 => return None,
        c => c,
    };
    (check == d[9]).then_some(digits)
}

fn date_ok(text: &str) -> bool {
    text.is_empty() || chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok()
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (db, files) = args
        .split_first()
        .context("usage: minimal-loader DATABASE FILE...")?;
    let mut conn = Connection::open(db)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS records (authority TEXT NOT NULL, local_id TEXT NOT NULL, plan_type TEXT NOT NULL,
         nhs_number TEXT NOT NULL, date_of_birth TEXT, start_date TEXT, end_date TEXT, PRIMARY KEY (authority, local_id, plan_type))",
    )?;
    let (mut loaded, mut rejected) = (0u64, 0u64);
    for path in files {
        let mut reader = BufReader::new(File::open(path).with_context(|| path.clone())?);
        let mut meta = String::new();
        reader.read_line(&mut meta)?;
        let authority = meta
            .split_whitespace()
            .find_map(|t| t.strip_prefix("authority="))
            .context("no authority= on line 1")?
            .to_string();
        let mut csv = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
        let header: Vec<String> = csv
            .headers()?
            .iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .collect();
        let col = |name: &str| header.iter().position(|h| h == name);
        let (l, n, p, b, s, e) = (
            col("local_id"),
            col("nhs_number"),
            col("plan_type"),
            col("date_of_birth"),
            col("start_date"),
            col("end_date"),
        );
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare(
                "INSERT INTO records VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (authority, local_id, plan_type) DO UPDATE SET
                 nhs_number = excluded.nhs_number, date_of_birth = excluded.date_of_birth, start_date = excluded.start_date, end_date = excluded.end_date",
            )?;
            let mut rec = csv::StringRecord::new();
            while csv.read_record(&mut rec)? {
                let get = |i: Option<usize>| i.and_then(|i| rec.get(i)).unwrap_or("").trim();
                let plan = get(p);
                let (dob, start, end) = (get(b), get(s), get(e));
                let nhs = nhs_ok(get(n));
                if get(l).is_empty()
                    || !matches!(plan, "CPP" | "LAC" | "UCPP")
                    || nhs.is_none()
                    || !date_ok(dob)
                    || !date_ok(start)
                    || !date_ok(end)
                {
                    rejected += 1;
                    continue;
                }
                stmt.execute(params![authority, get(l), plan, nhs, dob, start, end])?;
                loaded += 1;
            }
        }
        tx.commit()?;
    }
    println!("loaded {loaded}, rejected {rejected}");
    Ok(())
}
