//! The command line (SPEC §7): argument parsing and the glue from each command to
//! the library. `anyhow` lives here and in `main` only.
//!
//! Owns nothing. Must never print an NHS number except where an operator asked for
//! one (`lookup`, `audit`), and must exit 2 on every usage, config or lock error.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

/// `writeln!` to stdout, with `?`: a failed write is an error of the command (see
/// [`Exit`]), never a panic.
macro_rules! say {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout().lock(), $($arg)*)?
    };
}
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;

use crate::clock::{self, Clock};
use crate::config::{self, Config, Format};
use crate::emit::render::{problem_row, ReceiptHead};
use crate::emit::TableWriter;
use crate::formats;
use crate::index::{self, Index};
use crate::lock::Lock;
use crate::nhs::NhsNumber;
use crate::pipeline::{self, PassOptions};

#[derive(Parser, Debug)]
#[command(
    name = "cpis-hub",
    version = version(),
    about = "Hub of a child-protection information-sharing service: validates authority extracts, keeps an SQLite index, answers every file with a receipt.",
    after_help = "Example:\n  cpis-hub init /srv/cpis && cd /srv/cpis && cpis-hub process --emit holdings"
)]
pub struct Cli {
    /// Configuration file (default: cpis-hub.toml, or $CPIS_HUB_CONFIG).
    #[arg(
        long,
        global = true,
        env = "CPIS_HUB_CONFIG",
        default_value = "cpis-hub.toml"
    )]
    pub config: PathBuf,
    /// Pretend the current time is this RFC 3339 instant (replays and tests); never
    /// used for the readiness of inbound files.
    #[arg(long, global = true, value_parser = parse_now)]
    pub now: Option<chrono::DateTime<chrono::Utc>>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

fn version() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| {
        format!(
            "{} (database schema {})",
            env!("CARGO_PKG_VERSION"),
            index::SCHEMA_VERSION
        )
    })
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

