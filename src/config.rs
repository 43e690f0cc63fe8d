//! Configuration (SPEC §8): the TOML file read at start, every key checked, every
//! error naming the key and what to write instead.
//!
//! Owns the validated [`Config`]. Must never create or touch mailbox folders or the
//! database (that is `transport` and `index`), and must never guess a value it
//! cannot read.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::NaiveTime;
use serde::Deserialize;

/// A configuration problem, naming the key (`hub.settle`, `authority[2].mailbox`).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    #[error(
        "cannot read config file {path}: {source} (pass --config FILE or set CPIS_HUB_CONFIG)"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("config key `{key}`: {message}")]
    Key { key: String, message: String },
}

fn key_error(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Key {
        key: key.into(),
        message: message.into(),
    }
}

/// Outbound file syntax for a partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Format {
    #[default]
    Csv,
    Xml,
}

impl Format {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Xml => "xml",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Format> {
        [Format::Csv, Format::Xml]
            .into_iter()
            .find(|f| f.as_str() == text)
    }
}

/// Outbound framing for a partner: a plain data file, or a MESH `.dat` + `.ctl` pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Framing {
    #[default]
    Plain,
    Mesh,
}

impl Framing {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Framing::Plain => "plain",
            Framing::Mesh => "mesh",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Framing> {
        [Framing::Plain, Framing::Mesh]
            .into_iter()
            .find(|f| f.as_str() == text)
    }
}

/// Whether a site receives alert DELTAs or a nightly FULL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AlertsMode {
    #[default]
    Delta,
    Full,
}

/// What kind of partner owns a mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Role {
    Authority {
        code: String,
        name: String,
        office_hours_phone: String,
        out_of_hours_phone: String,
        email: String,
    },
    Site {
        code: String,
        name: String,
        site_codes: Vec<String>,
        alerts: AlertsMode,
    },
    Demographics,
}

/// One partner: its mailbox (its identity), its role and how it wants files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Partner {
    /// Where it is configured, for messages: `authority[2]`, `site[1]`, `demographics`.
    pub config_key: String,
    pub mailbox: String,
    pub role: Role,
    pub format: Format,
    pub framing: Framing,
}

impl Partner {
    /// The metadata key and value that name this partner in outbound files (§4).
    pub(crate) fn key(&self) -> (&'static str, &str) {
        match &self.role {
            Role::Authority { code, .. } => ("authority", code),
            Role::Site { code, .. } => ("site", code),
            Role::Demographics => ("mailbox", &self.mailbox),
        }
    }

    /// The authority code, when this partner is an authority.
    pub(crate) fn authority_code(&self) -> Option<&str> {
        match &self.role {
            Role::Authority { code, .. } => Some(code),
            _ => None,
        }
    }

    /// What this partner's inbound messages are.
    pub(crate) fn message_kind(&self) -> crate::model::MessageKind {
        use crate::model::MessageKind;
        match self.role {
            Role::Authority { .. } => MessageKind::Extract,
            Role::Site { .. } => MessageKind::Attendance,
            Role::Demographics => MessageKind::NhsStatus,
        }
    }

    /// The workflow id this partner sends with (§1.4).
    pub(crate) fn inbound_workflow(&self) -> &'static str {
        match self.role {
            Role::Authority { .. } => "CPISHUB_EXTRACT",
            Role::Site { .. } => "CPISHUB_ATTEND",
            Role::Demographics => "CPISHUB_NHS_STATUS",
        }
    }

    /// The workflow id of the receipts this partner gets (§1.4).
    pub(crate) fn receipt_workflow(&self) -> &'static str {
        match self.role {
            Role::Authority { .. } => "CPISHUB_EXTRACT_ACK",
            Role::Site { .. } => "CPISHUB_ATTEND_ACK",
            Role::Demographics => "CPISHUB_NHS_STATUS_ACK",
        }
    }
}

/// `[hub]` settings, validated.
#[derive(Debug, Clone)]
pub(crate) struct HubSettings {
    pub mailbox: String,
    pub root: PathBuf,
    pub database: PathBuf,
    pub settle: Duration,
    pub rescan_every: Duration,
    pub alerts_every: Duration,
    pub alerts_full_at: NaiveTime,
    pub holdings_at: NaiveTime,
    pub retention_days: u32,
    pub archive_days: u32,
    pub stale_after: Duration,
    pub max_file_bytes: u64,
    pub max_reject_fraction: f64,
    pub mass_end_fraction: f64,
    pub mass_end_min: u64,
    pub allow_test_nhs_numbers: bool,
}

