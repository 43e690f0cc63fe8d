//! Unit tests of the index: migrations and the two upsert paths.

use chrono::NaiveDate;
use proptest::prelude::*;

use super::records::{
    content_hash, end_record, for_each_held, ChangeSeq, Held, RecordWriter, Upserted,
};
use super::*;
use crate::nhs::NhsNumber;
use crate::validate::{Action, ExtractRecord, PlanType};

fn record(
    local_id: &str,
    nhs: &str,
    start: &str,
    end: Option<&str>,
    team: Option<&str>,
) -> ExtractRecord {
    let date = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    ExtractRecord {
        action: Action::Upsert,
        local_id: local_id.into(),
        plan_type: PlanType::Cpp,
        nhs_number: Some(NhsNumber::parse(nhs).unwrap()),
        date_of_birth: Some(date("2016-04-01")),
        start_date: Some(date(start)),
        end_date: end.map(date),
        team: team.map(String::from),
        office_hours_phone: None,
        out_of_hours_phone: None,
        email: None,
    }
}

fn change_seq(conn: &rusqlite::Connection) -> i64 {
    conn.query_row(
        "SELECT value FROM counters WHERE name = 'change_seq'",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

/// A version-1 database (no `row_hash`) opens as version 2; its rows are compared
/// column by column until an unchanged upsert stores their hash, without a change.
#[test]
fn a_version_1_database_migrates_and_hashes_rows_without_changing_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.sqlite3");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(schema::MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute_batch(
            "INSERT INTO records (authority, local_id, plan_type, nhs_number, date_of_birth, start_date, created_seq, change_seq)
             VALUES ('LA204', 'M1', 'CPP', '9991000003', '2016-04-01', '2026-01-10', 1, 1);
             UPDATE counters SET value = 1 WHERE name = 'change_seq';",
        )
        .unwrap();
    }
    let mut index = Index::open(&path).unwrap();
    assert_eq!(index.schema_version().unwrap(), SCHEMA_VERSION);
    let tx = index.begin().unwrap();
    let hash: Option<i64> = tx
        .conn()
        .query_row("SELECT row_hash FROM records", [], |r| r.get(0))
        .unwrap();
    assert_eq!(hash, None);
    let mut seqs = ChangeSeq::load(tx.db()).unwrap();
    let mut writer = RecordWriter::new(&tx).unwrap();
    let same = record("M1", "9991000003", "2026-01-10", None, None);
    let (what, held) = writer.upsert(&mut seqs, "LA204", &same).unwrap();
    assert_eq!(what, Upserted::Unchanged);
    // The next night, knowing the hash: unchanged without a read.
    let (again, _) = writer
        .upsert_known(&mut seqs, "LA204", Some(held), &same, content_hash(&same))
        .unwrap();
    assert_eq!(again, Upserted::Unchanged);
    drop(writer);
    seqs.save(&tx).unwrap();
    let hash: Option<i64> = tx
        .conn()
        .query_row("SELECT row_hash FROM records", [], |r| r.get(0))
        .unwrap();
    assert_eq!(hash, Some(held.hash));
    assert_eq!(
        change_seq(tx.conn()),
        1,
        "an unchanged record was written as a change"
    );
}