fn parse_now(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    clock::parse_rfc3339(text)
        .ok_or_else(|| format!("{text:?} is not an RFC 3339 time, e.g. 2026-11-21T10:00:00Z"))
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write an example config into DIR (default: .) and create its mailbox folders.
    #[command(after_help = "Example:\n  cpis-hub init /srv/cpis")]
    Init { dir: Option<PathBuf> },
    /// The daemon: watch every mailbox, process files as they become ready, run the
    /// schedule (alerts, holdings, retention); SIGTERM or SIGINT stops it cleanly.
    #[command(
        after_help = "Example:\n  cpis-hub --config /srv/cpis/cpis-hub.toml --log-format json run"
    )]
    Run,
    /// What the hub is doing: per partner the last file in and out and the backlog,
    /// quarantined files, stale authorities, the last run of each scheduled job.
    #[command(after_help = "Example:\n  cpis-hub status --json")]
    Status {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One pass: decisions, age 18 and retention, every ready inbound message, then exit.
    /// Exit 0 when every file ended ACCEPTED, PARTIAL or DUPLICATE; 1 otherwise; 2 on a
    /// usage, config or lock error.
    #[command(
        after_help = "Example:\n  cpis-hub --config /srv/cpis/cpis-hub.toml process --emit holdings"
    )]
    Process {
        /// Scheduled outputs to write in this pass, comma-separated: alerts, holdings.
        #[arg(long, value_delimiter = ',')]
        emit: Vec<EmitKind>,
    },
    /// Check a file against the rules and the current index without applying it;
    /// print the receipt. Exit 0 when it would be ACCEPTED, 1 otherwise.
    #[command(after_help = "Example:\n  cpis-hub validate extract.csv --partner X26LA204")]
    Validate {
        file: PathBuf,
        /// The sending mailbox (default: the owner of the file's authority=).
        #[arg(long)]
        partner: Option<String>,
        /// Print the receipt as XML.
        #[arg(long)]
        xml: bool,
    },
    /// List quarantined files, or queue a release or discard for the next pass.
    #[command(
        subcommand,
        after_help = "Example:\n  cpis-hub quarantine list\n  cpis-hub quarantine release 42"
    )]
    Quarantine(QuarantineCommand),
    /// Show what is held for an NHS number (the lookup is audited with the reason).
    #[command(
        after_help = "Example:\n  cpis-hub lookup 9990000018 --reason \"ED safeguarding query ref 4471\""
    )]
    Lookup {
        nhs_number: String,
        /// Why you are looking (kept in the audit log).
        #[arg(long, required = true)]
        reason: String,
    },
    /// Operator reports: the national summary, a reconciliation of a FULL extract
    /// against what is held, the lines rejected for NHS numbers.
    #[command(
        subcommand,
        after_help = "Examples:\n  cpis-hub report summary\n  cpis-hub report summary --html summary.html\n  cpis-hub report reconcile --authority LA204 nightly.csv\n  cpis-hub report rejections --authority LA204 --since 2026-11-01"
    )]
    Report(ReportCommand),
    /// Copy the database to FILE, consistently, while the hub runs (VACUUM INTO).
    #[command(
        after_help = "Example:\n  cpis-hub backup /srv/backups/cpis-hub-$(date +%F).sqlite3"
    )]
    Backup { file: PathBuf },
    /// Print a shell completion script for bash, zsh, fish, elvish or powershell.
    #[command(
        after_help = "Example:\n  cpis-hub completions bash > /etc/bash_completion.d/cpis-hub"
    )]
    Completions { shell: clap_complete::Shell },
    /// Print the manual page (roff) generated from this command line.
    #[command(after_help = "Example:\n  cpis-hub man > /usr/local/share/man/man1/cpis-hub.1")]
    Man,
    /// Queue a FULL alert extract for a site organisation (written by the next pass).
    #[command(subcommand, after_help = "Example:\n  cpis-hub alerts full --site R0A")]
    Alerts(AlertsCommand),
    /// Print the audit log: applies, purges, quarantine decisions, lookups.
    #[command(after_help = "Example:\n  cpis-hub audit --since 2026-11-01 --json")]
    Audit {
        /// First day to show (inclusive, Europe/London), YYYY-MM-DD.
        #[arg(long)]
        since: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ReportCommand {
    /// Per authority: open records by plan type, ended, last FULL/DELTA and staleness,
    /// files rejected or quarantined, lines rejected by code and notifications sent in
    /// the last 7 days; national totals.
    #[command(
        after_help = "Example:\n  cpis-hub report summary --html /srv/cpis/reports/summary.html"
    )]
    Summary {
        /// CSV instead of a table.
        #[arg(long)]
        csv: bool,
        /// Also write a self-contained HTML page (table and charts) to this file.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// Compare a FULL extract file with what is held for an authority, without
    /// applying it. Exit 0 when they match, 1 when they differ.
    #[command(
        after_help = "Example:\n  cpis-hub report reconcile --authority LA204 la204-full.csv"
    )]
    Reconcile {
        #[arg(long)]
        authority: String,
        file: PathBuf,
        #[arg(long)]
        csv: bool,
    },
    /// Lines rejected for NHS_MISSING, NHS_FORMAT, NHS_CHECK_DIGIT, NHS_INACTIVE (or
    /// the codes given, or every code), newest first: file, line, local_id, code.
    #[command(
        after_help = "Example:\n  cpis-hub report rejections --authority LA204 --since 2026-11-01 --csv"
    )]
    Rejections {
        #[arg(long)]
        authority: Option<String>,
        /// First day (inclusive, Europe/London), YYYY-MM-DD.
        #[arg(long)]
        since: Option<String>,
        /// A code to list instead of the NHS number codes (repeatable).
        #[arg(long = "code")]
        codes: Vec<String>,
        /// Every code.
        #[arg(long, conflicts_with = "codes")]
        all: bool,
        #[arg(long)]
        csv: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum AlertsCommand {
    /// Queue a FULL alert extract for one site organisation.
    #[command(after_help = "Example:\n  cpis-hub alerts full --site R0A")]
    Full {
        /// The site organisation code (e.g. R0A).
        #[arg(long)]
        site: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum QuarantineCommand {
    /// Quarantined files with their id, partner, name, time and reason.
    #[command(after_help = "Example:\n  cpis-hub quarantine list")]
    List,
    /// Apply a quarantined file at the next pass (STALE is checked again).
    #[command(after_help = "Example:\n  cpis-hub quarantine release 42")]
    Release { id: i64 },
    /// Reject a quarantined file at the next pass (receipt REJECTED, DISCARDED).
    #[command(after_help = "Example:\n  cpis-hub quarantine discard 42")]
    Discard { id: i64 },
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum EmitKind {
    Holdings,
    Alerts,
}

/// A failure with the exit code it calls for.
struct Exit(i32, anyhow::Error);

/// Output a command could not write (stdout closed or full): exit 1, unless the
/// reader went away (`| head -1`), which [`main`] ends quietly with 0.
impl From<std::io::Error> for Exit {
    fn from(e: std::io::Error) -> Exit {
        Exit(1, e.into())
    }
}

/// Whether an error is the reader of our output going away (a closed pipe).
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// A line on stderr that may fail to be written (a full disk, a closed pipe) without
/// stopping the hub: a log that cannot be written never stops it.
fn warn_line(args: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "cpis-hub: {args}");
}

fn usage(e: impl Into<anyhow::Error>) -> Exit {
    Exit(2, e.into())
}

/// Entry point: returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    init_logging(cli.log_format);
    if let Some(warning) = crate::fault::ignored_warning() {
        tracing::warn!(event = "fault_injection_ignored", "{warning}");
    }
    match run(cli) {
        Ok(code) => code,
        Err(Exit(_, e)) if is_broken_pipe(&e) => 0,
        Err(Exit(code, e)) => {
            warn_line(format_args!("{e:#}"));
            code
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    // Colours only for a person at a terminal; a log that cannot be written (stderr
    // on a full disk, a closed pipe) is dropped, never reported on stderr again.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .log_internal_errors(false)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Human => builder.try_init(),
    };
}

fn load_config(path: &Path) -> Result<Config, Exit> {
    Config::load(path).map_err(usage)
}

/// What `run` and `process` need before they touch a file: the layout checked
/// (§6.6), the lock, the database, and the mailbox root claimed for it. Exit 2 for
/// the configuration, the lock and a root that belongs to another database; 1 when
/// the database cannot be opened or written (a full disk is not a usage error).
fn open_for_processing(config: &Config) -> Result<(Lock, Index), Exit> {
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

fn run(cli: Cli) -> Result<i32, Exit> {
    let now = cli.now.map(Clock::at).unwrap_or_else(Clock::real);
    match cli.command {
        Command::Init { dir } => init(&dir.unwrap_or_else(|| PathBuf::from("."))).map_err(usage),
        Command::Process { emit } => {
            let config = load_config(&cli.config)?;
            let (_lock, mut index) = open_for_processing(&config)?;
            let (report, mut failures) =
                crate::transport::sftp::download_all_while(&config, &now, |mailboxes, ready| {
                    let options = PassOptions {
                        emit_holdings: emit.contains(&EmitKind::Holdings),
                        alert_deltas: emit.contains(&EmitKind::Alerts),
                        alert_fulls: emit.contains(&EmitKind::Alerts),
                        downloading: Some(pipeline::Downloads { mailboxes, ready }),
                        report_unconfigured: true,
                        ..PassOptions::default()
                    };
                    pipeline::run_pass(&config, &mut index, now, &options)
                });
            let report = report.map_err(|e| Exit(1, pass_error(&config, e)))?;
            failures.extend(crate::transport::sftp::upload_all(&config));
            for f in &failures {
                warn_line(format_args!("SFTP {}: {}", f.mailbox, f.error));
            }
            // Each file's and partner's failure is in the log already (file_retry,
            // file_failed, partner_skipped): not said twice.
            Ok(if failures.is_empty() {
                report.exit_code()
            } else {
                1
            })
        }
        Command::Run => {
            let config = load_config(&cli.config)?;
            let (_lock, index) = open_for_processing(&config)?;
            let clock: crate::daemon::ClockSource = match cli.now {
                Some(base) => {
                    let started = std::time::Instant::now();
                    std::sync::Arc::new(move || {
                        let elapsed =
                            chrono::Duration::from_std(started.elapsed()).unwrap_or_default();
                        Clock::at(base + elapsed)
                    })
                }
                None => std::sync::Arc::new(Clock::real),
            };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Exit(1, e.into()))?;
            let result = runtime.block_on(async move {
                let shutdown =
                    stop_signal().map_err(|e| crate::daemon::DaemonError::Task(e.to_string()))?;
                crate::daemon::run(config, index, clock, shutdown).await
            });
            // The daemon has given transfers in progress their grace already; any still
            // running are abandoned now (they write temporary names only). No second
            // timed wait: it would measure time on the clock a --now-less test moves.
            runtime.shutdown_background();
            result.map_err(|e| Exit(1, e.into()))?;
            Ok(0)
        }
        Command::Status { json } => {
            let config = load_config(&cli.config)?;
            let status = crate::status::gather(&config, now).map_err(|e| Exit(1, e.into()))?;
            if json {
                say!(
                    "{}",
                    serde_json::to_string_pretty(&status).map_err(|e| Exit(1, e.into()))?
                );
            } else {
                write!(
                    std::io::stdout().lock(),
                    "{}",
                    crate::status::render_text(&status)
                )?;
            }
            Ok(0)
        }
        Command::Validate { file, partner, xml } => {
            let config = load_config(&cli.config)?;
            validate(&config, &file, partner.as_deref(), xml, now).map_err(|e| Exit(2, e))
        }
        Command::Quarantine(q) => {
            let config = load_config(&cli.config)?;
            quarantine(&config, q, now).map_err(|e| Exit(1, e))
        }
        Command::Lookup { nhs_number, reason } => {
            let config = load_config(&cli.config)?;
            if reason.trim().is_empty() {
                return Err(usage(anyhow::anyhow!(
                    "--reason must say why you are looking"
                )));
            }
            lookup(&config, &nhs_number, &reason, now)
        }
        Command::Backup { file } => {
            let config = load_config(&cli.config)?;
            backup(&config, &file, now).map_err(|e| Exit(1, e))
        }
        Command::Completions { shell } => {
            // Generated in memory: clap_complete panics when its writer fails.
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "cpis-hub", &mut script);
            std::io::stdout().lock().write_all(&script)?;
            Ok(0)
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut page)?;
            std::io::stdout().lock().write_all(&page)?;
            Ok(0)
        }
        Command::Report(r) => {
            let config = load_config(&cli.config)?;
            report(&config, r, now)
        }
        Command::Alerts(AlertsCommand::Full { site }) => {
            let config = load_config(&cli.config)?;
            if config.site(&site).is_none() {
                return Err(usage(anyhow::anyhow!(
                    "--site {site} is not a configured site organisation"
                )));
            }
            let run = || -> anyhow::Result<i32> {
                let mut index = Index::open(&config.hub.database)?;
                let by = operator();
                let tx = index.begin()?;
                index::flows::queue_alert_request(&tx, &site, &now.rfc3339(), &by)?;
                index::audit::audit(
                    &tx,
                    &now,
                    &format!("operator:{by}"),
                    "alerts_full_requested",
                    &json!({"site": site}),
                )?;
                tx.commit()?;
                say!("FULL alert extract for {site} queued: the next pass (the running daemon, or the next `cpis-hub process`) writes it");
                Ok(0)
            };
            run().map_err(|e| Exit(1, e))
        }
        Command::Audit { since, json } => {
            let config = load_config(&cli.config)?;
            audit(&config, since.as_deref(), json)
        }
    }
}

/// SIGTERM or SIGINT, as a future (registered now, so no signal is missed).
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

fn init(dir: &Path) -> anyhow::Result<i32> {
    let path = dir.join("cpis-hub.toml");
    if path.exists() {
        bail!(
            "{} exists already; init never overwrites a config",
            path.display()
        );
    }
    crate::fsutil::ensure_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(&path, config::example_for_init())
        .with_context(|| format!("writing {}", path.display()))?;
    let config = Config::load(&path)?;
    crate::transport::ensure_mailboxes(&config).context("creating the mailbox folders")?;
    say!(
        "wrote {} and the mailbox folders under {}",
        path.display(),
        config.hub.root.display()
    );
    say!("next: cpis-hub --config {} process", path.display());
    Ok(0)
}

/// Opens the index for reading: the database if it exists, else an empty one.
fn read_index(config: &Config) -> anyhow::Result<index::ReadOnly> {
    Ok(match Index::open_read_only(&config.hub.database)? {
        Some(index) => index,
        None => index::ReadOnly::empty()?,
    })
}

fn validate(
    config: &Config,
    file: &Path,
    partner: Option<&str>,
    xml: bool,
    now: Clock,
) -> anyhow::Result<i32> {
    if !file.is_file() {
        bail!("{} is not a file", file.display());
    }
    let partner = match partner {
        Some(mailbox) => Some(
            config
                .partner(mailbox)
                .with_context(|| format!("--partner {mailbox} is not a configured mailbox"))?,
        ),
        None => pipeline::partner_of_file(config, file),
    };
    let index = read_index(config)?;
    let v = pipeline::validate_file(config, index.db(), file, partner, now)?;
    let sequence = match partner {
        Some(p) => {
            index::views::next_sequence_preview(index.db(), &p.mailbox, formats::Kind::Receipt)?
        }
        None => 1,
    };
    let source = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let created_at = now.rfc3339();
    let head = ReceiptHead {
        partner: (v.partner_key.0, &v.partner_key.1),
        source: &source,
        sha256: &v.sha256,
        status: v.status.as_str(),
        counts: v.counts,
        sequence,
        created_at: &created_at,
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let syntax = if xml { Format::Xml } else { Format::Csv };
    let mut table = TableWriter::begin(&mut out, &formats::RECEIPT, syntax, &head.metadata())?;
    for p in &v.problems {
        problem_row(&mut table, p)?;
    }
    table.finish()?;
    out.flush()?;
    if let Some(m) = &v.earlier {
        // Said beside the receipt, which stays what the partner would be sent.
        warn_line(format_args!(
            "DUPLICATE: the same content was received from {} as {} at {} (message {}, {})",
            m.mailbox,
            String::from_utf8_lossy(&m.name),
            m.received_at,
            m.id,
            m.status
        ));
    }
    Ok(if v.status == pipeline::extract::Status::Accepted {
        0
    } else {
        1
    })
}

/// The operator running this command, as the system knows them: the name of the
/// process's real user id (from the password file), never an environment variable
/// a caller could set (`$USER`, `$SUDO_USER`).
fn operator() -> String {
    let uid = rustix::process::getuid().as_raw();
    let name = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                let id = fields.nth(1)?;
                (id.parse() == Ok(uid)).then(|| name.to_string())
            })
        });
    match name {
        Some(name) => format!("{name} (uid {uid})"),
        None => format!("uid {uid}"),
    }
}