/// One `[[sftp]]` remote (used by the SFTP transport).
#[derive(Debug, Clone)]
pub(crate) struct SftpRemote {
    pub mailbox: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub private_key: PathBuf,
    pub known_hosts: PathBuf,
    pub remote_in: String,
    pub remote_out: String,
    pub poll_every: Duration,
    /// An environment variable holding the private key's passphrase.
    pub passphrase_env: Option<String>,
    /// A file holding the private key's passphrase (its first line).
    pub passphrase_file: Option<PathBuf>,
    /// Move downloaded files to `remote_in/processed/` instead of removing them.
    pub move_to_processed: bool,
    pub connect_timeout: Duration,
    pub io_timeout: Duration,
}

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub hub: HubSettings,
    pub partners: Vec<Partner>,
    pub sftp: Vec<SftpRemote>,
}

impl Config {
    /// The partner owning a mailbox id (case-insensitive, as MESH compares them).
    pub(crate) fn partner(&self, mailbox: &str) -> Option<&Partner> {
        self.partners
            .iter()
            .find(|p| p.mailbox.eq_ignore_ascii_case(mailbox))
    }

    /// The partner for an authority code.
    pub(crate) fn authority(&self, code: &str) -> Option<&Partner> {
        self.partners
            .iter()
            .find(|p| p.authority_code() == Some(code))
    }

    /// The partner for a site organisation code.
    pub(crate) fn site(&self, code: &str) -> Option<&Partner> {
        self.partners
            .iter()
            .find(|p| matches!(&p.role, Role::Site { code: c, .. } if c == code))
    }

    /// Authorities in config order.
    pub(crate) fn authorities(&self) -> impl Iterator<Item = &Partner> {
        self.partners
            .iter()
            .filter(|p| matches!(p.role, Role::Authority { .. }))
    }

    /// `<root>/<MAILBOX>/<folder>`
    pub(crate) fn folder(&self, mailbox: &str, folder: &str) -> PathBuf {
        self.hub.root.join(mailbox).join(folder)
    }

    /// The lock file beside the database (§6.6).
    pub(crate) fn lock_path(&self) -> PathBuf {
        let mut name = self
            .hub
            .database
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        name.push(".lock");
        self.hub.database.with_file_name(name)
    }

    /// Reads and validates a config file.
    pub(crate) fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Validates config text; relative paths are resolved against `path`'s folder.
    pub(crate) fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
        build(raw, &base)
    }
}

