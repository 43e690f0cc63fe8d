//! The command line's shape (SPEC §7): global options, commands, their arguments.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::clock;
use crate::index;

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
    pub(crate) config: PathBuf,
    /// Pretend the current time is this RFC 3339 instant (replays and tests); never
    /// used for the readiness of inbound files.
    #[arg(long, global = true, value_parser = parse_now)]
    pub(crate) now: Option<chrono::DateTime<chrono::Utc>>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub(crate) log_format: LogFormat,
    #[command(subcommand)]
    pub(crate) command: Command,
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
pub(crate) enum LogFormat {
    Human,
    Json,
}

fn parse_now(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    clock::parse_rfc3339(text)
        .ok_or_else(|| format!("{text:?} is not an RFC 3339 time, e.g. 2026-11-21T10:00:00Z"))
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
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
        #[arg(long, conflicts_with = "check")]
        json: bool,
        /// Exit 0 when nothing needs an operator, 1 when something does (one line per
        /// problem), 2 on error: for cron, Nagios-style checks, a container HEALTHCHECK.
        #[arg(long)]
        check: bool,
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
pub(crate) enum ReportCommand {
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
pub(crate) enum AlertsCommand {
    /// Queue a FULL alert extract for one site organisation.
    #[command(after_help = "Example:\n  cpis-hub alerts full --site R0A")]
    Full {
        /// The site organisation code (e.g. R0A).
        #[arg(long)]
        site: String,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum QuarantineCommand {
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
pub(crate) enum EmitKind {
    Holdings,
    Alerts,
}