fn arb_record() -> impl Strategy<Value = (u8, bool, bool, Option<u8>)> {
    // (which child, a different start date, ended, a team name)
    (
        0u8..6,
        any::<bool>(),
        any::<bool>(),
        proptest::option::of(0u8..3),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever sequence of upserts arrives, knowing what is held (the hash path)
    /// leaves exactly the rows and change counter the per-line read path leaves,
    /// including rows the hub ended itself (hash unknown).
    #[test]
    fn the_hash_path_and_the_read_path_apply_alike(
        nights in proptest::collection::vec(proptest::collection::vec(arb_record(), 0..8), 1..5)
    ) {
        let nhs = ["9991000003", "9991000011", "9991000038", "9991000046", "9991000054", "9991000062"];
        let mut results = Vec::new();
        for known in [false, true] {
            let mut index = Index::in_memory().unwrap();
            let tx = index.begin().unwrap();
            let mut seqs = ChangeSeq::load(tx.db()).unwrap();
            for (n, night) in nights.iter().enumerate() {
                let mut held: std::collections::HashMap<String, Held> = std::collections::HashMap::new();
                for_each_held(tx.db(), "LA204", NaiveDate::from_ymd_opt(2026, 11, 22).unwrap(), u64::MAX, |id, _, h| {
                    held.insert(String::from_utf8_lossy(id).into_owned(), h);
                }).unwrap();
                let mut writer = RecordWriter::new(&tx).unwrap();
                for (child, later, ended, team) in night {
                    let id = format!("K{child}");
                    let r = record(
                        &id,
                        nhs[*child as usize],
                        if *later { "2026-02-10" } else { "2026-01-10" },
                        ended.then_some("2026-11-01"),
                        team.map(|t| ["Blue", "Green", ""][t as usize]),
                    );
                    if known {
                        let (_, h) = writer.upsert_known(&mut seqs, "LA204", held.get(&id).copied(), &r, content_hash(&r)).unwrap();
                        held.insert(id, h);
                    } else {
                        writer.upsert(&mut seqs, "LA204", &r).unwrap();
                    }
                }
                drop(writer);
                // The hub ends one record itself between nights (hash unknown after).
                let first: Option<i64> = tx.conn().query_row("SELECT min(id) FROM records WHERE end_date IS NULL", [], |r| r.get(0)).unwrap();
                if let (Some(id), true) = (first, n % 2 == 0) {
                    end_record(&tx, &mut seqs, id, NaiveDate::from_ymd_opt(2026, 11, 21).unwrap(), crate::model::EndedReason::AbsentFromFull).unwrap();
                }
            }
            seqs.save(&tx).unwrap();
            let rows: Vec<String> = tx
                .conn()
                .prepare("SELECT id, local_id, nhs_number, start_date, end_date, ended_reason, team, created_seq, change_seq FROM records ORDER BY id")
                .unwrap()
                .query_map([], |r| {
                    Ok(format!("{:?}", (
                        r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?,
                        r.get::<_, Option<String>>(4)?, r.get::<_, Option<String>>(5)?, r.get::<_, Option<String>>(6)?,
                        r.get::<_, i64>(7)?, r.get::<_, i64>(8)?,
                    )))
                })
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            results.push((rows, change_seq(tx.conn())));
        }
        prop_assert_eq!(&results[0], &results[1]);
    }
}

/// A new database gets 8 KiB pages; one created with SQLite's default 4 KiB pages (by
/// an earlier build) keeps them and is used as it is: a page size is fixed once a
/// database in WAL mode has been written.
#[test]
fn a_new_database_has_8k_pages_and_an_older_one_keeps_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let page_size = |index: &Index| -> i64 {
        index
            .conn
            .pragma_query_value(None, "page_size", |r| r.get(0))
            .unwrap()
    };
    let fresh = Index::open(&dir.path().join("new.sqlite3")).unwrap();
    assert_eq!(page_size(&fresh), 8192);

    let old = dir.path().join("old.sqlite3");
    {
        let conn = rusqlite::Connection::open(&old).unwrap();
        conn.pragma_update(None, "page_size", 4096).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch(schema::MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
    }
    let mut index = Index::open(&old).unwrap();
    assert_eq!(page_size(&index), 4096);
    assert_eq!(index.schema_version().unwrap(), SCHEMA_VERSION);
    let tx = index.begin().unwrap();
    let mut seqs = ChangeSeq::load(tx.db()).unwrap();
    let mut writer = RecordWriter::new(&tx).unwrap();
    let r = record("M1", "9991000003", "2026-01-10", None, Some("North"));
    assert_eq!(
        writer.upsert(&mut seqs, "LA204", &r).unwrap().0,
        Upserted::Inserted
    );
    drop(writer);
    seqs.save(&tx).unwrap();
    tx.commit().unwrap();
}

/// The held-records scan gives everything when the authority holds at most the
/// limit, and says so when it holds more (the caller then reads per line).
#[test]
fn the_held_scan_stops_only_above_its_limit() {
    let mut index = Index::in_memory().unwrap();
    let tx = index.begin().unwrap();
    let mut seqs = ChangeSeq::load(tx.db()).unwrap();
    let mut writer = RecordWriter::new(&tx).unwrap();
    for (id, nhs) in [
        ("A1", "9991000003"),
        ("A2", "9991000011"),
        ("A3", "9991000038"),
    ] {
        writer
            .upsert(
                &mut seqs,
                "LA204",
                &record(id, nhs, "2026-01-10", None, None),
            )
            .unwrap();
    }
    writer
        .upsert(
            &mut seqs,
            "LA205",
            &record("B1", "9991000046", "2026-01-10", None, None),
        )
        .unwrap();
    drop(writer);
    let on = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
    let scan = |limit| {
        let mut ids = Vec::new();
        let all = for_each_held(tx.db(), "LA204", on, limit, |local_id, _, _| {
            ids.push(String::from_utf8(local_id.to_vec()).unwrap())
        })
        .unwrap();
        (all, ids)
    };
    assert_eq!(scan(3), (true, vec!["A1".into(), "A2".into(), "A3".into()]));
    assert!(scan(4).0);
    assert_eq!(scan(2), (false, vec!["A1".into(), "A2".into()]));
    assert_eq!(scan(0), (false, vec![]));
}

/// Each shipped migration's text, pinned: a change to one that has shipped fails
/// here (append a new migration instead). A database migrated by an edited text
/// would keep what the new text no longer makes, as the first text of 1 -> 2 did.
#[test]
fn shipped_migrations_are_never_edited() {
    use sha2::{Digest, Sha256};
    const SHIPPED: &[&str] = &[
        "06173df2f3187ea5c98cab3385642d51f444cdab3a53d8153657e7768e4e694f",
        "2bbb0c1a2a52fa48b08f52f223a1210ac5bf5556e62d57afa8e8f099a0ca91ef",
        "3f23edfc59ad7acc88caa9dbae2633a20e350d146c37a0db1fe5ffab47ac1bbd",
        "d56735c36c14abbd4b49507a0e98b5e64ac1d7188ca991fd78bc11b98d3c8c62",
        "b37f3def6a1837635c3963de857ab1336e72913145be83b1b6658b0ac9377c88",
    ];
    let got: Vec<String> = schema::MIGRATIONS
        .iter()
        .map(|m| {
            Sha256::digest(m.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        })
        .collect();
    assert_eq!(
        got.len(),
        SHIPPED.len(),
        "a new migration: pin its text here"
    );
    assert_eq!(got, SHIPPED, "a shipped migration was edited");
}

/// The schema as SQLite holds it (tables, indexes, triggers), ordered.
fn schema_of(conn: &rusqlite::Connection) -> Vec<(String, String, String)> {
    let mut stmt = conn
        .prepare("SELECT type, name, coalesce(sql, '') FROM sqlite_master ORDER BY type, name")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

/// A database migrated at version 2 by the first text of 1 -> 2 (it kept
/// `records_by_end`) ends, after the migrations of this build, equal to a fresh one.
#[test]
fn a_database_migrated_by_the_first_text_of_1_to_2_ends_equal_to_a_fresh_one() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.sqlite3");
    {
        let conn = rusqlite::Connection::open(&old).unwrap();
        conn.execute_batch(schema::MIGRATIONS[0]).unwrap();
        // 1 -> 2 as first shipped (issue 7): without `DROP INDEX records_by_end`.
        conn.execute_batch("ALTER TABLE records ADD COLUMN row_hash INTEGER;")
            .unwrap();
        conn.pragma_update(None, "user_version", 2).unwrap();
    }
    let migrated = Index::open(&old).unwrap();
    let fresh = Index::open(&dir.path().join("fresh.sqlite3")).unwrap();
    assert_eq!(schema_of(&migrated.conn), schema_of(&fresh.conn));
    assert_eq!(migrated.schema_version().unwrap(), SCHEMA_VERSION);
}

#[test]
fn database_errors_are_the_environment_or_the_file() {
    let sql = |code: i32| {
        IndexError::Sql(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(code),
            None,
        ))
    };
    for code in [
        rusqlite::ffi::SQLITE_FULL,
        rusqlite::ffi::SQLITE_BUSY,
        rusqlite::ffi::SQLITE_IOERR,
        rusqlite::ffi::SQLITE_CORRUPT,
    ] {
        assert!(sql(code).is_environment(), "{code}");
    }
    for code in [
        rusqlite::ffi::SQLITE_CONSTRAINT,
        rusqlite::ffi::SQLITE_TOOBIG,
    ] {
        assert!(!sql(code).is_environment(), "{code}");
    }
    assert!(!IndexError::injected_constraint().is_environment());
}
