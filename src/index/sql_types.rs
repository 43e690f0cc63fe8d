//! How the hub's vocabulary (`model`) is stored: each as its spelling, read back
//! strictly (a spelling this build does not know is an error, not a guess).

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use crate::config::{Format, Framing};
use crate::formats::Kind;
use crate::model::{
    Code, Decision, DownloadState, EndedReason, Folder, MeshInKind, MeshInState, MeshOutState,
    MessageKind, MessageState, OutboundState, Severity, Status,
};

fn text<'a>(value: ValueRef<'a>) -> FromSqlResult<&'a str> {
    value.as_str()
}

fn unknown(what: &str, text: &str) -> FromSqlError {
    FromSqlError::Other(
        format!("unknown {what} {text:?} in the database (written by a newer cpis-hub?)").into(),
    )
}

macro_rules! stored_as_text {
    ($($ty:ty => $what:literal),* $(,)?) => {$(
        impl ToSql for $ty {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }
        impl FromSql for $ty {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                let t = text(value)?;
                <$ty>::parse(t).ok_or_else(|| unknown($what, t))
            }
        }
    )*};
}

stored_as_text!(
    Code => "problem code",
    Severity => "severity",
    Status => "status",
    MessageKind => "message kind",
    MessageState => "message state",
    OutboundState => "outbound state",
    DownloadState => "download state",
    Decision => "decision",
    EndedReason => "ended reason",
    Kind => "outbound kind",
    Format => "format",
    Framing => "framing",
    MeshInKind => "MESH inbound kind",
    MeshInState => "MESH inbound state",
    MeshOutState => "MESH outbound state",
);

impl ToSql for Folder {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.path()))
    }
}

impl FromSql for Folder {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let t = text(value)?;
        Folder::parse(t).ok_or_else(|| unknown("folder", t))
    }
}
