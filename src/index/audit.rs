//! The audit log: append-only (by trigger), a controlled record.

use rusqlite::params;

use super::IndexError;
use super::{Db, Tx};

type Result<T> = std::result::Result<T, IndexError>;

/// Appends to the audit log. `detail` is JSON; it never holds an NHS number except
/// for lookups, whose number is the record the audit exists to keep.
/// Appends to the audit log: the real time of the entry (never `--now`, which is
/// kept beside it when given), who, what.
pub(crate) fn audit(
    tx: &Tx<'_>,
    clock: &crate::clock::Clock,
    actor: &str,
    action: &str,
    detail: &serde_json::Value,
) -> Result<()> {
    let conn = tx.conn();
    let at = crate::clock::rfc3339(chrono::Utc::now());
    conn.prepare_cached(
        "INSERT INTO audit (at, actor, action, detail, pretend_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        at,
        actor,
        action,
        detail.to_string(),
        clock.pretended()
    ])?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuditRow {
    pub id: i64,
    /// The `--now` of the command, when it was given.
    pub pretend_at: Option<String>,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub detail: String,
}

/// Audit entries at or after `since` (RFC 3339 text), oldest first.
pub(crate) fn audit_since(db: Db<'_>, since: Option<&str>) -> Result<Vec<AuditRow>> {
    let conn = db.conn();
    let mut stmt = conn.prepare_cached(
        "SELECT id, at, actor, action, detail, pretend_at FROM audit WHERE ?1 IS NULL OR at >= ?1 ORDER BY id",
    )?;
    let rows = stmt
        .query_map([since], |r| {
            Ok(AuditRow {
                id: r.get(0)?,
                at: r.get(1)?,
                actor: r.get(2)?,
                action: r.get(3)?,
                detail: r.get(4)?,
                pretend_at: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}
