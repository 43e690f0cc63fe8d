//! How a failure is told and classified: the environment (retried as long as it
//! lasts), the file's own (answered after bounded retries), never readable
//! (answered at once), or gone.

use std::io::{self};
use std::path::Path;

use super::extract::ExtractError;
use crate::emit::render::EmitError;
use crate::index::IndexError;

/// A pass failed in a way that needs an operator (or a retry).
#[derive(Debug, thiserror::Error)]
pub(crate) enum PassError {
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Emit(#[from] EmitError),
    #[error("file system error on {path}: {source}")]
    Io { path: String, source: io::Error },
}

pub(super) fn io_at(path: &Path) -> impl FnOnce(io::Error) -> PassError + '_ {
    move |source| PassError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Maps a failure to read or apply the file at `path` (used with `map_err`).
pub(super) fn extract_failed(path: &Path) -> impl FnOnce(ExtractError) -> PassError + '_ {
    move |e| match e {
        ExtractError::Io(source) => PassError::Io {
            path: path.display().to_string(),
            source,
        },
        ExtractError::Index(e) => e.into(),
    }
}

/// How a failure to process a message is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// The environment, not the file (a full disk, the database busy, a folder not
    /// writable): the file stays in `in/` and is tried again with backoff for as
    /// long as it takes; nothing the file could change.
    Environment,
    /// Possibly the file's own doing (an error no environment explains): tried again,
    /// and after [`MAX_ATTEMPTS`] failing the same way, answered and moved to
    /// `failed/`.
    File,
    /// Will never succeed (the object itself cannot be read): moved to `failed/`
    /// with a receipt at once.
    Permanent,
    /// The file disappeared (its sender took it back): nothing to do.
    Vanished,
}

impl PassError {
    /// Classifies a failure explicitly (see [`ErrorKind`]).
    pub(crate) fn kind(&self) -> ErrorKind {
        match self {
            PassError::Index(e) | PassError::Emit(EmitError::Index(e)) => classify_index(e),
            PassError::Emit(EmitError::Io { source, .. }) | PassError::Io { source, .. } => {
                classify_io(source)
            }
            PassError::Emit(EmitError::Missing(_)) => ErrorKind::File,
        }
    }
}

/// The database's own state (busy, full, read-only, unreadable) is the environment;
/// a statement that fails on what the file brought (a constraint, a value too big)
/// is the file's.
pub(super) fn classify_index(e: &IndexError) -> ErrorKind {
    if e.is_environment() {
        ErrorKind::Environment
    } else {
        ErrorKind::File
    }
}

/// The object itself can never be read: permanent. Missing: vanished. Resources and
/// permissions: the environment. Anything else may be the file's.
pub(crate) fn classify_io(e: &io::Error) -> ErrorKind {
    use io::ErrorKind as K;
    match e.kind() {
        K::NotFound => ErrorKind::Vanished,
        K::InvalidData | K::InvalidInput | K::IsADirectory | K::FileTooLarge | K::Unsupported => {
            ErrorKind::Permanent
        }
        K::StorageFull
        | K::QuotaExceeded
        | K::ReadOnlyFilesystem
        | K::PermissionDenied
        | K::Interrupted
        | K::TimedOut
        | K::WouldBlock
        | K::OutOfMemory
        | K::ResourceBusy
        | K::StaleNetworkFileHandle
        | K::NotADirectory
        | K::AlreadyExists
        | K::DirectoryNotEmpty
        | K::CrossesDevices
        | K::TooManyLinks => ErrorKind::Environment,
        _ if e.raw_os_error() == Some(libc::EIO) => ErrorKind::Environment,
        _ => ErrorKind::File,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_classified() {
        use std::io::{Error, ErrorKind as K};
        assert_eq!(
            classify_io(&Error::from(K::PermissionDenied)),
            ErrorKind::Environment
        );
        assert_eq!(
            classify_io(&Error::from(K::StorageFull)),
            ErrorKind::Environment
        );
        assert_eq!(classify_io(&Error::from(K::NotFound)), ErrorKind::Vanished);
        assert_eq!(
            classify_io(&Error::from(K::InvalidData)),
            ErrorKind::Permanent
        );
        assert_eq!(
            classify_io(&Error::from(K::IsADirectory)),
            ErrorKind::Permanent
        );
        assert_eq!(classify_io(&Error::other("odd")), ErrorKind::File);
    }
}
