//! From the TOML text to a checked [`Config`]: the file's raw shape (serde), each
//! key checked with its default, and the rules between keys (unique codes and
//! mailboxes, an SFTP remote for a configured partner only).
//!
//! Owns nothing. Must never accept a value it cannot read, and every error names
//! its key.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use chrono::NaiveTime;
use serde::Deserialize;

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    hub: RawHub,
    #[serde(default)]
    authority: Vec<RawAuthority>,
    #[serde(default)]
    site: Vec<RawSite>,
    demographics: Option<RawDemographics>,
    #[serde(default)]
    sftp: Vec<RawSftp>,
    mesh: Option<RawMesh>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMesh {
    url: String,
    password_file: String,
    shared_key_file: String,
    client_cert: Option<String>,
    client_key: Option<String>,
    ca_bundle: Option<String>,
    poll_every: Option<String>,
    chunk_bytes: Option<i64>,
    timeout: Option<String>,
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
    #[serde(default)]
    mesh_api: bool,
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
    #[serde(default)]
    mesh_api: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDemographics {
    mailbox: String,
    #[serde(default)]
    format: Format,
    #[serde(default)]
    framing: Framing,
    #[serde(default)]
    mesh_api: bool,
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
fn parse_duration(text: &str) -> Option<Duration> {
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

pub(super) fn build(raw: RawConfig, base: &Path) -> Result<Config, ConfigError> {
    let hub = hub_settings(&raw.hub, base)?;
    let mut partners = Vec::new();
    let mut codes = HashSet::new();
    for (i, a) in raw.authority.iter().enumerate() {
        partners.push(authority(i, a, &mut codes)?);
    }
    let (mut org_codes, mut site_codes) = (HashSet::new(), HashSet::new());
    for (i, s) in raw.site.iter().enumerate() {
        partners.push(site(i, s, &mut org_codes, &mut site_codes)?);
    }
    if let Some(d) = raw.demographics {
        partners.push(Partner {
            config_key: "demographics".into(),
            mailbox: mailbox_id("demographics.mailbox", &d.mailbox)?,
            role: Role::Demographics,
            format: d.format,
            framing: d.framing,
            mesh_api: d.mesh_api,
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
        sftp.push(sftp_remote(i, s, base, &partners, &mut sftp_seen)?);
    }
    let mesh = match &raw.mesh {
        Some(m) => Some(mesh_settings(m, base)?),
        None => None,
    };
    for p in &partners {
        if p.mesh_api && mesh.is_none() {
            return Err(key_error(
                format!("{}.mesh_api", p.config_key),
                "a partner reached over the MESH API needs a [mesh] table (SPEC §9)",
            ));
        }
        if p.mesh_api
            && sftp
                .iter()
                .any(|r: &SftpRemote| r.mailbox.eq_ignore_ascii_case(&p.mailbox))
        {
            return Err(key_error(
                format!("{}.mesh_api", p.config_key),
                format!(
                    "{:?} also has an [[sftp]] remote: a partner is reached one way",
                    p.mailbox
                ),
            ));
        }
    }
    Ok(Config {
        hub,
        partners,
        sftp,
        mesh,
    })
}

/// `[hub]`, with its defaults (SPEC §8).
fn hub_settings(h: &RawHub, base: &Path) -> Result<HubSettings, ConfigError> {
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
    Ok(hub)
}

/// The `i`th `[[authority]]`; `codes`: the authority codes configured so far.
fn authority(
    i: usize,
    a: &RawAuthority,
    codes: &mut HashSet<String>,
) -> Result<Partner, ConfigError> {
    let k = |field: &str| format!("authority[{}].{field}", i + 1);
    let c = code(&k("code"), &a.code)?;
    if !codes.insert(c.clone()) {
        return Err(key_error(
            k("code"),
            format!("authority code {c:?} is configured twice"),
        ));
    }
    Ok(Partner {
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
        mesh_api: a.mesh_api,
    })
}

/// The `i`th `[[site]]`; `org_codes` and `site_codes`: those configured so far (a
/// site code belongs to one organisation only).
fn site(
    i: usize,
    s: &RawSite,
    org_codes: &mut HashSet<String>,
    site_codes: &mut HashSet<String>,
) -> Result<Partner, ConfigError> {
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
    Ok(Partner {
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
        mesh_api: s.mesh_api,
    })
}

/// The `i`th `[[sftp]]`: the remote of one configured partner (`seen`: the
/// mailboxes given a remote so far).
fn sftp_remote(
    i: usize,
    s: &RawSftp,
    base: &Path,
    partners: &[Partner],
    seen: &mut HashSet<String>,
) -> Result<SftpRemote, ConfigError> {
    let resolve = |p: &str| base.join(p);
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
    if !seen.insert(mailbox.to_ascii_uppercase()) {
        return Err(key_error(
            k("mailbox"),
            format!("{mailbox:?} has two [[sftp]] entries"),
        ));
    }
    let port = count(&k("port"), s.port, 22, 65_535)?;
    if port == 0 {
        return Err(key_error(k("port"), "0 is not a port"));
    }
    Ok(SftpRemote {
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
    })
}

/// `[mesh]` (§9): every value checked now, with its key named; the secrets and
/// certificates read now, so that a pass never starts with one it cannot use.
fn mesh_settings(m: &RawMesh, base: &Path) -> Result<MeshSettings, ConfigError> {
    let url = non_empty("mesh.url", &m.url)?
        .trim_end_matches('/')
        .to_string();
    let (scheme, host) = url_parts(&url).ok_or_else(|| {
        key_error(
            "mesh.url",
            format!("{url:?} is not an http(s) URL with a host"),
        )
    })?;
    let https = match scheme.as_str() {
        "https" => true,
        "http" if is_loopback(&host) => false,
        "http" => return Err(key_error(
            "mesh.url",
            "plain http is allowed only to a loopback host (127.0.0.1, ::1, localhost): use https",
        )),
        _ => {
            return Err(key_error(
                "mesh.url",
                "the scheme must be https (or http to a loopback host)",
            ))
        }
    };
    let file = |key: &str, value: &str| -> Result<PathBuf, ConfigError> {
        Ok(base.join(non_empty(&format!("mesh.{key}"), value)?))
    };
    let password = read_secret(
        "mesh.password_file",
        &file("password_file", &m.password_file)?,
    )?;
    let shared_key = read_secret(
        "mesh.shared_key_file",
        &file("shared_key_file", &m.shared_key_file)?,
    )?;
    let client_identity = match (&m.client_cert, &m.client_key) {
        (None, None) => None,
        (Some(cert), Some(key)) => {
            let mut pem = read_pem(
                "mesh.client_cert",
                &file("client_cert", cert)?,
                "CERTIFICATE",
            )?;
            let key_path = file("client_key", key)?;
            check_private("mesh.client_key", &key_path)?;
            pem.push(b'\n');
            pem.extend(read_pem("mesh.client_key", &key_path, "PRIVATE KEY")?);
            Some(pem)
        }
        (Some(_), None) => {
            return Err(key_error(
                "mesh.client_key",
                "client_cert is set: the key that goes with it is needed too",
            ))
        }
        (None, Some(_)) => {
            return Err(key_error(
                "mesh.client_cert",
                "client_key is set: the certificate that goes with it is needed too",
            ))
        }
    };
    let ca_bundle = match &m.ca_bundle {
        Some(path) => Some(read_pem("mesh.ca_bundle", &file("ca_bundle", path)?, "CERTIFICATE")?),
        None if https => {
            return Err(key_error(
                "mesh.ca_bundle",
                "an https url needs the CA bundle that signed the MESH server's certificate (there is no switch to skip the check)",
            ))
        }
        None => None,
    };
    let chunk_bytes = count(
        "mesh.chunk_bytes",
        m.chunk_bytes,
        20_000_000,
        MeshSettings::MAX_CHUNK_BYTES as i64,
    )? as u64;
    if chunk_bytes < MeshSettings::MIN_CHUNK_BYTES {
        return Err(key_error(
            "mesh.chunk_bytes",
            format!("at least {} bytes", MeshSettings::MIN_CHUNK_BYTES),
        ));
    }
    let timeout = duration("mesh.timeout", m.timeout.as_deref(), "60s")?;
    if timeout.is_zero() {
        return Err(key_error(
            "mesh.timeout",
            "a timeout of 0 would fail every request",
        ));
    }
    Ok(MeshSettings {
        url,
        password,
        shared_key,
        client_identity,
        ca_bundle,
        poll_every: duration("mesh.poll_every", m.poll_every.as_deref(), "5m")?,
        chunk_bytes,
        timeout,
    })
}

/// `scheme://host[:port][/path]`: the scheme (lower case) and the host.
fn url_parts(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?;
    if authority.contains('@') {
        return None;
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?.to_string()
    } else {
        authority.split(':').next()?.to_string()
    };
    (!host.is_empty()).then(|| (scheme.to_ascii_lowercase(), host.to_ascii_lowercase()))
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Refuses a file that group or others may read (its mode, not its path's target
/// folder: the hub's own folders are checked at start, §6.6).
fn check_private(key: &str, path: &Path) -> Result<std::fs::Metadata, ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| key_error(key, format!("cannot read {}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(key_error(key, format!("{} is not a file", path.display())));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(key_error(
            key,
            format!(
                "{} can be read by group or others (mode {:o}): chmod 600 it",
                path.display(),
                meta.permissions().mode() & 0o777
            ),
        ));
    }
    Ok(meta)
}

/// A secret file: private, small, UTF-8; one trailing newline removed (§9).
fn read_secret(key: &str, path: &Path) -> Result<Secret, ConfigError> {
    let meta = check_private(key, path)?;
    if meta.len() > 4096 {
        return Err(key_error(
            key,
            format!("{} is over 4 KiB: not a secret file", path.display()),
        ));
    }
    let mut text = std::fs::read_to_string(path)
        .map_err(|e| key_error(key, format!("cannot read {}: {e}", path.display())))?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.is_empty() || text.contains('\n') {
        return Err(key_error(
            key,
            format!("{} must hold the secret on one line", path.display()),
        ));
    }
    Ok(Secret::new(text))
}

/// A PEM file holding at least one `-----BEGIN ...{label}-----` block.
fn read_pem(key: &str, path: &Path, label: &str) -> Result<Vec<u8>, ConfigError> {
    let bytes = std::fs::read(path)
        .map_err(|e| key_error(key, format!("cannot read {}: {e}", path.display())))?;
    let text = String::from_utf8_lossy(&bytes);
    let found = text
        .lines()
        .any(|l| l.starts_with("-----BEGIN ") && l.trim_end().ends_with(&format!("{label}-----")));
    if !found {
        return Err(key_error(
            key,
            format!("{} holds no PEM {label}", path.display()),
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

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
