//! `process`: one pass (downloads from every remote meanwhile, uploads after), and
//! what `run` shares with it: the checks and lock before a hub that writes starts.

use super::args::EmitKind;
use super::{usage, warn_line, Exit};
use crate::clock::Clock;
use crate::config::Config;
use crate::index::{self, Index};
use crate::lock::Lock;
use crate::pipeline::{self, PassOptions};
use crate::transport::mesh;

pub(super) fn run(config: &Config, emit: &[EmitKind], now: Clock) -> Result<i32, Exit> {
    let (_lock, mut index) = open_for_processing(config)?;
    // MESH (§9): a handshake and one poll before the pass, what it wrote sent after.
    let mut mesh_failed = false;
    if config.mesh.is_some() {
        let steps = mesh::Steps {
            handshake: true,
            receive: true,
            send: false,
        };
        if let Err(e) = mesh::round(config, &mut index, &now, steps) {
            mesh::log_failure(&e);
            warn_line(format_args!("MESH: {e}"));
            mesh_failed = true;
        }
    }
    let (report, mut failures) =
        crate::transport::sftp::download_all_while(config, &now, |mailboxes, ready| {
            let options = PassOptions {
                emit_holdings: emit.contains(&EmitKind::Holdings),
                alert_deltas: emit.contains(&EmitKind::Alerts),
                alert_fulls: emit.contains(&EmitKind::Alerts),
                downloading: Some(pipeline::Downloads { mailboxes, ready }),
                report_unconfigured: true,
                ..PassOptions::default()
            };
            pipeline::run_pass(config, &mut index, now, &options)
        });
    let report = report.map_err(|e| Exit(1, pass_error(config, e)))?;
    failures.extend(crate::transport::sftp::upload_all(config));
    // After a failed poll (a secret, the server down) nothing is sent: the files
    // wait in out/ for the next pass, and the server is not asked again.
    if config.mesh.is_some() && !mesh_failed {
        let steps = mesh::Steps {
            send: true,
            ..mesh::Steps::default()
        };
        match mesh::round(config, &mut index, &now, steps) {
            Ok(round) => {
                for name in &round.refused {
                    warn_line(format_args!(
                        "MESH: the server refused {name}: moved to out/refused/ (see `status`)"
                    ));
                }
                mesh_failed |= !round.refused.is_empty();
            }
            Err(e) => {
                mesh::log_failure(&e);
                warn_line(format_args!("MESH: {e}"));
                mesh_failed = true;
            }
        }
    }
    for f in &failures {
        warn_line(format_args!("SFTP {}: {}", f.mailbox, f.error));
    }
    // Each file's and partner's failure is in the log already (file_retry,
    // file_failed, partner_skipped): not said twice.
    Ok(if failures.is_empty() && !mesh_failed {
        report.exit_code()
    } else {
        1
    })
}

/// What `run` and `process` need before they touch a file: the layout checked
/// (§6.6), the lock, the database, and the mailbox root claimed for it. Exit 2 for
/// the configuration, the lock and a root that belongs to another database; 1 when
/// the database cannot be opened or written (a full disk is not a usage error).
pub(super) fn open_for_processing(config: &Config) -> Result<(Lock, Index), Exit> {
    crate::transport::check_layout(config).map_err(usage)?;
    let lock = Lock::acquire(&config.lock_path()).map_err(usage)?;
    let index = Index::open(&config.hub.database).map_err(|e| match e {
        index::IndexError::Folder { .. } | index::IndexError::TooNew { .. } => usage(e),
        other => Exit(1, database_context(config, other)),
    })?;
    let id =
        index::ledger::database_id(index.db()).map_err(|e| Exit(1, database_context(config, e)))?;
    crate::transport::claim_root(config, &id).map_err(usage)?;
    Ok((lock, index))
}

/// A failed pass, naming the database when the database failed.
fn pass_error(config: &Config, e: pipeline::PassError) -> anyhow::Error {
    use pipeline::PassError as P;
    match e {
        P::Index(_) | P::Emit(crate::emit::render::EmitError::Index(_)) => {
            database_context(config, e)
        }
        other => other.into(),
    }
}

/// An error that names the database it happened on (SQLite's own messages, such as
/// "database or disk is full", name none).
fn database_context(config: &Config, e: impl Into<anyhow::Error>) -> anyhow::Error {
    e.into()
        .context(format!("database {}", config.hub.database.display()))
}
