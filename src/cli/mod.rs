//! The command line (SPEC §7): argument parsing and the glue from each command to
//! the library, one file per command. `anyhow` lives here and in `main` only.
//!
//! Owns nothing. Must never print an NHS number except where an operator asked for
//! one (`lookup`, `audit`), and must exit 2 on every usage, config or lock error.

/// `writeln!` to stdout, with `?`: a failed write is an error of the command (see
/// [`Exit`]), never a panic.
macro_rules! say {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout().lock(), $($arg)*)?
    };
}

mod alerts;
mod args;
mod audit;
mod backup;
mod bench;
mod daemon;
mod help;
mod init;
mod lookup;
mod process;
mod quarantine;
mod report;
mod status;
mod validate;

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Parser;

pub use args::Cli;
use args::{Command, LogFormat};
pub use bench::sftp_fetch;

use crate::clock::Clock;
use crate::config::Config;

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
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
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

/// Runs the command.
fn run(cli: Cli) -> Result<i32, Exit> {
    let now = cli.now.map(Clock::at).unwrap_or_else(Clock::real);
    let config = || load_config(&cli.config);
    match cli.command {
        Command::Init { dir } => {
            init::run(&dir.unwrap_or_else(|| PathBuf::from("."))).map_err(usage)
        }
        Command::Process { emit } => process::run(&config()?, &emit, now),
        Command::Run => daemon::run(config()?, cli.now),
        Command::Status { json, check } if check => {
            let _ = json;
            status::check(&config()?, now)
        }
        Command::Status { json, .. } => status::run(&config()?, json, now),
        Command::Validate { file, partner, xml } => {
            validate::run(&config()?, &file, partner.as_deref(), xml, now).map_err(|e| Exit(2, e))
        }
        Command::Quarantine(q) => quarantine::run(&config()?, q, now).map_err(|e| Exit(1, e)),
        Command::Lookup { nhs_number, reason } => {
            lookup::run(&config()?, &nhs_number, &reason, now)
        }
        Command::Backup { file } => backup::run(&config()?, &file, now).map_err(|e| Exit(1, e)),
        Command::Completions { shell } => help::completions(shell),
        Command::Man => help::man(),
        Command::Report(r) => report::run(&config()?, r, now),
        Command::Alerts(args::AlertsCommand::Full { site }) => alerts::full(&config()?, &site, now),
        Command::Audit { since, json } => audit::run(&config()?, since.as_deref(), json),
    }
}
