//! SFTP mailboxes (SPEC §6.4, `[[sftp]]`): a partner's remote folders, synchronised
//! with its local `in/` and `out/`.
//!
//! Download: each complete remote file (plain: a name that is not temporary and a
//! size unchanged across two listings; MESH: the `.dat` once its `.ctl` is there) is
//! recorded as `downloading`, copied to a dot-temporary name in the local `in/`,
//! checked against the remote size, fsynced and renamed into place, recorded
//! `local`, and only then removed from the remote (or moved to `processed/`) and
//! recorded `done`. A `.ctl` is placed after its `.dat`. Upload: every file in the
//! local `out/` (a MESH `.dat` only with its `.ctl`, which follows it) is written to
//! the remote under a temporary name, renamed (overwriting: a re-upload after a
//! crash is the same bytes), and the local file moved to `out/sent/`.
//!
//! Owns one SSH session at a time per remote. Blocking (ssh2): run it on its own
//! thread, never on the async workers. Must never trust an unknown or changed host
//! key, never read a passphrase from the config, never leave a partial file under a
//! final name locally, and never remove a remote file before the local copy is
//! durable and recorded.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ssh2::{CheckResult, KnownHostFileKind, Session, Sftp};
use tracing::warn;

use crate::clock::Clock;
use crate::config::{Config, SftpRemote};
use crate::index::{Index, IndexError};

mod download;
mod upload;

pub(crate) use download::download;
pub(crate) use upload::upload;

/// Why a remote could not be served; every kind is retried later (with backoff),
/// but those that need an operator say so.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SftpError {
    #[error("cannot connect to {host}:{port}: {source} (is the server up and reachable?)")]
    Connect {
        host: String,
        port: u16,
        source: io::Error,
    },
    #[error("host key of {host}:{port} is not in {known_hosts}: refusing to connect (add the partner's key to known_hosts after checking its fingerprint with them)")]
    UnknownHostKey {
        host: String,
        port: u16,
        known_hosts: PathBuf,
    },
    #[error("host key of {host}:{port} does NOT match {known_hosts}: refusing to connect (possible interception; confirm a key change with the partner before updating known_hosts)")]
    ChangedHostKey {
        host: String,
        port: u16,
        known_hosts: PathBuf,
    },
    #[error("private key {0} is readable by other users or its group: chmod 600 it")]
    KeyPermissions(PathBuf),
    #[error("cannot read {path}: {source}")]
    File { path: PathBuf, source: io::Error },
    #[error("the passphrase variable {0} is not set")]
    Passphrase(String),
    #[error("authentication as {user} with {key} failed: {source} (is the public key in the partner's authorized_keys?)")]
    Auth {
        user: String,
        key: PathBuf,
        source: ssh2::Error,
    },
    #[error("SSH/SFTP error on {what}: {source}")]
    Ssh { what: String, source: ssh2::Error },
    #[error("transfer failed while {what}: {source} (the connection may have dropped; it is tried again)")]
    Transfer { what: String, source: io::Error },
    #[error("local file error on {path}: {source}")]
    Local { path: PathBuf, source: io::Error },
    #[error("{name}: downloaded {got} bytes but the remote file has {want}: the transfer was cut; it is tried again")]
    ShortDownload { name: String, got: u64, want: u64 },
    #[error(transparent)]
    Index(#[from] IndexError),
}

impl SftpError {
    /// Errors an operator must fix (keys, known_hosts); the others are passing.
    pub(crate) fn needs_operator(&self) -> bool {
        matches!(
            self,
            SftpError::UnknownHostKey { .. }
                | SftpError::ChangedHostKey { .. }
                | SftpError::KeyPermissions(_)
                | SftpError::Passphrase(_)
                | SftpError::Auth { .. }
        )
    }
}

fn ssh(what: impl Into<String>) -> impl FnOnce(ssh2::Error) -> SftpError {
    let what = what.into();
    move |source| SftpError::Ssh { what, source }
}

fn local(path: &Path) -> impl FnOnce(io::Error) -> SftpError + '_ {
    move |source| SftpError::Local {
        path: path.to_path_buf(),
        source,
    }
}

