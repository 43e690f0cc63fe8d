//! A prepared statement whose text parameters are bound without a copy.
//!
//! rusqlite binds every text with `SQLITE_TRANSIENT`, so SQLite frees, allocates and
//! copies each value at every execution: for the 14 parameters of a record's INSERT
//! that was ~3,000 instructions a record, 8 % of loading the national night (issue 7).
//! [`BorrowedStatement::execute`] binds with `SQLITE_STATIC` instead. That is sound
//! because the values are borrowed for the call only, and the statement is reset and
//! its bindings cleared before the call returns: SQLite never holds a pointer to them
//! afterwards.
//!
//! State: one `sqlite3_stmt`, finalized on drop. Must never be used for a statement
//! that returns rows (it steps once), and never outlive its connection (the lifetime
//! says so).

use std::ffi::{c_char, c_int, CStr, CString};
use std::marker::PhantomData;
use std::ptr;

use rusqlite::{ffi, Connection};

/// One parameter value, borrowed for the duration of an execution.
#[derive(Debug, Clone, Copy)]
pub(super) enum Param<'a> {
    Null,
    Int(i64),
    Text(&'a str),
}

impl<'a> From<Option<&'a str>> for Param<'a> {
    fn from(text: Option<&'a str>) -> Self {
        text.map_or(Param::Null, Param::Text)
    }
}

/// A prepared statement executed with borrowed parameters (see the module doc).
pub(super) struct BorrowedStatement<'c> {
    db: *mut ffi::sqlite3,
    stmt: *mut ffi::sqlite3_stmt,
    _conn: PhantomData<&'c Connection>,
}

impl<'c> BorrowedStatement<'c> {
    /// Prepares `sql` (one statement that returns no rows) on `conn`.
    pub(super) fn prepare(conn: &'c Connection, sql: &str) -> rusqlite::Result<Self> {
        let text = CString::new(sql).map_err(rusqlite::Error::NulError)?;
        // SAFETY: `conn` is open for 'c, which bounds this value; `text` outlives the call.
        let db = unsafe { conn.handle() };
        let mut stmt = ptr::null_mut();
        let rc =
            unsafe { ffi::sqlite3_prepare_v2(db, text.as_ptr(), -1, &mut stmt, ptr::null_mut()) };
        if rc != ffi::SQLITE_OK {
            return Err(error(db, rc));
        }
        if stmt.is_null() {
            return Err(rusqlite::Error::InvalidQuery);
        }
        Ok(BorrowedStatement {
            db,
            stmt,
            _conn: PhantomData,
        })
    }