// ---------------------------------------------------------------------------
// Raw TOML shapes (unknown keys are errors)
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    hub: RawHub,
    #[serde(default)]
    authority: Vec<RawAuthority>,
    #[serde(default)]
    site: Vec<RawSite>,
    demographics: Option<RawDemographics>,
    #[serde(default)]
    sftp: Vec<RawSftp>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHub {
    mailbox: String,
    root: Option<String>,
    database: Option<String>,
    settle: Option<String>,
    rescan_every: Option<String>,
    alerts_every: Option<String>,
    alerts_full_at: Option<String>,
    holdings_at: Option<String>,
    retention_days: Option<i64>,
    archive_days: Option<i64>,
    stale_after: Option<String>,
    max_file_bytes: Option<i64>,
    max_reject_fraction: Option<f64>,
    mass_end_fraction: Option<f64>,
    mass_end_min: Option<i64>,
    allow_test_nhs_numbers: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuthority {
    code: String,
    name: String,
    mailbox: String,
    #[serde(default)]
    office_hours_phone: String,
    #[serde(default)]
    out_of_hours_phone: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    format: Format,
    #[serde(default)]
    framing: Framing,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    code: String,
    name: String,
    mailbox: String,
    site_codes: Vec<String>,
    #[serde(default)]
    alerts: AlertsMode,
    #[serde(default)]
    format: Format,
    #[serde(default)]
    framing: Framing,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDemographics {
    mailbox: String,
    #[serde(default)]
    format: Format,
    #[serde(default)]
    framing: Framing,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSftp {
    mailbox: String,
    host: String,
    port: Option<i64>,
    user: String,
    private_key: String,
    known_hosts: String,
    remote_in: String,
    remote_out: String,
    poll_every: Option<String>,
    passphrase_env: Option<String>,
    passphrase_file: Option<String>,
    #[serde(default)]
    move_to_processed: bool,
    connect_timeout: Option<String>,
    io_timeout: Option<String>,
}

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

/// Parses `30s`, `15m`, `250ms`, `36h`, `1d`, `0s`: an integer and a unit.
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let millis = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1_000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        "d" => n.checked_mul(86_400_000),
        _ => None,
    }?;
    Some(Duration::from_millis(millis))
}

fn duration(key: &str, value: Option<&str>, default: &str) -> Result<Duration, ConfigError> {
    let text = value.unwrap_or(default);
    parse_duration(text).ok_or_else(|| {
        key_error(
            key,
            format!("{text:?} is not a duration: write an integer and a unit (ms, s, m, h, d), e.g. \"30s\""),
        )
    })
}

fn time_of_day(key: &str, value: Option<&str>, default: &str) -> Result<NaiveTime, ConfigError> {
    let text = value.unwrap_or(default);
    let ok = text.len() == 5 && text.as_bytes()[2] == b':';
    ok.then(|| NaiveTime::parse_from_str(text, "%H:%M").ok())
        .flatten()
        .ok_or_else(|| {
            key_error(
                key,
                format!(
                    "{text:?} is not a time of day: write HH:MM, e.g. \"02:00\" (Europe/London)"
                ),
            )
        })
}

fn count(key: &str, value: Option<i64>, default: i64, max: i64) -> Result<i64, ConfigError> {
    let n = value.unwrap_or(default);
    if (0..=max).contains(&n) {
        Ok(n)
    } else {
        Err(key_error(
            key,
            format!("{n} is out of range: write a whole number from 0 to {max}"),
        ))
    }
}

fn fraction(key: &str, value: Option<f64>, default: f64) -> Result<f64, ConfigError> {
    let f = value.unwrap_or(default);
    if (0.0..=1.0).contains(&f) {
        Ok(f)
    } else {
        Err(key_error(
            key,
            format!("{f} is out of range: write a fraction from 0.0 to 1.0"),
        ))
    }
}

/// Mailbox ids become folder names and parts of file names: letters and digits only.
fn mailbox_id(key: &str, value: &str) -> Result<String, ConfigError> {
    if (1..=32).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(value.to_string())
    } else {
        Err(key_error(
            key,
            format!(
                "{value:?} is not a mailbox id: use 1 to 32 letters and digits, e.g. \"X26LA204\""
            ),
        ))
    }
}

fn code(key: &str, value: &str) -> Result<String, ConfigError> {
    if (1..=16).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(value.to_string())
    } else {
        Err(key_error(
            key,
            format!("{value:?} is not a code: use 1 to 16 letters and digits, e.g. \"LA204\""),
        ))
    }
}

fn non_empty(key: &str, value: &str) -> Result<String, ConfigError> {
    if value.trim().is_empty() {
        Err(key_error(key, "must not be empty"))
    } else {
        Ok(value.to_string())
    }
}