fn quarantine(config: &Config, command: QuarantineCommand, now: Clock) -> anyhow::Result<i32> {
    match command {
        QuarantineCommand::List => {
            let Some(index) = Index::open_read_only(&config.hub.database)? else {
                say!("no quarantined files (no database yet)");
                return Ok(0);
            };
            let rows = index::ledger::quarantined(index.db())?;
            if rows.is_empty() {
                say!("no quarantined files");
                return Ok(0);
            }
            say!(
                "{:<6} {:<10} {:<20} {:<40} {:<16} REASON",
                "ID",
                "MAILBOX",
                "RECEIVED",
                "FILE",
                "DECISION"
            );
            for (m, decision) in rows {
                let reason = index::views::quarantine_reason(index.db(), m.id)?
                    .unwrap_or_else(|| "held for an operator".into());
                say!(
                    "{:<6} {:<10} {:<20} {:<40} {:<16} {}",
                    m.id,
                    m.mailbox,
                    m.received_at,
                    String::from_utf8_lossy(&m.name),
                    decision
                        .map(|d| format!("{d} queued"))
                        .unwrap_or_else(|| "-".into()),
                    reason
                );
            }
            Ok(0)
        }
        QuarantineCommand::Release { id } | QuarantineCommand::Discard { id } => {
            let decision = if matches!(command, QuarantineCommand::Release { .. }) {
                crate::model::Decision::Release
            } else {
                crate::model::Decision::Discard
            };
            let mut index = Index::open(&config.hub.database)?;
            let tx = index.begin()?;
            let Some(m) = index::ledger::message(tx.db(), id)? else {
                bail!("no message with id {id}: see `cpis-hub quarantine list`");
            };
            if m.status != crate::model::Status::Quarantined {
                bail!("message {id} is {}, not QUARANTINED: only quarantined files can be released or discarded", m.status);
            }
            let by = operator();
            index::ledger::queue_decision(&tx, id, decision, &now.rfc3339(), &by)?;
            index::audit::audit(
                &tx,
                &now,
                &format!("operator:{by}"),
                &format!("quarantine_{decision}_requested"),
                &json!({"message_id": id, "file": String::from_utf8_lossy(&m.name)}),
            )?;
            tx.commit()?;
            say!("{decision} of message {id} ({}) queued: the next pass (the running daemon, or the next `cpis-hub process`) carries it out", String::from_utf8_lossy(&m.name));
            Ok(0)
        }
    }
}

