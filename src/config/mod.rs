//! halosync's configuration: the TOML schema, its validation and secret
//! loading.
//!
//! [`load`] reads the file, reports **every** problem at once (each with its
//! line and column and the key it concerns) and only then hands out a
//! [`Config`] in which every value is already checked and typed: URLs are
//! [`Url`]s, schedules are parsed cron expressions, secrets are
//! [`SecretString`]s. Nothing downstream re-validates.

mod diagnostic;
mod raw;
mod secret;
mod source;
mod validate;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use url::Url;

pub use crate::cloud::Cloud;
pub use diagnostic::{Diagnostic, KeyPath, Location, Seg, Severity, display_path};
pub use secret::Environment;

/// Where the service looks for its config unless told otherwise.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/halosync/halosync.toml";

/// A fully validated configuration.
#[derive(Debug)]
pub struct Config {
    /// The file this was read from.
    pub path: PathBuf,
    pub halo: HaloConfig,
    pub connections: Vec<ConnectionConfig>,
    pub sync: SyncConfig,
    pub webhook: WebhookConfig,
    pub admin: AdminConfig,
    pub store: StoreConfig,
    pub log: LogConfig,
}

/// `[halo]`: the HaloITSM API and the application halosync logs in as.
#[derive(Debug)]
pub struct HaloConfig {
    /// The instance root, e.g. `https://acme.haloitsm.com`; the API is under `/api`.
    pub base_url: Url,
    /// The authorisation server; `None` means discover it from
    /// `/api/authinfo`, falling back to `<base_url>/auth`.
    pub auth_url: Option<Url>,
    pub tenant: Option<String>,
    pub client_id: String,
    pub client_secret: SecretString,
    pub scope: String,
    /// Halo's hosted API allows 300 requests per rolling 5 minutes; halosync
    /// stays under this budget.
    pub requests_per_5_minutes: u32,
}

/// How a connection reaches mailboxes (the guide's options 1, 2 and 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionKind {
    /// Option 1: an app registration with application permissions.
    Application,
    /// Option 2: one signed-in account with delegate access to every calendar.
    Delegated,
    /// Option 3: each technician signs in with their own account.
    PerAgent,
}

impl ConnectionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Application => "application",
            Self::Delegated => "delegated",
            Self::PerAgent => "per_agent",
        }
    }
}

/// How an application connection proves who it is.
#[derive(Debug)]
pub enum ClientCredential {
    Secret(SecretString),
    /// PEM holding the private key and certificate for a signed client assertion.
    Certificate(SecretString),
}

/// Which agents a connection serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentScope {
    All,
    /// Every agent whose e-mail is in this domain (stored lower-case, without `@`).
    Domain(String),
    /// These agents (e-mails, lower-case).
    List(Vec<String>),
}

impl AgentScope {
    pub fn serves(&self, email: &str) -> bool {
        let email = email.to_ascii_lowercase();
        match self {
            Self::All => true,
            Self::Domain(domain) => email
                .rsplit_once('@')
                .is_some_and(|(_, d)| d == domain.as_str()),
            Self::List(list) => list.contains(&email),
        }
    }
}

/// One `[[exchange.connection]]`.
#[derive(Debug)]
pub struct ConnectionConfig {
    /// Stable name used in the database, logs and metrics.
    pub name: String,
    pub kind: ConnectionKind,
    pub cloud: Cloud,
    /// The identity platform root (the cloud's, unless overridden).
    pub login_url: Url,
    /// The Graph root (the cloud's, unless overridden); `/v1.0` is appended.
    pub graph_url: Url,
    pub tenant_id: String,
    pub client_id: String,
    pub credential: ClientCredential,
    pub immutable_ids: bool,
    /// Every appointment halosync creates in Exchange goes to this mailbox,
    /// with the agent as an attendee.
    pub owner_override: Option<String>,
    /// When an attendee changes a linked appointment, update the scheduler's
    /// (organizer's) copy too.
    pub update_scheduler_appointment: bool,
    pub agents: AgentScope,
}

/// `[sync.schedule]`: UTC cron expressions with seconds.
#[derive(Debug, Clone)]
pub struct Schedules {
    pub pull: CronSchedule,
    pub push: CronSchedule,
    pub reconcile: CronSchedule,
    pub renew_subscriptions: CronSchedule,
    pub prune: CronSchedule,
}

/// A validated cron expression, evaluated in UTC.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    expression: String,
    cron: croner::Cron,
}

impl CronSchedule {
    /// Parses with exactly the rules tokio-cron-scheduler applies: six or
    /// seven fields, seconds first, day-of-month AND day-of-week.
    pub fn parse(expression: &str) -> Result<Self, String> {
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Required)
            .dom_and_dow(true)
            .build()
            .parse(expression)
            .map_err(|e| e.to_string())?;
        Ok(Self {
            expression: expression.to_string(),
            cron,
        })
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The first run strictly after `after`, if the expression ever fires again.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&after, false).ok()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncWindow {
    pub days_past: u32,
    pub days_ahead: u32,
}

/// Who wins when both sides changed the same appointment since the last sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictPolicy {
    /// The side with the later modification time wins.
    Newest,
    Halo,
    Exchange,
}

/// Deleted on one side, edited on the other since the last sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditDeletePolicy {
    /// The edit brings the item back on the side that deleted it.
    EditWins,
    /// The deletion removes the edited copy too.
    DeleteWins,
}

/// Which deletions are carried across.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletePolicy {
    Both,
    HaloToExchange,
    ExchangeToHalo,
    Never,
}