fn build(raw: RawConfig, base: &Path) -> Result<Config, ConfigError> {
    let h = raw.hub;
    let resolve = |p: &str| base.join(p);
    let hub = HubSettings {
        mailbox: mailbox_id("hub.mailbox", &h.mailbox)?,
        root: resolve(h.root.as_deref().unwrap_or("var/mailboxes")),
        database: resolve(h.database.as_deref().unwrap_or("var/cpis-hub.sqlite3")),
        settle: duration("hub.settle", h.settle.as_deref(), "1s")?,
        rescan_every: duration("hub.rescan_every", h.rescan_every.as_deref(), "30s")?,
        alerts_every: duration("hub.alerts_every", h.alerts_every.as_deref(), "15m")?,
        alerts_full_at: time_of_day("hub.alerts_full_at", h.alerts_full_at.as_deref(), "02:00")?,
        holdings_at: time_of_day("hub.holdings_at", h.holdings_at.as_deref(), "03:00")?,
        retention_days: count("hub.retention_days", h.retention_days, 365, 36_500)? as u32,
        archive_days: count("hub.archive_days", h.archive_days, 30, 36_500)? as u32,
        stale_after: duration("hub.stale_after", h.stale_after.as_deref(), "36h")?,
        max_file_bytes: count(
            "hub.max_file_bytes",
            h.max_file_bytes,
            536_870_912,
            i64::MAX,
        )? as u64,
        max_reject_fraction: fraction("hub.max_reject_fraction", h.max_reject_fraction, 0.5)?,
        mass_end_fraction: fraction("hub.mass_end_fraction", h.mass_end_fraction, 0.2)?,
        mass_end_min: count("hub.mass_end_min", h.mass_end_min, 10, i64::MAX)? as u64,
        allow_test_nhs_numbers: h.allow_test_nhs_numbers.unwrap_or(false),
    };
    if hub.rescan_every.is_zero() {
        return Err(key_error("hub.rescan_every", "must be more than 0s"));
    }

    let mut partners = Vec::new();
    let mut codes = HashSet::new();
    for (i, a) in raw.authority.iter().enumerate() {
        let k = |field: &str| format!("authority[{}].{field}", i + 1);
        let c = code(&k("code"), &a.code)?;
        if !codes.insert(c.clone()) {
            return Err(key_error(
                k("code"),
                format!("authority code {c:?} is configured twice"),
            ));
        }
        partners.push(Partner {
            config_key: format!("authority[{}]", i + 1),
            mailbox: mailbox_id(&k("mailbox"), &a.mailbox)?,
            role: Role::Authority {
                code: c,
                name: non_empty(&k("name"), &a.name)?,
                office_hours_phone: a.office_hours_phone.clone(),
                out_of_hours_phone: a.out_of_hours_phone.clone(),
                email: a.email.clone(),
            },
            format: a.format,
            framing: a.framing,
        });
    }
    let mut site_codes = HashSet::new();
    let mut org_codes = HashSet::new();
    for (i, s) in raw.site.iter().enumerate() {
        let k = |field: &str| format!("site[{}].{field}", i + 1);
        let c = code(&k("code"), &s.code)?;
        if !org_codes.insert(c.clone()) {
            return Err(key_error(
                k("code"),
                format!("site code {c:?} is configured twice"),
            ));
        }
        if s.site_codes.is_empty() {
            return Err(key_error(
                k("site_codes"),
                "list at least one site code, e.g. [\"R0A02\"]",
            ));
        }
        let mut own = Vec::new();
        for sc in &s.site_codes {
            let sc = code(&k("site_codes"), sc)?;
            if !site_codes.insert(sc.clone()) {
                return Err(key_error(
                    k("site_codes"),
                    format!("site code {sc:?} is claimed by two sites"),
                ));
            }
            own.push(sc);
        }
        partners.push(Partner {
            config_key: format!("site[{}]", i + 1),
            mailbox: mailbox_id(&k("mailbox"), &s.mailbox)?,
            role: Role::Site {
                code: c,
                name: non_empty(&k("name"), &s.name)?,
                site_codes: own,
                alerts: s.alerts,
            },
            format: s.format,
            framing: s.framing,
        });
    }
    if let Some(d) = raw.demographics {
        partners.push(Partner {
            config_key: "demographics".into(),
            mailbox: mailbox_id("demographics.mailbox", &d.mailbox)?,
            role: Role::Demographics,
            format: d.format,
            framing: d.framing,
        });
    }
    let mut seen = HashSet::new();
    seen.insert(hub.mailbox.to_ascii_uppercase());
    for p in &partners {
        if !seen.insert(p.mailbox.to_ascii_uppercase()) {
            return Err(key_error(
                format!("{}.mailbox", p.config_key),
                format!(
                    "mailbox {:?} is used twice (mailbox ids are unique, the hub's included)",
                    p.mailbox
                ),
            ));
        }
    }

    let mut sftp = Vec::new();
    let mut sftp_seen = HashSet::new();
    for (i, s) in raw.sftp.iter().enumerate() {
        let k = |field: &str| format!("sftp[{}].{field}", i + 1);
        let mailbox = mailbox_id(&k("mailbox"), &s.mailbox)?;
        if !partners
            .iter()
            .any(|p| p.mailbox.eq_ignore_ascii_case(&mailbox))
        {
            return Err(key_error(
                k("mailbox"),
                format!("{mailbox:?} is not the mailbox of any configured partner"),
            ));
        }
        if !sftp_seen.insert(mailbox.to_ascii_uppercase()) {
            return Err(key_error(
                k("mailbox"),
                format!("{mailbox:?} has two [[sftp]] entries"),
            ));
        }
        let port = count(&k("port"), s.port, 22, 65_535)?;
        if port == 0 {
            return Err(key_error(k("port"), "0 is not a port"));
        }
        sftp.push(SftpRemote {
            mailbox,
            host: non_empty(&k("host"), &s.host)?,
            port: port as u16,
            user: non_empty(&k("user"), &s.user)?,
            private_key: resolve(&non_empty(&k("private_key"), &s.private_key)?),
            known_hosts: resolve(&non_empty(&k("known_hosts"), &s.known_hosts)?),
            remote_in: non_empty(&k("remote_in"), &s.remote_in)?,
            remote_out: non_empty(&k("remote_out"), &s.remote_out)?,
            poll_every: duration(&k("poll_every"), s.poll_every.as_deref(), "60s")?,
            passphrase_env: s.passphrase_env.clone(),
            passphrase_file: s.passphrase_file.as_deref().map(&resolve),
            move_to_processed: s.move_to_processed,
            connect_timeout: duration(&k("connect_timeout"), s.connect_timeout.as_deref(), "15s")?,
            io_timeout: duration(&k("io_timeout"), s.io_timeout.as_deref(), "60s")?,
        });
    }

    Ok(Config {
        hub,
        partners,
        sftp,
    })
}

