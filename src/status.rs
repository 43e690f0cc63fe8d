//! `cpis-hub status` (SPEC §5.3, issue 4): what the hub is doing, from the index
//! (read-only) and the mailbox folders. Works while the daemon runs.
//!
//! Owns nothing. Must never write, and never show an NHS number.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::clock::{self, Clock};
use crate::config::{Config, Role};
use crate::index::{self, Index, IndexError};
use crate::intake;
use crate::lock::Lock;
use crate::model::Job;

#[derive(Debug, Serialize)]
pub(crate) struct Status {
    pub now: String,
    pub daemon_running: bool,
    pub lock_holder: Option<String>,
    pub partners: Vec<PartnerStatus>,
    pub quarantined: Vec<Quarantined>,
    pub stale_authorities: Vec<Stale>,
    pub jobs: Vec<JobRun>,
    /// Folders under the root that are no configured mailbox: files there are never
    /// taken.
    pub unconfigured_folders: Vec<crate::transport::Unconfigured>,
    /// The MESH API transport (§9), when `[mesh]` is configured.
    pub mesh: Option<MeshStatus>,
}

/// `status --json`'s `mesh` object (§9).
#[derive(Debug, Serialize)]
pub(crate) struct MeshStatus {
    /// The last successful poll of the hub's MESH inbox (real time).
    pub last_poll: Option<String>,
    pub last_handshake: Option<String>,
    /// Messages kept under `<root>/.mesh-unknown/` (unknown or non-`mesh_api` senders).
    pub unknown_senders: u64,
    /// Outbound files a REPORT says were not delivered (within `hub.archive_days`),
    /// and files the server refused.
    pub undelivered: Vec<Undelivered>,
    /// Per `mesh_api` partner: the last message in and the last file sent.
    pub partners: Vec<MeshPartner>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Undelivered {
    pub partner: Option<String>,
    pub file: Option<String>,
    pub message_id: Option<String>,
    pub code: String,
    pub description: String,
    pub at: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct MeshPartner {
    pub mailbox: String,
    pub last_in: Option<String>,
    pub last_out: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct PartnerStatus {
    pub mailbox: String,
    pub role: String,
    pub code: String,
    pub last_in: Option<FileSeen>,
    pub last_out: Option<FileSeen>,
    /// Entries waiting in `in/` (temporary names excluded).
    pub backlog: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct FileSeen {
    pub at: String,
    pub name: String,
    /// Inbound: the final status; outbound: the kind.
    pub status: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct Quarantined {
    pub id: i64,
    pub mailbox: String,
    pub name: String,
    pub received_at: String,
    pub decision_queued: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Stale {
    pub authority: String,
    /// When an extract was last applied (`None`: never).
    pub last_applied: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct JobRun {
    pub job: String,
    pub last_run_at: Option<String>,
}

fn backlog(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| {
                    !intake::is_temporary(std::os::unix::ffi::OsStrExt::as_bytes(
                        e.file_name().as_os_str(),
                    ))
                })
                .count() as u64
        })
        .unwrap_or(0)
}

/// Gathers the status.
pub(crate) fn gather(config: &Config, now: Clock) -> Result<Status, IndexError> {
    let lock = config.lock_path();
    let daemon_running = Lock::is_held(&lock);
    let lock_holder = daemon_running
        .then(|| std::fs::read_to_string(&lock).ok())
        .flatten()
        .map(|s| format!("pid {}", s.trim()));
    let index = Index::open_read_only(&config.hub.database)?;
    let mut partners = Vec::new();
    for p in &config.partners {
        let (role, code) = match &p.role {
            Role::Authority { code, .. } => ("authority", code.clone()),
            Role::Site { code, .. } => ("site", code.clone()),
            Role::Demographics => ("demographics", String::new()),
        };
        let (last_in, last_out) = match &index {
            Some(ix) => (
                index::views::last_message(ix.db(), &p.mailbox)?
                    .map(|(at, name, status)| FileSeen { at, name, status }),
                index::outbound::last_outbound(ix.db(), &p.mailbox)?
                    .into_iter()
                    .max_by(|a, b| a.2.cmp(&b.2))
                    .map(|(kind, stem, at)| FileSeen {
                        at,
                        name: stem,
                        status: kind,
                    }),
            ),
            None => (None, None),
        };
        partners.push(PartnerStatus {
            mailbox: p.mailbox.clone(),
            role: role.into(),
            code,
            last_in,
            last_out,
            backlog: backlog(&config.folder(&p.mailbox, "in")),
        });
    }
    let mut quarantined = Vec::new();
    let mut stale_authorities = Vec::new();
    let mut jobs = Vec::new();
    let stale_after =
        chrono::Duration::from_std(config.hub.stale_after).unwrap_or(chrono::Duration::MAX);
    for a in config.authorities() {
        let code = a.authority_code().unwrap_or_default();
        let last = match &index {
            Some(ix) => {
                let s = index::holdings::authority_state(ix.db(), code)?;
                [s.last_full_at, s.last_delta_at]
                    .into_iter()
                    .flatten()
                    .max()
            }
            None => None,
        };
        // Never applied: stale once stale_after has passed since the hub first ran
        // with it configured (§10); not before the hub has run with it at all.
        let since = match (&last, &index) {
            (Some(at), _) => clock::parse_rfc3339(at),
            (None, Some(ix)) => index::holdings::first_seen(ix.db(), code)?
                .as_deref()
                .and_then(clock::parse_rfc3339),
            (None, None) => None,
        };
        let at: Option<DateTime<Utc>> = since;
        if at.is_some_and(|t| now.now() - t > stale_after) {
            stale_authorities.push(Stale {
                authority: code.to_string(),
                last_applied: last,
            });
        }
    }
    if let Some(ix) = &index {
        for (m, decision) in index::ledger::quarantined(ix.db())? {
            quarantined.push(Quarantined {
                id: m.id,
                mailbox: m.mailbox,
                name: String::from_utf8_lossy(&m.name).into_owned(),
                received_at: m.received_at,
                decision_queued: decision,
            });
        }
        for &job in Job::ALL {
            jobs.push(JobRun {
                job: job.as_str().into(),
                last_run_at: index::runs::job_state(ix.db(), job)?.0,
            });
        }
    }
    Ok(Status {
        now: now.rfc3339(),
        daemon_running,
        lock_holder,
        partners,
        quarantined,
        stale_authorities,
        jobs,
        unconfigured_folders: crate::transport::unconfigured_mailboxes(config),
        mesh: match (&config.mesh, &index) {
            (None, _) => None,
            (Some(_), Some(ix)) => Some(mesh_status(config, ix.db(), &now)?),
            (Some(_), None) => Some(MeshStatus {
                last_poll: None,
                last_handshake: None,
                unknown_senders: 0,
                undelivered: Vec::new(),
                partners: Vec::new(),
            }),
        },
    })
}

fn mesh_status(config: &Config, db: index::Db<'_>, now: &Clock) -> Result<MeshStatus, IndexError> {
    use index::mesh;
    let since = now.now() - chrono::Duration::days(i64::from(config.hub.archive_days));
    let mut undelivered: Vec<Undelivered> = mesh::reports(db)?
        .into_iter()
        .filter(|r| clock::parse_rfc3339(&r.at).is_none_or(|at| at >= since))
        .map(|r| Undelivered {
            partner: r.mailbox,
            file: r.file,
            message_id: r.linked_id,
            code: r.code,
            description: r.description,
            at: r.at,
        })
        .collect();
    undelivered.extend(mesh::refused(db)?.into_iter().map(|o| Undelivered {
        partner: Some(o.mailbox),
        file: Some(o.file),
        message_id: o.message_id,
        code: "refused".into(),
        description: o.error.unwrap_or_default(),
        at: String::new(),
    }));
    let last = mesh::last_per_partner(db)?;
    let partners = config
        .partners
        .iter()
        .filter(|p| p.mesh_api)
        .map(|p| {
            let found = last
                .iter()
                .find(|(m, _, _)| m.eq_ignore_ascii_case(&p.mailbox));
            MeshPartner {
                mailbox: p.mailbox.clone(),
                last_in: found.and_then(|f| f.1.clone()),
                last_out: found.and_then(|f| f.2.clone()),
            }
        })
        .collect();
    Ok(MeshStatus {
        last_poll: mesh::state(db, "last_poll")?,
        last_handshake: mesh::state(db, "last_handshake")?,
        unknown_senders: mesh::kept_count(db)?,
        undelivered,
        partners,
    })
}

/// What needs an operator (§10 `status --check`), one line each: stale authorities,
/// quarantined messages, undelivered outbound files (MESH reports and refusals; files
/// waiting in a remote partner's `out/` longer than its poll), messages waiting in
/// `in/` longer than `rescan_every` + `settle`, messages kept from unknown MESH
/// senders still under `.mesh-unknown/`.
pub(crate) fn problems(config: &Config, s: &Status) -> Vec<String> {
    let mut found = Vec::new();
    for a in &s.stale_authorities {
        found.push(format!(
            "STALE authority {}: last extract applied {}",
            a.authority,
            a.last_applied.as_deref().unwrap_or("never")
        ));
    }
    for q in &s.quarantined {
        found.push(format!(
            "QUARANTINED message {} in {}: {}",
            q.id, q.mailbox, q.name
        ));
    }
    if let Some(m) = &s.mesh {
        for u in &m.undelivered {
            found.push(format!(
                "UNDELIVERED {} for {} ({}: {})",
                u.file.as_deref().unwrap_or("?"),
                u.partner.as_deref().unwrap_or("?"),
                u.code,
                u.description
            ));
        }
    }
    let real_now = std::time::SystemTime::now();
    let age = |path: &Path| -> Option<std::time::Duration> {
        let modified = std::fs::symlink_metadata(path).ok()?.modified().ok()?;
        real_now.duration_since(modified).ok()
    };
    let waiting_files = |dir: &Path| -> Vec<(String, std::time::Duration)> {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                    .filter(|e| {
                        !intake::is_temporary(std::os::unix::ffi::OsStrExt::as_bytes(
                            e.file_name().as_os_str(),
                        ))
                    })
                    .filter_map(|e| {
                        Some((
                            e.file_name().to_string_lossy().into_owned(),
                            age(&e.path())?,
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let waiting_limit = config.hub.rescan_every + config.hub.settle;
    for p in &config.partners {
        let old: Vec<_> = waiting_files(&config.folder(&p.mailbox, "in"))
            .into_iter()
            .filter(|(_, a)| *a > waiting_limit)
            .collect();
        if let Some(oldest) = old.iter().map(|(_, a)| *a).max() {
            found.push(format!(
                "WAITING {} message(s) in {}/in for over {}s (the oldest {}s)",
                old.len(),
                p.mailbox,
                waiting_limit.as_secs(),
                oldest.as_secs()
            ));
        }
        // A file in a remote partner's out/ is undelivered once it has waited longer
        // than a transfer round should take.
        let remote_poll = config
            .sftp
            .iter()
            .find(|r| r.mailbox.eq_ignore_ascii_case(&p.mailbox))
            .map(|r| r.poll_every)
            .or_else(|| {
                p.mesh_api
                    .then(|| config.mesh.as_ref().map(|m| m.poll_every))
                    .flatten()
            });
        if let Some(poll) = remote_poll {
            let limit = poll + config.hub.rescan_every;
            for (name, a) in waiting_files(&config.folder(&p.mailbox, "out")) {
                if a > limit {
                    found.push(format!(
                        "UNDELIVERED {name} for {}: waiting in out/ for {}s",
                        p.mailbox,
                        a.as_secs()
                    ));
                }
            }
        }
    }
    if config.mesh.is_some() {
        let kept = waiting_files(&config.hub.root.join(".mesh-unknown"))
            .iter()
            .filter(|(n, _)| n.ends_with(".dat"))
            .count();
        if kept > 0 {
            found.push(format!(
                "UNKNOWN SENDER {kept} MESH message(s) kept under .mesh-unknown/ (see docs/mesh.md)"
            ));
        }
    }
    found
}

/// The human form: aligned tables.
pub(crate) fn render_text(s: &Status) -> String {
    let mut out = String::new();
    let daemon = if s.daemon_running {
        format!(
            "running ({})",
            s.lock_holder.as_deref().unwrap_or("pid unknown")
        )
    } else {
        "not running".into()
    };
    out.push_str(&format!(
        "cpis-hub status at {}\ndaemon: {daemon}\n\n",
        s.now
    ));
    out.push_str(&format!(
        "{:<10} {:<13} {:<6} {:>7}  {:<58}  {}\n",
        "MAILBOX", "ROLE", "CODE", "BACKLOG", "LAST IN", "LAST OUT"
    ));
    for p in &s.partners {
        let last_in = p
            .last_in
            .as_ref()
            .map(|f| format!("{} {} {}", f.at, f.status, f.name))
            .unwrap_or_else(|| "-".into());
        let last_out = p
            .last_out
            .as_ref()
            .map(|f| format!("{} {}", f.at, f.name))
            .unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "{:<10} {:<13} {:<6} {:>7}  {:<58}  {}\n",
            p.mailbox, p.role, p.code, p.backlog, last_in, last_out
        ));
    }
    out.push_str(&format!("\nquarantined: {}\n", s.quarantined.len()));
    for q in &s.quarantined {
        out.push_str(&format!(
            "  {:<6} {:<10} {} {}{}\n",
            q.id,
            q.mailbox,
            q.received_at,
            q.name,
            q.decision_queued
                .as_ref()
                .map(|d| format!(" ({d} queued)"))
                .unwrap_or_default()
        ));
    }
    out.push_str(&format!(
        "\nstale authorities (no extract applied within hub.stale_after): {}\n",
        s.stale_authorities.len()
    ));
    for a in &s.stale_authorities {
        out.push_str(&format!(
            "  {:<8} last applied {}\n",
            a.authority,
            a.last_applied.as_deref().unwrap_or("never")
        ));
    }
    if !s.unconfigured_folders.is_empty() {
        out.push_str(&format!(
            "\nfolders under the mailbox root that are no configured mailbox (their files are never taken): {}\n",
            s.unconfigured_folders.len()
        ));
        for u in &s.unconfigured_folders {
            out.push_str(&format!("  {:<10} {} file(s)\n", u.folder, u.files));
        }
    }
    if let Some(m) = &s.mesh {
        render_mesh(&mut out, m);
    }
    out.push_str("\nscheduled jobs:\n");
    for j in &s.jobs {
        out.push_str(&format!(
            "  {:<14} last run {}\n",
            j.job,
            j.last_run_at.as_deref().unwrap_or("never")
        ));
    }
    out
}

fn render_mesh(out: &mut String, m: &MeshStatus) {
    let or_never = |v: &Option<String>| v.clone().unwrap_or_else(|| "never".into());
    out.push_str(&format!(
        "\nMESH API: last poll {}, last handshake {}\n",
        or_never(&m.last_poll),
        or_never(&m.last_handshake)
    ));
    for p in &m.partners {
        out.push_str(&format!(
            "  {:<10} last in {}, last out {}\n",
            p.mailbox,
            or_never(&p.last_in),
            or_never(&p.last_out)
        ));
    }
    out.push_str(&format!(
        "  messages kept from unknown senders (under .mesh-unknown/): {}\n",
        m.unknown_senders
    ));
    out.push_str(&format!(
        "  undelivered outbound files: {}\n",
        m.undelivered.len()
    ));
    for u in &m.undelivered {
        out.push_str(&format!(
            "    {} {} {} (message {}): {} {}\n",
            u.at,
            u.partner.as_deref().unwrap_or("?"),
            u.file.as_deref().unwrap_or("?"),
            u.message_id.as_deref().unwrap_or("-"),
            u.code,
            u.description
        ));
    }
}