/// Opens an authenticated SFTP session, checking the host key first.
pub(crate) fn connect(remote: &SftpRemote) -> Result<(Session, Sftp), SftpError> {
    let meta = fs::metadata(&remote.private_key).map_err(|source| SftpError::File {
        path: remote.private_key.clone(),
        source,
    })?;
    // Readable by the owner only: a key the group can read is refused too.
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(SftpError::KeyPermissions(remote.private_key.clone()));
    }
    let passphrase = match (&remote.passphrase_env, &remote.passphrase_file) {
        (Some(var), _) => Some(std::env::var(var).map_err(|_| SftpError::Passphrase(var.clone()))?),
        (None, Some(file)) => {
            let text = fs::read_to_string(file).map_err(|source| SftpError::File {
                path: file.clone(),
                source,
            })?;
            Some(text.lines().next().unwrap_or_default().to_string())
        }
        (None, None) => None,
    };
    let connect_err = |source| SftpError::Connect {
        host: remote.host.clone(),
        port: remote.port,
        source,
    };
    let addr = (remote.host.as_str(), remote.port)
        .to_socket_addrs()
        .map_err(connect_err)?
        .next()
        .ok_or_else(|| connect_err(io::Error::new(io::ErrorKind::NotFound, "no address")))?;
    let tcp = TcpStream::connect_timeout(&addr, remote.connect_timeout).map_err(connect_err)?;
    tcp.set_read_timeout(Some(remote.io_timeout))
        .map_err(connect_err)?;
    tcp.set_write_timeout(Some(remote.io_timeout))
        .map_err(connect_err)?;
    let mut session = Session::new().map_err(ssh("session"))?;
    session.set_tcp_stream(tcp);
    session.set_timeout(remote.io_timeout.as_millis().min(u128::from(u32::MAX)) as u32);
    session.handshake().map_err(ssh("handshake"))?;

    let (key, _) = session
        .host_key()
        .ok_or_else(|| SftpError::UnknownHostKey {
            host: remote.host.clone(),
            port: remote.port,
            known_hosts: remote.known_hosts.clone(),
        })?;
    let mut known = session.known_hosts().map_err(ssh("known_hosts"))?;
    known
        .read_file(&remote.known_hosts, KnownHostFileKind::OpenSSH)
        .map_err(|e| SftpError::File {
            path: remote.known_hosts.clone(),
            source: io::Error::other(e.to_string()),
        })?;
    match known.check_port(&remote.host, remote.port, key) {
        CheckResult::Match => {}
        CheckResult::Mismatch => {
            return Err(SftpError::ChangedHostKey {
                host: remote.host.clone(),
                port: remote.port,
                known_hosts: remote.known_hosts.clone(),
            })
        }
        CheckResult::NotFound | CheckResult::Failure => {
            return Err(SftpError::UnknownHostKey {
                host: remote.host.clone(),
                port: remote.port,
                known_hosts: remote.known_hosts.clone(),
            })
        }
    }
    session
        .userauth_pubkey_file(
            &remote.user,
            None,
            &remote.private_key,
            passphrase.as_deref(),
        )
        .map_err(|source| SftpError::Auth {
            user: remote.user.clone(),
            key: remote.private_key.clone(),
            source,
        })?;
    let sftp = session.sftp().map_err(ssh("sftp subsystem"))?;
    Ok((session, sftp))
}

/// Sizes seen at the previous listing of a remote, to tell a complete plain file
/// (same size twice) from one still being written.
#[derive(Debug, Default)]
pub(crate) struct Listings {
    sizes: HashMap<String, u64>,
}

/// What one synchronisation did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct SyncReport {
    pub downloaded: Vec<String>,
    pub uploaded: Vec<String>,
}

struct RemoteFile {
    name: String,
    size: u64,
    mtime: u64,
}

fn list(sftp: &Sftp, dir: &str) -> Result<Vec<RemoteFile>, SftpError> {
    let entries = sftp
        .readdir(Path::new(dir))
        .map_err(ssh(format!("listing {dir}")))?;
    let mut files: Vec<RemoteFile> = entries
        .into_iter()
        .filter(|(_, stat)| stat.is_file())
        .filter_map(|(path, stat)| {
            let name = path.file_name()?.to_str()?.to_string();
            Some(RemoteFile {
                name,
                size: stat.size.unwrap_or(0),
                mtime: stat.mtime.unwrap_or(0),
            })
        })
        .collect();
    files.sort_by(|a, b| a.mtime.cmp(&b.mtime).then_with(|| a.name.cmp(&b.name)));
    Ok(files)
}