    /// Binds `params` to ?1, ?2 ..., runs the statement once, and returns the number of
    /// rows it changed. The statement is reset and its bindings cleared before this
    /// returns, whatever the outcome.
    pub(super) fn execute(&mut self, params: &[Param<'_>]) -> rusqlite::Result<usize> {
        let outcome = self.bind_and_step(params);
        // SAFETY: `stmt` is a live statement; after these calls SQLite holds no pointer
        // into `params`.
        unsafe {
            ffi::sqlite3_reset(self.stmt);
            ffi::sqlite3_clear_bindings(self.stmt);
        }
        outcome
    }

    fn bind_and_step(&mut self, params: &[Param<'_>]) -> rusqlite::Result<usize> {
        // SAFETY: the count is read from a live statement.
        let expected = unsafe { ffi::sqlite3_bind_parameter_count(self.stmt) };
        if params.len() != expected as usize {
            return Err(rusqlite::Error::InvalidParameterCount(
                params.len(),
                expected as usize,
            ));
        }
        for (i, param) in params.iter().enumerate() {
            let index = (i + 1) as c_int;
            // SAFETY: `stmt` is live; a text is bound SQLITE_STATIC and stays borrowed
            // until `execute` has cleared the bindings.
            let rc = unsafe {
                match *param {
                    Param::Null => ffi::sqlite3_bind_null(self.stmt, index),
                    Param::Int(v) => ffi::sqlite3_bind_int64(self.stmt, index, v),
                    Param::Text(t) => {
                        let len = c_int::try_from(t.len()).map_err(|_| {
                            rusqlite::Error::SqliteFailure(
                                ffi::Error::new(ffi::SQLITE_TOOBIG),
                                None,
                            )
                        })?;
                        ffi::sqlite3_bind_text(
                            self.stmt,
                            index,
                            t.as_ptr().cast::<c_char>(),
                            len,
                            ffi::SQLITE_STATIC(),
                        )
                    }
                }
            };
            if rc != ffi::SQLITE_OK {
                return Err(error(self.db, rc));
            }
        }
        // SAFETY: a live statement with every parameter bound.
        match unsafe { ffi::sqlite3_step(self.stmt) } {
            ffi::SQLITE_DONE => Ok(unsafe { ffi::sqlite3_changes(self.db) } as usize),
            ffi::SQLITE_ROW => Err(rusqlite::Error::ExecuteReturnedResults),
            rc => Err(error(self.db, rc)),
        }
    }
}

impl Drop for BorrowedStatement<'_> {
    fn drop(&mut self) {
        // SAFETY: finalized exactly once, while the connection is still open ('c).
        unsafe {
            ffi::sqlite3_finalize(self.stmt);
        }
    }
}

/// The error SQLite reports for `rc`, with its message.
fn error(db: *mut ffi::sqlite3, rc: c_int) -> rusqlite::Error {
    // SAFETY: `db` is open; the message is copied before any other call on it.
    let message = unsafe {
        let text = ffi::sqlite3_errmsg(db);
        (!text.is_null()).then(|| CStr::from_ptr(text).to_string_lossy().into_owned())
    };
    // The extended code says which constraint failed; rusqlite builds errors from it too.
    let code = unsafe { ffi::sqlite3_extended_errcode(db) };
    rusqlite::Error::SqliteFailure(ffi::Error::new(if code != 0 { code } else { rc }), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b INTEGER, c TEXT UNIQUE)",
        )
        .unwrap();
        conn
    }

    fn insert_into_t(conn: &Connection) -> BorrowedStatement<'_> {
        BorrowedStatement::prepare(conn, "INSERT INTO t (a, b, c) VALUES (?1, ?2, ?3)").unwrap()
    }

    #[test]
    fn borrowed_values_are_stored_as_given_and_not_kept_after_the_call() {
        let conn = conn();
        let mut insert = insert_into_t(&conn);
        for i in 0..3 {
            // Each value lives only for its own call; the next call reuses the memory.
            let a = format!("row {i} with a longer text");
            let c = format!("key{i}");
            let n = insert
                .execute(&[
                    Param::Text(&a),
                    Param::Int(i),
                    Param::from(Some(c.as_str())),
                ])
                .unwrap();
            assert_eq!(n, 1);
        }
        insert
            .execute(&[Param::Null, Param::Null, Param::Text("")])
            .unwrap();
        let rows: Vec<(Option<String>, Option<i64>, String)> = conn
            .prepare("SELECT a, b, c FROM t ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            vec![
                (
                    Some("row 0 with a longer text".into()),
                    Some(0),
                    "key0".into()
                ),
                (
                    Some("row 1 with a longer text".into()),
                    Some(1),
                    "key1".into()
                ),
                (
                    Some("row 2 with a longer text".into()),
                    Some(2),
                    "key2".into()
                ),
                (None, None, String::new()),
            ]
        );
    }

    #[test]
    fn a_failed_execution_reports_the_constraint_and_leaves_the_statement_usable() {
        let conn = conn();
        let mut insert = insert_into_t(&conn);
        insert
            .execute(&[Param::Text("x"), Param::Int(1), Param::Text("k")])
            .unwrap();
        let err = insert
            .execute(&[Param::Text("y"), Param::Int(2), Param::Text("k")])
            .unwrap_err();
        assert_eq!(
            err.sqlite_error_code(),
            Some(rusqlite::ErrorCode::ConstraintViolation),
            "{err}"
        );
        assert!(err.to_string().contains("UNIQUE"), "{err}");
        assert_eq!(
            insert
                .execute(&[Param::Text("z"), Param::Int(3), Param::Text("k2")])
                .unwrap(),
            1
        );
        let wrong = insert.execute(&[Param::Int(1)]).unwrap_err();
        assert!(
            matches!(wrong, rusqlite::Error::InvalidParameterCount(1, 3)),
            "{wrong}"
        );
        let count: i64 = conn
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 2);
    }

    #[test]
    fn a_statement_that_returns_rows_is_refused() {
        let conn = conn();
        let mut select = BorrowedStatement::prepare(&conn, "SELECT 1").unwrap();
        assert!(matches!(
            select.execute(&[]),
            Err(rusqlite::Error::ExecuteReturnedResults)
        ));
    }
}
