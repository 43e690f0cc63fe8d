//! Transport, MESH API side (SPEC §9): the hub as a client of its own MESH mailbox.
//! This file is the protocol: the `NHSMESH` token, the requests (handshake, inbox
//! listing, download, acknowledge, send) and what their failures mean for an
//! operator. `inbound` takes the inbox into the partners' `in/` folders exactly once;
//! `outbound` sends what waits in their `out/` folders, repeating a send only when its
//! outcome is unknown.
//!
//! Owns the HTTP client and the secrets while a transfer runs. Must never log or
//! print a secret (the password, the shared key, a token), never trust a server
//! certificate that `ca_bundle` does not vouch for, and never hold a whole message in
//! memory: bodies are streamed between the socket and a file.

mod inbound;
mod outbound;

use std::io::{self, Read};
use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::blocking::{Client as Http, RequestBuilder, Response};
use reqwest::StatusCode;
use sha2::Sha256;
use tracing::{info, warn};

use crate::clock::Clock;
use crate::config::{Config, MeshSettings};
use crate::index::{self, Index, IndexError};

pub(crate) use inbound::poll;
pub(crate) use outbound::send_all;

/// The MESH API's media type (version 2).
const ACCEPT: &str = "application/vnd.mesh.v2+json";

/// The waits before each new try of a request that met 429, 5xx or the network.
const RETRY_DELAYS: [Duration; 3] = [
    Duration::from_millis(500),
    Duration::from_secs(2),
    Duration::from_secs(8),
];

/// The longest `Retry-After` honoured within one request.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// How long after a handshake the daemon shakes hands again (§9: every 24 h).
pub(crate) const HANDSHAKE_EVERY: Duration = Duration::from_secs(24 * 3600);

/// A MESH transfer that failed, with what an operator should check.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MeshError {
    #[error("MESH authentication failed ({status}) for mailbox {mailbox}: {advice}")]
    Auth {
        status: u16,
        mailbox: String,
        advice: &'static str,
    },
    #[error("the MESH server's certificate is not trusted by [mesh] ca_bundle ({detail}): check that ca_bundle holds the CA that signed the server certificate, and the url's host name")]
    Untrusted { detail: String },
    #[error("the MESH server refused the TLS client certificate ({detail}): check [mesh] client_cert and client_key, and that the certificate is the one registered for the mailbox")]
    ClientCertificate { detail: String },
    #[error("MESH {what}: the server answered {status}{detail}")]
    Http {
        what: String,
        status: u16,
        detail: String,
    },
    #[error("MESH {what}: {detail} (the server at [mesh] url is unreachable or broke the connection; tried again with backoff)")]
    Network {
        what: String,
        detail: String,
        /// Whether the request may have reached the server (its outcome is unknown).
        maybe_sent: bool,
    },
    #[error("MESH {what}: {detail}")]
    Protocol { what: String, detail: String },
    #[error("{what} {path}: {source}")]
    Local {
        what: &'static str,
        path: std::path::PathBuf,
        source: io::Error,
    },
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(
        "cannot set up the MESH client: {0} (check [mesh] client_cert, client_key and ca_bundle)"
    )]
    Setup(String),
}

impl MeshError {
    /// A failure that may pass by itself (429, 5xx, the network): tried again with
    /// backoff. The others need an operator (a secret, a certificate, a refusal).
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            MeshError::Http { status, .. } => *status == 429 || *status >= 500,
            MeshError::Network { .. } => true,
            MeshError::Index(e) => e.is_environment(),
            MeshError::Local { .. } => true,
            _ => false,
        }
    }

    /// Worth another try within the same request: 429, 5xx, the network (not a
    /// local file or the database, which the round's backoff handles).
    fn is_retryable(&self) -> bool {
        matches!(self, MeshError::Http { .. } | MeshError::Network { .. }) && self.is_transient()
    }

    fn http(what: impl Into<String>, response: Response) -> MeshError {
        let status = response.status().as_u16();
        // The server's own words, bounded (they never hold a secret of ours).
        let mut body = String::new();
        let _ = response.take(400).read_to_string(&mut body);
        let body: String = body.chars().filter(|c| !c.is_control()).collect();
        MeshError::Http {
            what: what.into(),
            status,
            detail: if body.trim().is_empty() {
                String::new()
            } else {
                format!(": {}", body.trim())
            },
        }
    }
}