fn remote_path(dir: &str, name: &str) -> PathBuf {
    Path::new(dir).join(name)
}

/// One synchronisation of a remote: connect, download, upload.
pub(crate) fn sync(
    remote: &SftpRemote,
    config: &Config,
    now: &Clock,
    listings: &mut Listings,
    downloads: bool,
) -> Result<SyncReport, SftpError> {
    let mut index = Index::open(&config.hub.database)?;
    let (_session, sftp) = connect(remote)?;
    let mut report = SyncReport::default();
    if downloads {
        report.downloaded = download(&sftp, remote, config, &mut index, now, listings)?;
    }
    report.uploaded = upload(&sftp, remote, config)?;
    Ok(report)
}

/// Logs a failed synchronisation (never with personal data: names of files only).
pub(crate) fn log_failure(remote: &SftpRemote, e: &SftpError) {
    if e.needs_operator() {
        tracing::error!(event = "sftp_failed", mailbox = %remote.mailbox, host = %remote.host, error = %e, "needs an operator");
    } else {
        warn!(event = "sftp_failed", mailbox = %remote.mailbox, host = %remote.host, error = %e, "tried again later");
    }
}

/// A failed remote, for a report.
#[derive(Debug)]
pub(crate) struct RemoteFailure {
    pub mailbox: String,
    pub error: SftpError,
}

/// Runs `job` for every remote at once, one thread each (so a slow server delays
/// only its own partner), logging and returning the failures.
fn each_remote(
    config: &Config,
    job: impl Fn(&SftpRemote) -> Result<Vec<String>, SftpError> + Sync,
) -> Vec<RemoteFailure> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = config
            .sftp
            .iter()
            .map(|remote| {
                let job = &job;
                scope.spawn(move || {
                    job(remote).err().map(|error| {
                        log_failure(remote, &error);
                        RemoteFailure {
                            mailbox: remote.mailbox.clone(),
                            error,
                        }
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().ok().flatten())
            .collect()
    })
}

/// `process`: downloads from every remote at once (one thread each, listing twice
/// `hub.settle` apart so that plain files are taken only once complete) while `work`
/// runs; `work` gets the remote mailboxes and a channel that names each as its
/// download ends, so it can take local mailboxes at once and each remote one as soon
/// as it is ready (a stalled server holds up only its own partner).
pub(crate) fn download_all_while<T>(
    config: &Config,
    now: &Clock,
    work: impl FnOnce(HashSet<String>, std::sync::mpsc::Receiver<String>) -> T,
) -> (T, Vec<RemoteFailure>) {
    let (done, ready) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        let handles: Vec<_> = config
            .sftp
            .iter()
            .map(|remote| {
                let done = done.clone();
                scope.spawn(move || {
                    let result = (|| {
                        let mut index = Index::open(&config.hub.database)?;
                        let (_session, sftp) = connect(remote)?;
                        let mut listings = Listings::default();
                        let mut got =
                            download(&sftp, remote, config, &mut index, now, &mut listings)?;
                        std::thread::sleep(config.hub.settle);
                        got.extend(download(
                            &sftp,
                            remote,
                            config,
                            &mut index,
                            now,
                            &mut listings,
                        )?);
                        Ok::<_, SftpError>(got)
                    })();
                    let _ = done.send(remote.mailbox.clone());
                    result.err().map(|error| {
                        log_failure(remote, &error);
                        RemoteFailure {
                            mailbox: remote.mailbox.clone(),
                            error,
                        }
                    })
                })
            })
            .collect();
        drop(done);
        let mailboxes = config.sftp.iter().map(|r| r.mailbox.clone()).collect();
        let out = work(mailboxes, ready);
        let failures = handles
            .into_iter()
            .filter_map(|h| h.join().ok().flatten())
            .collect();
        (out, failures)
    })
}

/// `process`: upload what waits in every remote partner's `out/`.
pub(crate) fn upload_all(config: &Config) -> Vec<RemoteFailure> {
    each_remote(config, |remote| {
        let (_session, sftp) = connect(remote)?;
        upload(&sftp, remote, config)
    })
}