fn lookup(config: &Config, text: &str, reason: &str, now: Clock) -> Result<i32, Exit> {
    let nhs = NhsNumber::parse(text).map_err(|_| {
        usage(anyhow::anyhow!(
            "{text:?} is not a valid NHS number (10 digits, Modulus 11)"
        ))
    })?;
    let run = || -> anyhow::Result<i32> {
        let mut index = Index::open(&config.hub.database)?;
        let number = nhs.as_string();
        let held = index::holdings::records_by_nhs(index.db(), &number)?;
        let tx = index.begin()?;
        index::audit::audit(
            &tx,
            &now,
            &format!("operator:{}", operator()),
            "lookup",
            &json!({"nhs_number": number, "reason": reason, "records_shown": held.len()}),
        )?;
        tx.commit()?;
        if held.is_empty() {
            say!("nothing is held for {number}");
            return Ok(0);
        }
        let today = now.today();
        for (authority, h) in held {
            let (name, office, emergency) = match config.authority(&authority).map(|p| &p.role) {
                Some(crate::config::Role::Authority {
                    name,
                    office_hours_phone,
                    out_of_hours_phone,
                    ..
                }) => (
                    name.as_str(),
                    office_hours_phone.as_str(),
                    out_of_hours_phone.as_str(),
                ),
                _ => ("(authority no longer configured)", "", ""),
            };
            let end = h.end_date.as_deref().and_then(clock::parse_date);
            let status = if end.is_some_and(|e| e <= today) {
                "ENDED"
            } else {
                "ACTIVE"
            };
            say!("{authority}  {name}  office hours {office}  out of hours {emergency}");
            say!(
                "  local_id {}  plan {}  {}  dob {}  start {}  end {}{}  nhs_status {}",
                h.local_id,
                h.plan_type,
                status,
                h.date_of_birth.as_deref().unwrap_or("-"),
                h.start_date,
                h.end_date.as_deref().unwrap_or("-"),
                h.ended_reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default(),
                h.nhs_status.as_deref().unwrap_or("ACTIVE"),
            );
            let accesses =
                index::flows::recent_accesses(index.db(), &authority, &h.local_id, &h.plan_type)?;
            say!("  recent unscheduled-care accesses: {}", accesses.len());
            for (at, site, setting) in accesses {
                say!("    {at}  {site}  {setting}");
            }
        }
        Ok(0)
    };
    run().map_err(|e| Exit(1, e))
}

