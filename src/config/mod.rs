//! Configuration (SPEC §8): the TOML file read at start, every key checked, every
//! error naming the key and what to write instead.
//!
//! Owns the validated [`Config`]. Must never create or touch mailbox folders or the
//! database (that is `transport` and `index`), and must never guess a value it
//! cannot read.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::NaiveTime;
use serde::Deserialize;

mod load;

use load::{build, RawConfig};

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
    /// Reached through the hub's MESH mailbox over the MESH API (§9).
    pub mesh_api: bool,
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

    /// The workflow id of an outbound file of this kind for this partner (§1.4).
    pub(crate) fn outbound_workflow(&self, kind: crate::formats::Kind) -> &'static str {
        use crate::formats::Kind;
        match kind {
            Kind::Receipt => self.receipt_workflow(),
            Kind::Access => "CPISHUB_ACCESS",
            Kind::Inactive => "CPISHUB_INACTIVE",
            Kind::Holdings => "CPISHUB_HOLDINGS",
            Kind::Alerts => "CPISHUB_ALERTS",
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
    pub mesh: Option<MeshSettings>,
}

/// A secret read from a file (§9): never printed, not even by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn new(text: String) -> Secret {
        Secret(text)
    }

    /// The secret itself, for the one place that uses it (the MESH token).
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// `[mesh]`: the hub's own MESH mailbox over the MESH API (§9), checked.
#[derive(Debug, Clone)]
pub(crate) struct MeshSettings {
    /// The base URL, without a trailing `/`.
    pub url: String,
    pub password: Secret,
    pub shared_key: Secret,
    /// Mutual TLS: the hub's certificate and key (PEM), read at start.
    pub client_identity: Option<Vec<u8>>,
    /// The only roots trusted for the server (PEM), required for `https`.
    pub ca_bundle: Option<Vec<u8>>,
    pub poll_every: Duration,
    pub chunk_bytes: u64,
    pub timeout: Duration,
}

impl MeshSettings {
    /// The largest request body the MESH API takes (100 MB).
    pub(crate) const MAX_CHUNK_BYTES: u64 = 100_000_000;
    /// The smallest `chunk_bytes` accepted: room for a gzip member's framing.
    pub(crate) const MIN_CHUNK_BYTES: u64 = 1024;
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

/// The production example configuration shipped in `deploy/`.
pub(crate) const EXAMPLE: &str = include_str!("../../deploy/cpis-hub.example.toml");

/// The demo configuration the README runs (paths under `../var/`, test numbers on).
#[cfg(test)]
const DEMO: &str = include_str!("../../deploy/cpis-hub.demo.toml");

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
}