/// The `NHSMESH` authorization of one request: `MAILBOX:NONCE:COUNT:TIMESTAMP:HMAC`,
/// the HMAC-SHA256, keyed with the environment's shared key, of
/// `MAILBOX:NONCE:COUNT:PASSWORD:TIMESTAMP` (timestamp `YYYYmmddHHMM`, UTC).
pub(crate) fn token(
    mailbox: &str,
    password: &str,
    shared_key: &str,
    nonce: &str,
    count: u32,
    timestamp: &str,
) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(shared_key.as_bytes())
        .expect("HMAC takes a key of any size");
    mac.update(format!("{mailbox}:{nonce}:{count}:{password}:{timestamp}").as_bytes());
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("NHSMESH {mailbox}:{nonce}:{count}:{timestamp}:{hex}")
}

/// A MESH message id the hub can use as a file name: letters, digits, `_` and `-`.
fn usable_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 100
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The hub's MESH API client: one per transfer round (handshake, poll, send).
pub(crate) struct Client {
    http: Http,
    base: String,
    mailbox: String,
    settings: MeshSettings,
}

impl Client {
    /// A client for the hub's mailbox: the server verified against `ca_bundle` only
    /// (no system roots), the hub's certificate presented when configured.
    pub(crate) fn new(config: &Config) -> Result<Client, MeshError> {
        let settings = config
            .mesh
            .clone()
            .ok_or_else(|| MeshError::Setup("there is no [mesh] table".into()))?;
        let mut builder = Http::builder()
            .tls_built_in_root_certs(false)
            .https_only(settings.url.starts_with("https://"))
            .no_proxy()
            .connect_timeout(settings.timeout)
            .timeout(settings.timeout)
            .user_agent(concat!("cpis-hub/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = &settings.ca_bundle {
            let roots = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| MeshError::Setup(format!("ca_bundle: {e}")))?;
            for root in roots {
                builder = builder.add_root_certificate(root);
            }
        }
        if let Some(pem) = &settings.client_identity {
            let identity = reqwest::Identity::from_pem(pem)
                .map_err(|e| MeshError::Setup(format!("client_cert/client_key: {e}")))?;
            builder = builder.identity(identity);
        }
        let http = builder
            .build()
            .map_err(|e| MeshError::Setup(describe(&e)))?;
        Ok(Client {
            http,
            base: settings.url.clone(),
            mailbox: config.hub.mailbox.clone(),
            settings,
        })
    }

    pub(crate) fn settings(&self) -> &MeshSettings {
        &self.settings
    }

    /// A request to `path` (below the base URL) with a fresh token.
    fn request(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        let nonce = uuid::Uuid::new_v4().to_string();
        // Always the real clock (never --now): the server checks it.
        let timestamp = chrono::Utc::now().format("%Y%m%d%H%M").to_string();
        let auth = token(
            &self.mailbox,
            self.settings.password.expose(),
            self.settings.shared_key.expose(),
            &nonce,
            1,
            &timestamp,
        );
        self.http
            .request(method, format!("{}{}", self.base, path))
            .header("Authorization", auth)
            .header("Accept", ACCEPT)
    }