/// A consistent copy of the database (the online `VACUUM INTO`: readers and the
/// daemon's writer carry on), written 0600, then checked and audited.
fn backup(config: &Config, file: &Path, now: Clock) -> anyhow::Result<i32> {
    if file.exists() {
        bail!("{} exists already; backup never overwrites", file.display());
    }
    let Some(index) = Index::open_read_only(&config.hub.database)? else {
        bail!(
            "there is no database at {} to back up",
            config.hub.database.display()
        );
    };
    let target = file.to_str().context("the backup path must be UTF-8")?;
    // The copy holds every record: 0600 from its first byte (created empty here,
    // never replacing anything; VACUUM INTO fills an empty file), not chmod'ed after.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .with_context(|| format!("creating {}", file.display()))?;
    index.backup_to(target).with_context(|| {
        let _ = std::fs::remove_file(file);
        format!("backing up to {}", file.display())
    })?;
    crate::fault::point("backup_copied");
    let records = index::ReadOnly::check_copy(file)?;
    drop(index);
    let mut writer = Index::open(&config.hub.database)?;
    let tx = writer.begin()?;
    index::audit::audit(
        &tx,
        &now,
        &format!("operator:{}", operator()),
        "backup",
        &json!({"file": file.display().to_string(), "records": records}),
    )?;
    tx.commit()?;
    say!(
        "backed up {} records to {} (integrity check ok)",
        records,
        file.display()
    );
    Ok(0)
}