/// The production example configuration shipped in `deploy/`.
pub(crate) const EXAMPLE: &str = include_str!("../deploy/cpis-hub.example.toml");

/// The demo configuration the README runs (paths under `../var/`, test numbers on).
#[cfg(test)]
const DEMO: &str = include_str!("../deploy/cpis-hub.demo.toml");

/// The example configuration as `init` writes it into a folder (data under `var/`).
pub(crate) fn example_for_init() -> String {
    EXAMPLE.replace("\"/var/lib/cpis-hub/", "\"var/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/cpis-hub/cpis-hub.toml"))
    }

    const MINIMAL: &str = "[hub]\nmailbox = \"X26HUB01\"\n";

    #[test]
    fn example_config_is_valid_and_complete() {
        let c = Config::parse(EXAMPLE, Path::new("/etc/cpis-hub/cpis-hub.toml")).unwrap();
        assert_eq!(c.hub.root, Path::new("/var/lib/cpis-hub/mailboxes"));
        assert!(
            !c.hub.allow_test_nhs_numbers,
            "production refuses test numbers"
        );
        assert!(c.authorities().count() >= 2);
        let demo = Config::parse(DEMO, Path::new("/srv/cpis/deploy/cpis-hub.demo.toml")).unwrap();
        assert_eq!(
            demo.hub.root,
            Path::new("/srv/cpis/deploy/../var/mailboxes")
        );
        assert!(demo.hub.allow_test_nhs_numbers);
        let init = Config::parse(&example_for_init(), Path::new("/srv/x/cpis-hub.toml")).unwrap();
        assert_eq!(init.hub.root, Path::new("/srv/x/var/mailboxes"));
    }

    #[test]
    fn defaults_follow_the_spec() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.hub.settle, Duration::from_secs(1));
        assert_eq!(c.hub.rescan_every, Duration::from_secs(30));
        assert_eq!(c.hub.retention_days, 365);
        assert_eq!(c.hub.max_file_bytes, 536_870_912);
        assert_eq!(c.hub.mass_end_min, 10);
        assert!(!c.hub.allow_test_nhs_numbers);
        assert_eq!(
            c.hub.database,
            Path::new("/etc/cpis-hub/var/cpis-hub.sqlite3")
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let e = parse("[hub]\nmailbox = \"X26HUB01\"\nno_such_key = 1\n").unwrap_err();
        assert!(e.to_string().contains("no_such_key"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key() {
        for (text, key) in [
            ("settle = \"1x\"", "hub.settle"),
            ("holdings_at = \"3am\"", "hub.holdings_at"),
            ("max_reject_fraction = 1.5", "hub.max_reject_fraction"),
            ("retention_days = -1", "hub.retention_days"),
        ] {
            let e = parse(&format!("{MINIMAL}{text}\n")).unwrap_err();
            assert!(e.to_string().contains(key), "{text}: {e}");
        }
    }

    #[test]
    fn duplicate_mailbox_and_shared_site_code_are_refused() {
        let dup = format!("{MINIMAL}[[authority]]\ncode=\"A\"\nname=\"A\"\nmailbox=\"M1\"\n[[authority]]\ncode=\"B\"\nname=\"B\"\nmailbox=\"m1\"\n");
        assert!(parse(&dup).unwrap_err().to_string().contains("used twice"));
        let shared = format!("{MINIMAL}[[site]]\ncode=\"S\"\nname=\"S\"\nmailbox=\"M1\"\nsite_codes=[\"X1\"]\n[[site]]\ncode=\"T\"\nname=\"T\"\nmailbox=\"M2\"\nsite_codes=[\"X1\"]\n");
        assert!(parse(&shared)
            .unwrap_err()
            .to_string()
            .contains("claimed by two sites"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0s"), Some(Duration::ZERO));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("36h"), Some(Duration::from_secs(36 * 3600)));
        assert_eq!(parse_duration("1d"), Some(Duration::from_secs(86_400)));
        for bad in ["", "s", "1", "1.5s", "-1s", "1 s", "1w"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