    /// Sends a request built by `build` (afresh for each try: a new token, the body
    /// from its start); 429, 5xx and network failures are tried again after a
    /// bounded backoff ([`RETRY_DELAYS`], or the server's `Retry-After`, at most
    /// [`MAX_RETRY_AFTER`]). A status other than 2xx is an error naming `what`.
    fn call(
        &self,
        what: &str,
        build: impl Fn() -> Result<RequestBuilder, MeshError>,
    ) -> Result<Response, MeshError> {
        let mut tries = RETRY_DELAYS.iter();
        loop {
            let (result, retry_after) = match build()?.send() {
                Ok(response) => {
                    let after = header(&response, "retry-after").parse::<u64>().ok();
                    (self.answer(what, response), after)
                }
                Err(e) => (Err(self.network(what, &e)), None),
            };
            match result {
                Err(e) if e.is_retryable() => match tries.next() {
                    Some(delay) => {
                        let delay = retry_after
                            .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER))
                            .unwrap_or(*delay);
                        warn!(event = "mesh_retry", what = %what, error = %e, delay_ms = delay.as_millis() as u64, "trying again");
                        std::thread::sleep(delay);
                    }
                    None => return Err(e),
                },
                other => return other,
            }
        }
    }

    /// A response: itself when 2xx, else the error it means.
    fn answer(&self, what: &str, response: Response) -> Result<Response, MeshError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(MeshError::Auth {
                status: status.as_u16(),
                mailbox: self.mailbox.clone(),
                advice: "check [mesh] password_file (the mailbox's password), shared_key_file (the environment's shared key) and hub.mailbox; with mutual TLS, that client_cert is the mailbox's",
            });
        }
        Err(MeshError::http(what, response))
    }

    /// What a failed request means: an untrusted server, a refused client
    /// certificate, or the network (and whether the request may have gone out).
    fn network(&self, what: &str, e: &reqwest::Error) -> MeshError {
        let detail = describe(e);
        let lower = detail.to_ascii_lowercase();
        if lower.contains("invalid peer certificate")
            || lower.contains("unknownissuer")
            || lower.contains("notvalidforname")
            || lower.contains("certificate verify failed")
        {
            return MeshError::Untrusted { detail };
        }
        if lower.contains("certificate required")
            || lower.contains("certificaterequired")
            || lower.contains("bad certificate")
            || lower.contains("badcertificate")
            || lower.contains("unknown ca")
            || lower.contains("unknownca")
        {
            return MeshError::ClientCertificate { detail };
        }
        MeshError::Network {
            what: what.to_string(),
            maybe_sent: !e.is_connect(),
            detail,
        }
    }

    /// The handshake (§9: when `run` starts, every 24 h, once per `process`).
    pub(crate) fn handshake(&self) -> Result<(), MeshError> {
        let os_version = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        self.call("handshake", || {
            Ok(self
                .request(
                    reqwest::Method::POST,
                    &format!("/messageexchange/{}", self.mailbox),
                )
                .header(
                    "mex-ClientVersion",
                    concat!("cpis-hub/", env!("CARGO_PKG_VERSION")),
                )
                .header("mex-OSName", std::env::consts::OS)
                .header("mex-OSVersion", &os_version)
                .header("Content-Length", "0"))
        })?;
        Ok(())
    }

    /// One page of the inbox: its message ids, and the path of the next page.
    fn inbox_page(&self, path: &str) -> Result<(Vec<String>, Option<String>), MeshError> {
        let response = self.call("inbox listing", || {
            Ok(self.request(reqwest::Method::GET, path))
        })?;
        let value = json_body(response, "inbox listing")?;
        let ids = value
            .get("messages")
            .and_then(|m| m.as_array())
            .ok_or_else(|| MeshError::Protocol {
                what: "inbox listing".into(),
                detail: "no `messages` list".into(),
            })?
            .iter()
            .filter_map(|m| m.as_str().map(str::to_string))
            .collect();
        let next = value
            .pointer("/links/next")
            .and_then(|n| n.as_str())
            .map(str::to_string);
        Ok((ids, next))
    }

    /// Every message id in the inbox, following `links.next` (a path) to the end;
    /// also whether a page was full (then the inbox is listed again at once).
    pub(crate) fn inbox(&self) -> Result<(Vec<String>, bool), MeshError> {
        const PAGE: usize = 500;
        let mut path = format!("/messageexchange/{}/inbox?max_results={PAGE}", self.mailbox);
        let mut ids = Vec::new();
        let mut full = false;
        for _ in 0..10_000 {
            let (page, next) = self.inbox_page(&path)?;
            full |= page.len() >= PAGE;
            ids.extend(page);
            match next {
                Some(next) if next.starts_with('/') => path = next,
                Some(next) => {
                    // An absolute link: only on our own server.
                    match next.strip_prefix(&self.base) {
                        Some(rest) if rest.starts_with('/') => path = rest.to_string(),
                        _ => {
                            return Err(MeshError::Protocol {
                                what: "inbox listing".into(),
                                detail: "links.next points to another server".into(),
                            })
                        }
                    }
                }
                None => return Ok((ids, full)),
            }
        }
        Ok((ids, full))
    }

    /// One chunk of a message (1-based): the response, status 200 or 206.
    fn chunk(&self, id: &str, n: u32) -> Result<Response, MeshError> {
        let path = if n == 1 {
            format!("/messageexchange/{}/inbox/{id}", self.mailbox)
        } else {
            format!("/messageexchange/{}/inbox/{id}/{n}", self.mailbox)
        };
        self.call("download", || Ok(self.request(reqwest::Method::GET, &path)))
    }

    /// Acknowledges a message (it leaves the inbox). One already acknowledged or
    /// gone is done.
    pub(crate) fn ack(&self, id: &str) -> Result<(), MeshError> {
        let path = format!(
            "/messageexchange/{}/inbox/{id}/status/acknowledged",
            self.mailbox
        );
        let request = || {
            Ok(self
                .request(reqwest::Method::PUT, &path)
                .header("Content-Length", "0"))
        };
        match self.call("acknowledge", request) {
            Ok(_) => Ok(()),
            Err(MeshError::Http {
                status: 404 | 410, ..
            }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// An error and its causes on one line (rustls's reason is at the bottom).
fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// A response's JSON body, at most 64 MiB read (`null` when it is not JSON: the
/// caller says what it lacks). A body cut off is a network failure.
fn json_body(response: Response, what: &str) -> Result<serde_json::Value, MeshError> {
    let mut text = String::new();
    response
        .take(64 << 20)
        .read_to_string(&mut text)
        .map_err(|e| MeshError::Network {
            what: what.to_string(),
            detail: e.to_string(),
            maybe_sent: true,
        })?;
    Ok(serde_json::from_str(&text).unwrap_or_default())
}

/// A header's value as text (empty when absent or not text).
fn header<'a>(response: &'a Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
}

/// What one round with the MESH server did.
#[derive(Debug, Default)]
pub(crate) struct Round {
    pub taken: Vec<String>,
    pub kept: usize,
    pub reports: usize,
    pub sent: Vec<String>,
    /// Files the server refused (moved to `out/refused/`).
    pub refused: Vec<String>,
}

/// What one round with the MESH server does.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Steps {
    pub handshake: bool,
    pub receive: bool,
    pub send: bool,
}

/// One round: a handshake, the inbox taken, what waits in `out/` sent, as asked.
/// Records the poll and the handshake (real time: they are facts about the server).
pub(crate) fn round(
    config: &Config,
    index: &mut Index,
    now: &Clock,
    steps: Steps,
) -> Result<Round, MeshError> {
    let client = Client::new(config)?;
    if steps.handshake {
        client.handshake()?;
        let at = Clock::real().rfc3339();
        index.write(|tx| index::mesh::set_state(tx, "last_handshake", &at))?;
        info!(event = "mesh_handshake", mailbox = %config.hub.mailbox);
    }
    let mut round = Round::default();
    if steps.receive {
        let taken = poll(&client, config, index, now)?;
        round.taken = taken.placed;
        round.kept = taken.kept;
        round.reports = taken.reports;
        let at = Clock::real().rfc3339();
        index.write(|tx| index::mesh::set_state(tx, "last_poll", &at))?;
    }
    if steps.send {
        let done = send_all(&client, config, index)?;
        round.sent = done.sent;
        round.refused = done.refused;
    }
    Ok(round)
}

/// Whether a `mesh_api` partner's `out/` holds files waiting to be sent.
pub(crate) fn has_outbound(config: &Config) -> bool {
    config
        .partners
        .iter()
        .filter(|p| p.mesh_api)
        .any(|p| crate::transport::has_outbound(config, &p.mailbox))
}

/// Logs a failed round (never a secret: the errors hold none).
pub(crate) fn log_failure(e: &MeshError) {
    if e.is_transient() {
        warn!(event = "mesh_failed", error = %e, "tried again later");
    } else {
        tracing::error!(event = "mesh_failed", error = %e, "needs an operator");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::fs::PermissionsExt;

    /// A server on 127.0.0.1 answering each request with the next of `statuses`
    /// (then 200); the Authorization headers it saw.
    fn fake_server(
        statuses: Vec<(u16, &'static str)>,
    ) -> (String, std::thread::JoinHandle<Vec<String>>) {
        fake_server_with(
            statuses
                .into_iter()
                .map(|(s, h)| (s, h, String::new()))
                .collect(),
        )
    }

    /// Like [`fake_server`], each answer with a body; also the request lines seen.
    fn fake_server_with(
        answers: Vec<(u16, &'static str, String)>,
    ) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for (status, extra, body) in answers {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
                    if line.starts_with("GET ") || line.starts_with("PUT ") {
                        seen.push(line.trim().to_string());
                    }
                    if line.to_ascii_lowercase().starts_with("authorization:") {
                        seen.push(line.trim().to_string());
                    }
                    line.clear();
                }
                let mut stream = stream;
                write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
                    body.len()
                )
                .unwrap();
            }
            seen
        });
        (url, handle)
    }

    fn config_for(url: &str, dir: &std::path::Path) -> Config {
        for (name, text) in [("pw", "secret\n"), ("key", "TestKey")] {
            std::fs::write(dir.join(name), text).unwrap();
            std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(0o600))
                .unwrap();
        }
        let text = format!(
            "[hub]\nmailbox = \"X26HUB01\"\nroot = \"m\"\ndatabase = \"d.sqlite3\"\n\
             [mesh]\nurl = \"{url}\"\npassword_file = \"pw\"\nshared_key_file = \"key\"\ntimeout = \"5s\"\n"
        );
        Config::parse(&text, &dir.join("c.toml")).unwrap()
    }

    #[test]
    fn a_503_and_a_429_are_tried_again_each_with_a_fresh_token() {
        let dir = tempfile::tempdir().unwrap();
        let (url, server) = fake_server(vec![(503, ""), (429, "Retry-After: 0\r\n"), (200, "")]);
        let client = Client::new(&config_for(&url, dir.path())).unwrap();
        client.handshake().unwrap();
        let seen = server.join().unwrap();
        assert_eq!(seen.len(), 3);
        let nonces: std::collections::HashSet<_> = seen
            .iter()
            .map(|a| a.split(':').nth(2).unwrap().to_string())
            .collect();
        assert_eq!(nonces.len(), 3, "a token used twice: {seen:?}");
    }

    #[test]
    fn the_inbox_is_listed_through_every_page_and_a_full_page_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let page1 = r#"{"messages":["A1","A2"],"links":{"next":"/messageexchange/X26HUB01/inbox?continue_from=k1"}}"#;
        let page2 = r#"{"messages":["A3"],"links":{"self":"/x"}}"#;
        let ids: Vec<String> = (0..500).map(|i| format!("\"F{i}\"")).collect();
        let full = format!(r#"{{"messages":[{}]}}"#, ids.join(","));
        let (url, server) = fake_server_with(vec![
            (200, "", page1.into()),
            (200, "", page2.into()),
            (200, "", full),
        ]);
        let client = Client::new(&config_for(&url, dir.path())).unwrap();
        assert_eq!(
            client.inbox().unwrap(),
            (vec!["A1".into(), "A2".into(), "A3".into()], false)
        );
        let (many, was_full) = client.inbox().unwrap();
        assert_eq!((many.len(), was_full), (500, true));
        let seen = server.join().unwrap();
        let lines: Vec<&String> = seen.iter().filter(|l| l.starts_with("GET ")).collect();
        assert!(
            lines[0].starts_with("GET /messageexchange/X26HUB01/inbox?max_results=500 "),
            "{lines:?}"
        );
        assert!(
            lines[1].starts_with("GET /messageexchange/X26HUB01/inbox?continue_from=k1 "),
            "{lines:?}"
        );
    }

    #[test]
    fn a_next_link_to_another_server_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let page = r#"{"messages":["A1"],"links":{"next":"https://elsewhere.example/inbox"}}"#;
        let (url, _server) = fake_server_with(vec![(200, "", page.into())]);
        let client = Client::new(&config_for(&url, dir.path())).unwrap();
        assert!(matches!(client.inbox(), Err(MeshError::Protocol { .. })));
    }

    #[test]
    fn an_authentication_failure_is_not_tried_again_and_names_what_to_check() {
        let dir = tempfile::tempdir().unwrap();
        let (url, server) = fake_server(vec![(403, "")]);
        let client = Client::new(&config_for(&url, dir.path())).unwrap();
        let e = client.handshake().unwrap_err();
        assert!(matches!(e, MeshError::Auth { status: 403, .. }), "{e}");
        let text = e.to_string();
        assert!(
            text.contains("shared_key_file")
                && !text.contains("TestKey")
                && !text.contains("secret"),
            "{text}"
        );
        assert_eq!(server.join().unwrap().len(), 1);
    }

    #[test]
    fn persistent_server_errors_give_up_after_the_bounded_retries() {
        let dir = tempfile::tempdir().unwrap();
        let statuses = vec![
            (500, ""),
            (502, "Retry-After: 0\r\n"),
            (503, "Retry-After: 0\r\n"),
            (504, "Retry-After: 0\r\n"),
        ];
        let (url, server) = fake_server(statuses);
        let client = Client::new(&config_for(&url, dir.path())).unwrap();
        let e = client.handshake().unwrap_err();
        assert!(
            e.is_transient() && matches!(e, MeshError::Http { status: 504, .. }),
            "{e}"
        );
        assert_eq!(server.join().unwrap().len(), 1 + RETRY_DELAYS.len());
    }

    #[test]
    fn the_token_is_the_hmac_of_mailbox_nonce_count_password_and_timestamp() {
        // Computed independently: python3 -c "import hmac,hashlib;print(hmac.new(b'TestKey',
        // b'X26HUB01:5a0c8d1e-0000-4000-8000-000000000001:1:secret:202612011000',
        // hashlib.sha256).hexdigest())"
        let t = token(
            "X26HUB01",
            "secret",
            "TestKey",
            "5a0c8d1e-0000-4000-8000-000000000001",
            1,
            "202612011000",
        );
        assert_eq!(
            t,
            "NHSMESH X26HUB01:5a0c8d1e-0000-4000-8000-000000000001:1:202612011000:\
             bbe50568d0d702eeda6c464190c658000aae40ca2096eb95b32c938db623fea9"
        );
    }

    #[test]
    fn message_ids_that_are_not_safe_file_names_are_refused() {
        assert!(usable_id("20200601122152994285_D59900"));
        assert!(usable_id("3F2504E04F8911D39A0C0305E82C3301"));
        for bad in ["", "../x", "a/b", "a b", ".hidden", &"A".repeat(101)] {
            assert!(!usable_id(bad), "{bad:?}");
        }
    }
}