/// `--since DATE` as the RFC 3339 instant of midnight Europe/London that day.
fn since_instant(since: Option<&str>) -> Result<Option<String>, Exit> {
    match since {
        None => Ok(None),
        Some(day) => {
            let date = clock::parse_date(day).ok_or_else(|| {
                usage(anyhow::anyhow!("--since {day:?} is not a date YYYY-MM-DD"))
            })?;
            Ok(Some(clock::rfc3339(
                crate::daemon::schedule::london_instant(date, chrono::NaiveTime::MIN),
            )))
        }
    }
}

fn report(config: &Config, command: ReportCommand, now: Clock) -> Result<i32, Exit> {
    let index = read_index(config).map_err(|e| Exit(1, e))?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let fail = |e: std::io::Error| Exit(1, e.into());
    match command {
        ReportCommand::Summary { csv, html } => {
            let s =
                crate::report::summary(index.db(), config, &now).map_err(|e| Exit(1, e.into()))?;
            if csv {
                crate::report::write_summary_csv(&s, &mut out).map_err(fail)?;
            } else {
                crate::report::write_summary_text(&s, &mut out).map_err(fail)?;
            }
            if let Some(path) = html {
                let mut page = Vec::new();
                crate::report::html::write(&s, &mut page).map_err(fail)?;
                std::fs::write(&path, page)
                    .map_err(|e| Exit(1, anyhow::anyhow!("writing {}: {e}", path.display())))?;
            }
            Ok(0)
        }
        ReportCommand::Reconcile {
            authority,
            file,
            csv,
        } => {
            if config.authority(&authority).is_none() {
                return Err(usage(anyhow::anyhow!(
                    "--authority {authority} is not a configured authority"
                )));
            }
            let counts = crate::report::reconcile::reconcile(
                index.db(),
                config,
                &authority,
                &file,
                &now,
                csv,
                &mut out,
            )
            .map_err(|e| Exit(2, e.into()))?;
            if counts.delta {
                warn_line(format_args!(
                    "warning: {} is a DELTA extract; reconcile compares a FULL with what is held, so every held record the DELTA does not mention is listed as only held",
                    file.display()
                ));
            }
            Ok(if counts.matches() { 0 } else { 1 })
        }
        ReportCommand::Rejections {
            authority,
            since,
            codes,
            all,
            csv,
        } => {
            let since = since_instant(since.as_deref())?;
            let codes: Vec<crate::model::Code> = if all {
                Vec::new()
            } else if codes.is_empty() {
                crate::report::rejections::NHS_CODES.to_vec()
            } else {
                codes
                    .iter()
                    .map(|c| {
                        crate::model::Code::parse(c).ok_or_else(|| {
                            usage(anyhow::anyhow!("--code {c} is not a receipt code (see docs/formats-authorities.md)"))
                        })
                    })
                    .collect::<Result<Vec<_>, Exit>>()?
            };
            let rows = index::views::rejections(
                index.db(),
                authority.as_deref(),
                since.as_deref(),
                &codes,
            )
            .map_err(|e| Exit(1, e.into()))?;
            if csv {
                crate::report::rejections::write_csv(&rows, &mut out).map_err(fail)?;
            } else {
                crate::report::rejections::write_text(&rows, &mut out).map_err(fail)?;
            }
            Ok(0)
        }
    }
}

fn audit(config: &Config, since: Option<&str>, json_out: bool) -> Result<i32, Exit> {
    let since_text = since_instant(since)?;
    let run = || -> anyhow::Result<i32> {
        let Some(index) = Index::open_read_only(&config.hub.database)? else {
            if !json_out {
                say!("the audit log is empty (no database yet)");
            }
            return Ok(0);
        };
        let rows = index::audit::audit_since(index.db(), since_text.as_deref())?;
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        for r in rows {
            if json_out {
                let detail: serde_json::Value = serde_json::from_str(&r.detail)
                    .unwrap_or(serde_json::Value::String(r.detail.clone()));
                writeln!(
                    out,
                    "{}",
                    json!({"id": r.id, "at": r.at, "pretend_at": r.pretend_at, "actor": r.actor, "action": r.action, "detail": detail})
                )?;
            } else {
                let pretended = r
                    .pretend_at
                    .as_deref()
                    .map(|p| format!(" (--now {p})"))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "{:<6} {:<20} {:<24} {:<28} {}{pretended}",
                    r.id, r.at, r.actor, r.action, r.detail
                )?;
            }
        }
        Ok(0)
    };
    run().map_err(|e| Exit(1, e))
}