/// The mass-deletion guard: a run that would delete more than
/// max(`max_per_run`, `max_fraction` of a mailbox's links) there deletes
/// nothing in that mailbox and reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeleteGuard {
    pub max_per_run: u32,
    /// Fraction of the mailbox's linked appointments, in (0, 1].
    pub max_fraction: f64,
}

/// Which people go on the Exchange event as attendees (and get invitations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttendeeMode {
    /// Nobody: no invitations are ever sent.
    None,
    /// The Halo appointment's additional agents.
    Agents,
    /// Additional agents and the appointment's other attendees.
    All,
}

/// `[sync]`.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    pub schedule: Schedules,
    pub window: SyncWindow,
    pub conflict_policy: ConflictPolicy,
    pub edit_delete_policy: EditDeletePolicy,
    pub delete_policy: DeletePolicy,
    pub delete_guard: DeleteGuard,
    /// Appointments imported from Exchange are private in Halo (only their
    /// times are synced).
    pub import_as_private: bool,
    pub sync_location: bool,
    /// Halo appointment types whose Exchange events become Teams meetings.
    pub teams_appointment_type_ids: Vec<i64>,
    pub attendees: AttendeeMode,
    /// Agents to sync (lower-case e-mails); empty means every enabled agent.
    pub include_agents: Vec<String>,
    pub exclude_agents: Vec<String>,
}

/// `[webhook]`: the public listener for Graph change notifications.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub enabled: bool,
    pub listen: SocketAddr,
    /// The externally reachable https root Graph posts to (behind a proxy).
    pub public_url: Option<Url>,
    pub notify_path: String,
    pub lifecycle_path: String,
    pub subscription_lifetime_minutes: u32,
}

impl WebhookConfig {
    pub fn notification_url(&self) -> Option<Url> {
        self.public_url.as_ref()?.join(&self.notify_path).ok()
    }

    pub fn lifecycle_url(&self) -> Option<Url> {
        self.public_url.as_ref()?.join(&self.lifecycle_path).ok()
    }
}

/// `[admin]`: health and metrics, on loopback unless deliberately exposed.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub listen: SocketAddr,
}

/// `[store]`.
#[derive(Debug)]
pub struct StoreConfig {
    pub path: PathBuf,
    pub request_log_retention_days: u32,
    /// Key for refresh tokens at rest; required by delegated and per-agent
    /// connections.
    pub token_key: Option<SecretString>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// `[log]`.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// A `RUST_LOG`-style filter, e.g. `info` or `halosync=debug,info`.
    pub level: String,
    pub format: LogFormat,
}

impl Config {
    /// One line for `check-config` and the start-up log.
    pub fn summary(&self) -> String {
        let connections: Vec<String> = self
            .connections
            .iter()
            .map(|c| format!("{} ({}, {})", c.name, c.kind.as_str(), c.cloud.as_str()))
            .collect();
        format!(
            "Halo {}; {} Exchange connection{}: {}; webhooks {}; window -{}/+{} days; database {}",
            self.halo.base_url,
            self.connections.len(),
            if self.connections.len() == 1 { "" } else { "s" },
            connections.join(", "),
            if self.webhook.enabled { "on" } else { "off" },
            self.sync.window.days_past,
            self.sync.window.days_ahead,
            self.store.path.display(),
        )
    }
}

/// A config that passed validation, with the warnings it still deserves.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source} (pass --config PATH or set HALOSYNC_CONFIG)", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render_invalid(path, diagnostics))]
    Invalid {
        path: PathBuf,
        diagnostics: Vec<Diagnostic>,
    },
}

fn render_invalid(path: &Path, diagnostics: &[Diagnostic]) -> String {
    let file = path.display().to_string();
    let errors = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let mut out = format!(
        "{file} is not valid: {errors} error{}",
        if errors == 1 { "" } else { "s" }
    );
    for diagnostic in diagnostics {
        out.push('\n');
        out.push_str(&diagnostic.render(&file));
    }
    out
}

impl fmt::Display for Loaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.config.summary())
    }
}

/// Reads, validates and resolves the secrets of the config at `path`.
pub fn load(path: &Path, env: &Environment) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let exposed_mode = std::fs::metadata(path)
        .ok()
        .and_then(|m| secret::exposed_mode(&m));
    load_str(path, &text, exposed_mode, env)
}

/// Validates config text as if read from `path` (whose directory anchors
/// relative paths). `exposed_mode` is the file's mode when group or others
/// can read it.
pub fn load_str(
    path: &Path,
    text: &str,
    exposed_mode: Option<u32>,
    env: &Environment,
) -> Result<Loaded, ConfigError> {
    let invalid = |diagnostics| ConfigError::Invalid {
        path: path.to_path_buf(),
        diagnostics,
    };
    let source = source::Source::parse(text).map_err(|d| invalid(vec![d]))?;
    let mut diagnostics = diagnostic::Diagnostics::default();
    let raw = source.deserialize(&mut diagnostics);
    let config_dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let secrets = secret::SecretContext {
        env,
        config_dir,
        config_exposed_mode: exposed_mode,
        config_path: path,
    };
    let config = validate::validate(raw, &source, &secrets, path, &mut diagnostics);
    diagnostics.sort();
    match config {
        Some(config) if !diagnostics.has_errors() => Ok(Loaded {
            config,
            warnings: diagnostics.warnings().cloned().collect(),
        }),
        _ => Err(invalid(diagnostics.into_vec())),
    }
}
