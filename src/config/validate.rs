//! Turning the file as written ([`RawConfig`]) into a checked [`Config`],
//! recording every finding on the way instead of stopping at the first.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::Path;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::diagnostic::{Diagnostic, Diagnostics, KeyPath, Seg, path};
use super::raw::{
    RawAdmin, RawAgentScope, RawConfig, RawConnection, RawHalo, RawLog, RawSchedule, RawStore,
    RawSync, RawWebhook,
};
use super::secret::{self, SecretContext, SecretKind};
use super::source::Source;
use super::*;

struct Checker<'a, 'b> {
    source: &'a Source<'b>,
    found: &'a mut Diagnostics,
    secrets: &'a SecretContext<'a>,
}

pub fn validate(
    raw: RawConfig,
    source: &Source<'_>,
    secrets: &SecretContext<'_>,
    config_path: &Path,
    found: &mut Diagnostics,
) -> Option<Config> {
    let mut check = Checker {
        source,
        found,
        secrets,
    };
    let unreadable = |section: &str| raw.sections_with_errors.iter().any(|s| s == section);
    let halo_unreadable = unreadable("halo");
    let exchange_unreadable = unreadable("exchange");
    let halo = match raw.halo {
        None if halo_unreadable => None,
        halo => check.halo(halo),
    };
    let connections = match raw.exchange.and_then(|e| e.connection) {
        None if exchange_unreadable => Vec::new(),
        connections => check.connections(connections),
    };
    let sync = check.sync(raw.sync.unwrap_or_default());
    let webhook = check.webhook(raw.webhook.unwrap_or_default(), &connections);
    let admin = check.admin(raw.admin.unwrap_or_default(), &webhook);
    let store = check.store(raw.store.unwrap_or_default(), &connections);
    let log = check.log(raw.log.unwrap_or_default());
    if check.found.has_errors() {
        return None;
    }
    Some(Config {
        path: config_path.to_path_buf(),
        halo: halo?,
        connections,
        sync,
        webhook,
        admin,
        store,
        log,
    })
}

fn key_in(base: &KeyPath, name: &str) -> KeyPath {
    let mut key = base.clone();
    key.push(Seg::Key(name.to_string()));
    key
}

fn is_email(value: &str) -> bool {
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && is_domain(domain)
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c == ',' || c == ';')
}

fn is_domain(value: &str) -> bool {
    value.contains('.')
        && !value.starts_with('.')
        && !value.ends_with('.')
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

impl Checker<'_, '_> {
    fn error(&mut self, key: KeyPath, message: impl Into<String>) {
        let location = self.source.locate(&key);
        self.found
            .push(Diagnostic::error(key, message).at(location));
    }

    fn warning(&mut self, key: KeyPath, message: impl Into<String>) {
        let location = self.source.locate(&key);
        self.found
            .push(Diagnostic::warning(key, message).at(location));
    }

    fn report(&mut self, diagnostic: Diagnostic) {
        let location = self.source.locate(&diagnostic.key);
        self.found.push(diagnostic.at(location));
    }

    fn required(&mut self, key: KeyPath, value: Option<String>, example: &str) -> Option<String> {
        match value.map(|v| v.trim().to_string()) {
            Some(v) if !v.is_empty() => Some(v),
            Some(_) => {
                self.error(key, format!("must not be empty (e.g. {example})"));
                None
            }
            None => {
                self.error(key, format!("missing (e.g. {example})"));
                None
            }
        }
    }

    /// An absolute http(s) URL, normalised to end in `/` so relative API
    /// paths join beneath it rather than replacing its last segment.
    fn url(&mut self, key: KeyPath, value: &str) -> Option<Url> {
        let mut url = match Url::parse(value) {
            Ok(url) => url,
            Err(e) => {
                self.error(
                    key,
                    format!(
                        "`{value}` is not a valid URL ({e}); expected an absolute https:// URL"
                    ),
                );
                return None;
            }
        };
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            self.error(
                key,
                format!("`{value}` must be an http:// or https:// URL with a host"),
            );
            return None;
        }
        if url.query().is_some() || url.fragment().is_some() {
            self.error(key, format!("`{value}` must not have a query or fragment"));
            return None;
        }
        if url.scheme() == "http" && !is_loopback(&url) {
            self.warning(
                key,
                format!("`{value}` uses plain http: credentials and calendar data would cross the network unencrypted"),
            );
        }
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Some(url)
    }

    fn optional_url(&mut self, key: KeyPath, value: Option<String>) -> Option<Url> {
        self.url(key.clone(), value?.trim()).or(None)
    }

    fn choice<T: Copy>(
        &mut self,
        key: KeyPath,
        value: Option<String>,
        default: T,
        options: &[(&str, T)],
    ) -> T {
        let Some(value) = value else {
            return default;
        };
        if let Some((_, choice)) = options.iter().find(|(name, _)| *name == value) {
            return *choice;
        }
        let names: Vec<String> = options.iter().map(|(n, _)| format!("`{n}`")).collect();
        self.error(
            key,
            format!(
                "unknown value `{value}`; expected one of {}",
                names.join(", ")
            ),
        );
        default
    }

    fn number(
        &mut self,
        key: KeyPath,
        value: Option<i64>,
        default: u32,
        range: RangeInclusive<i64>,
        unit: &str,
    ) -> u32 {
        let Some(value) = value else {
            return default;
        };
        match u32::try_from(value) {
            Ok(v) if range.contains(&value) => v,
            _ => {
                self.error(
                    key,
                    format!(
                        "{value} is out of range; expected {} to {} {unit}",
                        range.start(),
                        range.end()
                    ),
                );
                default
            }
        }
    }

    fn email(&mut self, key: KeyPath, value: &str) -> Option<String> {
        let value = value.trim();
        if is_email(value) {
            Some(value.to_ascii_lowercase())
        } else {
            self.error(
                key,
                format!("`{value}` is not an e-mail address (e.g. jane@contoso.com)"),
            );
            None
        }
    }

    fn emails(&mut self, key: KeyPath, values: Option<Vec<String>>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (index, value) in values.unwrap_or_default().iter().enumerate() {
            let mut item = key.clone();
            item.push(Seg::Index(index));
            if let Some(email) = self.email(item.clone(), value) {
                if out.contains(&email) {
                    self.warning(item, format!("`{email}` is listed twice"));
                } else {
                    out.push(email);
                }
            }
        }
        out
    }

    fn secret(
        &mut self,
        raw: super::raw::RawSecret,
        key: KeyPath,
        kind: SecretKind,
    ) -> Option<SecretString> {
        match secret::resolve(raw, &key, kind, self.secrets) {
            Ok(value) => Some(value),
            Err(diagnostic) => {
                self.report(diagnostic);
                None
            }
        }
    }

    fn halo(&mut self, raw: Option<RawHalo>) -> Option<HaloConfig> {
        let base = path(&["halo"]);
        let Some(mut raw) = raw else {
            self.error(
                base,
                "missing [halo] section: the Halo instance and API application to sync with",
            );
            return None;
        };
        let client_secret = self.secret(
            raw.take_client_secret(),
            key_in(&base, "client_secret"),
            SecretKind::Text,
        );
        let base_url = self
            .required(
                key_in(&base, "base_url"),
                raw.base_url,
                "\"https://acme.haloitsm.com\"",
            )
            .and_then(|v| self.url(key_in(&base, "base_url"), &v));
        if let Some(url) = &base_url
            && url.path().trim_end_matches('/').ends_with("/api")
        {
            self.error(
                key_in(&base, "base_url"),
                format!(
                    "give the instance root without /api (e.g. {})",
                    url.as_str().trim_end_matches('/').trim_end_matches("/api")
                ),
            );
        }
        let auth_url = self.optional_url(key_in(&base, "auth_url"), raw.auth_url);
        let tenant = match raw.tenant.map(|t| t.trim().to_string()) {
            Some(t) if t.is_empty() => {
                self.error(
                    key_in(&base, "tenant"),
                    "must not be empty; remove the key if your instance has no tenant name",
                );
                None
            }
            other => other,
        };
        let client_id = self.required(
            key_in(&base, "client_id"),
            raw.client_id,
            "the Client ID from Configuration > Integrations > Halo API",
        );
        let scope = match raw.scope.map(|s| s.trim().to_string()) {
            None => "all".to_string(),
            Some(s) if s.is_empty() => {
                self.error(
                    key_in(&base, "scope"),
                    "must not be empty; Halo refuses tokens without a scope (use \"all\")",
                );
                String::new()
            }
            Some(s) => s,
        };
        let requests_per_5_minutes = self.number(
            key_in(&base, "requests_per_5_minutes"),
            raw.requests_per_5_minutes,
            250,
            1..=100_000,
            "requests",
        );
        Some(HaloConfig {
            base_url: base_url?,
            auth_url,
            tenant,
            client_id: client_id?,
            client_secret: client_secret?,
            scope,
            requests_per_5_minutes,
        })
    }

    fn connections(&mut self, raw: Option<Vec<RawConnection>>) -> Vec<ConnectionConfig> {
        let base = path(&["exchange", "connection"]);
        let Some(raw) = raw else {
            self.error(
                path(&["exchange"]),
                "missing: at least one [[exchange.connection]] saying how to reach the Exchange calendars",
            );
            return Vec::new();
        };
        let single = raw.len() == 1;
        let mut out = Vec::new();
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut claims: Vec<(KeyPath, String, AgentScope)> = Vec::new();
        for connection in raw {
            let mut key = base.clone();
            key.push(Seg::Index(connection.index));
            if let Some(checked) = self.connection(connection, &key, single) {
                if let Some(first) = names.get(&checked.name) {
                    self.error(
                        key_in(&key, "name"),
                        format!("`{}` is already the name of exchange.connection[{first}]; names must be unique", checked.name),
                    );
                } else {
                    names.insert(checked.name.clone(), key.len());
                }
                claims.push((
                    key_in(&key, "agents"),
                    checked.name.clone(),
                    checked.agents.clone(),
                ));
                out.push(checked);
            }
        }
        self.overlapping_claims(&claims);
        out
    }

    fn connection(
        &mut self,
        mut raw: RawConnection,
        key: &KeyPath,
        single: bool,
    ) -> Option<ConnectionConfig> {
        let name = self
            .required(key_in(key, "name"), raw.name.take(), "\"main\"")
            .filter(|name| {
                let ok = name.len() <= 64
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                if !ok {
                    self.error(key_in(key, "name"), format!("`{name}` must be 1-64 letters, digits, `-` or `_` (it is stored in the database)"));
                }
                ok
            });
        let kind = match raw.kind.take() {
            None => {
                self.error(key_in(key, "type"), "missing: `application` (option 1), `delegated` (option 2) or `per_agent` (option 3)");
                None
            }
            value => Some(self.choice(
                key_in(key, "type"),
                value,
                ConnectionKind::Application,
                &[
                    ("application", ConnectionKind::Application),
                    ("delegated", ConnectionKind::Delegated),
                    ("per_agent", ConnectionKind::PerAgent),
                ],
            )),
        };
        let cloud = self.choice(
            key_in(key, "cloud"),
            raw.cloud.take(),
            Cloud::Global,
            &Cloud::ALL.map(|c| (c.as_str(), c)),
        );
        let login_url = match raw.login_url.take() {
            Some(v) => self.url(key_in(key, "login_url"), v.trim()),
            None => Url::parse(cloud.login_url()).ok(),
        };
        let graph_url = match raw.graph_url.take() {
            Some(v) => self.url(key_in(key, "graph_url"), v.trim()),
            None => Url::parse(cloud.graph_url()).ok(),
        };
        let tenant_id = self.required(
            key_in(key, "tenant_id"),
            raw.tenant_id.take(),
            "the Directory (tenant) ID from the app registration's overview",
        );
        if let (Some(tenant), Some(ConnectionKind::Application)) = (&tenant_id, kind)
            && ["common", "organizations", "consumers"]
                .contains(&tenant.to_ascii_lowercase().as_str())
        {
            self.error(
                key_in(key, "tenant_id"),
                format!("`{tenant}` cannot be used with application permissions; give your tenant's ID or domain"),
            );
        }
        let client_id = self.required(
            key_in(key, "client_id"),
            raw.client_id.take(),
            "the Application (client) ID from the app registration's overview",
        );
        let certificate = raw.take_client_certificate();
        let secret = raw.take_client_secret();
        let uses_certificate = certificate.file.is_some() || certificate.credential.is_some();
        let credential = if uses_certificate {
            if kind != Some(ConnectionKind::Application) {
                self.error(key_in(key, "client_certificate_file"), "certificates are supported for `application` connections only; use client_secret");
                None
            } else if secret.inline.is_some()
                || secret.file.is_some()
                || secret.env.is_some()
                || secret.credential.is_some()
            {
                self.error(
                    key_in(key, "client_secret"),
                    "set either a client secret or a client certificate, not both",
                );
                None
            } else {
                self.secret(
                    certificate,
                    key_in(key, "client_certificate"),
                    SecretKind::PemPrivateKey,
                )
                .map(ClientCredential::Certificate)
            }
        } else {
            self.secret(secret, key_in(key, "client_secret"), SecretKind::Text)
                .map(ClientCredential::Secret)
        };
        let owner_override = raw
            .owner_override
            .take()
            .and_then(|v| self.email(key_in(key, "owner_override"), &v));
        let agents = self.agent_scope(key_in(key, "agents"), raw.agents.take(), single);
        Some(ConnectionConfig {
            name: name?,
            kind: kind?,
            cloud,
            login_url: login_url?,
            graph_url: graph_url?,
            tenant_id: tenant_id?,
            client_id: client_id?,
            credential: credential?,
            immutable_ids: raw.immutable_ids.unwrap_or(true),
            owner_override,
            update_scheduler_appointment: raw.update_scheduler_appointment.unwrap_or(false),
            agents: agents?,
        })
    }

    fn agent_scope(
        &mut self,
        key: KeyPath,
        raw: Option<RawAgentScope>,
        single: bool,
    ) -> Option<AgentScope> {
        match raw {
            None if single => Some(AgentScope::All),
            None => {
                self.error(key, "missing: with several connections each must say which agents it serves (\"all\", \"@domain\" or a list of e-mails)");
                None
            }
            Some(RawAgentScope::Word(word)) if word == "all" => Some(AgentScope::All),
            Some(RawAgentScope::Word(word)) => match word.strip_prefix('@') {
                Some(domain) if is_domain(domain) => {
                    Some(AgentScope::Domain(domain.to_ascii_lowercase()))
                }
                _ => {
                    self.error(
                        key,
                        format!("`{word}` is not \"all\", an \"@domain\" or a list of e-mails"),
                    );
                    None
                }
            },
            Some(RawAgentScope::List(list)) => {
                if list.is_empty() {
                    self.error(
                        key,
                        "an empty list serves no agents; remove the connection or list its agents",
                    );
                    return None;
                }
                Some(AgentScope::List(self.emails(key, Some(list))))
            }
        }
    }

    /// Two connections must never serve the same agent, or both would write
    /// the same appointments.
    fn overlapping_claims(&mut self, claims: &[(KeyPath, String, AgentScope)]) {
        for (i, (key, name, scope)) in claims.iter().enumerate() {
            for (_, other_name, other) in &claims[..i] {
                let clash = match (scope, other) {
                    (AgentScope::All, _) | (_, AgentScope::All) => {
                        Some("one of them serves all agents".to_string())
                    }
                    (AgentScope::Domain(a), AgentScope::Domain(b)) if a == b => {
                        Some(format!("both serve @{a}"))
                    }
                    (AgentScope::Domain(domain), AgentScope::List(list))
                    | (AgentScope::List(list), AgentScope::Domain(domain)) => list
                        .iter()
                        .find(|e| AgentScope::Domain(domain.clone()).serves(e))
                        .map(|e| format!("both serve {e}")),
                    (AgentScope::List(a), AgentScope::List(b)) => a
                        .iter()
                        .find(|e| b.contains(e))
                        .map(|e| format!("both serve {e}")),
                    _ => None,
                };
                if let Some(why) = clash {
                    self.error(
                        key.clone(),
                        format!("connections `{other_name}` and `{name}` claim the same agents ({why}); each agent must be served by exactly one connection"),
                    );
                }
            }
        }
    }

    fn schedule(&mut self, key: KeyPath, value: Option<String>, default: &str) -> CronSchedule {
        let expression = value.unwrap_or_else(|| default.to_string());
        match CronSchedule::parse(expression.trim()) {
            Ok(schedule) => schedule,
            Err(why) => {
                self.error(
                    key,
                    format!("`{expression}` is not a valid cron expression ({why}); expected six fields in UTC, \"sec min hour day-of-month month day-of-week\", e.g. \"{default}\""),
                );
                // Only reached with an error recorded, so this value is never used.
                CronSchedule::parse(default)
                    .unwrap_or_else(|_| unreachable!("built-in schedules are valid"))
            }
        }
    }

    fn sync(&mut self, raw: RawSync) -> SyncConfig {
        let base = path(&["sync"]);
        let schedule_key = key_in(&base, "schedule");
        let s: RawSchedule = raw.schedule.unwrap_or_default();
        let schedule = Schedules {
            pull: self.schedule(key_in(&schedule_key, "pull"), s.pull, "0 */5 * * * *"),
            push: self.schedule(key_in(&schedule_key, "push"), s.push, "30 * * * * *"),
            reconcile: self.schedule(
                key_in(&schedule_key, "reconcile"),
                s.reconcile,
                "0 7 * * * *",
            ),
            renew_subscriptions: self.schedule(
                key_in(&schedule_key, "renew_subscriptions"),
                s.renew_subscriptions,
                "0 17 3 * * *",
            ),
            prune: self.schedule(key_in(&schedule_key, "prune"), s.prune, "0 41 3 * * *"),
        };
        let window = SyncWindow {
            days_past: self.number(
                key_in(&base, "window_days_past"),
                raw.window_days_past,
                30,
                0..=1825,
                "days",
            ),
            days_ahead: self.number(
                key_in(&base, "window_days_ahead"),
                raw.window_days_ahead,
                180,
                1..=1825,
                "days",
            ),
        };
        let conflict_policy = self.choice(
            key_in(&base, "conflict_policy"),
            raw.conflict_policy,
            ConflictPolicy::Newest,
            &[
                ("newest", ConflictPolicy::Newest),
                ("halo", ConflictPolicy::Halo),
                ("exchange", ConflictPolicy::Exchange),
            ],
        );
        let delete_policy = self.choice(
            key_in(&base, "delete_policy"),
            raw.delete_policy,
            DeletePolicy::Both,
            &[
                ("both", DeletePolicy::Both),
                ("halo_to_exchange", DeletePolicy::HaloToExchange),
                ("exchange_to_halo", DeletePolicy::ExchangeToHalo),
                ("never", DeletePolicy::Never),
            ],
        );
        let max_per_run = self.number(
            key_in(&base, "max_deletes_per_run"),
            raw.max_deletes_per_run,
            25,
            0..=1_000_000,
            "deletions",
        );
        let max_fraction = match raw.max_delete_fraction {
            None => 0.25,
            Some(f) if f > 0.0 && f <= 1.0 => f,
            Some(f) => {
                self.error(
                    key_in(&base, "max_delete_fraction"),
                    format!(
                        "{f} is out of range; expected a fraction above 0 and at most 1 (e.g. 0.25)"
                    ),
                );
                0.25
            }
        };
        let mut teams = Vec::new();
        for (i, id) in raw
            .teams_appointment_type_ids
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            if id <= 0 {
                let mut key = key_in(&base, "teams_appointment_type_ids");
                key.push(Seg::Index(i));
                self.error(
                    key,
                    format!("{id} is not a Halo appointment type id (a positive number)"),
                );
            } else {
                teams.push(id);
            }
        }
        let attendees = self.choice(
            key_in(&base, "attendees"),
            raw.attendees,
            AttendeeMode::Agents,
            &[
                ("none", AttendeeMode::None),
                ("agents", AttendeeMode::Agents),
                ("all", AttendeeMode::All),
            ],
        );
        let include_agents = self.emails(key_in(&base, "include_agents"), raw.include_agents);
        let exclude_agents = self.emails(key_in(&base, "exclude_agents"), raw.exclude_agents);
        if let Some(both) = include_agents.iter().find(|e| exclude_agents.contains(e)) {
            self.error(
                key_in(&base, "exclude_agents"),
                format!("`{both}` is both included and excluded"),
            );
        }
        SyncConfig {
            schedule,
            window,
            conflict_policy,
            delete_policy,
            delete_guard: DeleteGuard {
                max_per_run,
                max_fraction,
            },
            import_as_private: raw.import_as_private.unwrap_or(false),
            sync_location: raw.sync_location.unwrap_or(true),
            teams_appointment_type_ids: teams,
            attendees,
            include_agents,
            exclude_agents,
        }
    }

    fn socket(&mut self, key: KeyPath, value: Option<String>, default: &str) -> SocketAddr {
        let text = value.unwrap_or_else(|| default.to_string());
        match text.trim().parse::<SocketAddr>() {
            Ok(addr) => addr,
            Err(_) => {
                self.error(
                    key,
                    format!("`{text}` is not an IP address and port (e.g. \"{default}\")"),
                );
                SocketAddr::from(([127, 0, 0, 1], 0))
            }
        }
    }

    fn url_path(&mut self, key: KeyPath, value: Option<String>, default: &str) -> String {
        let value = value.unwrap_or_else(|| default.to_string());
        let valid = value.starts_with('/')
            && value.len() > 1
            && !value.contains(['?', '#', ' '])
            && !value.split('/').any(|seg| seg == "..");
        if !valid {
            self.error(
                key,
                format!("`{value}` must be an absolute URL path such as \"{default}\""),
            );
        }
        value
    }

    fn webhook(&mut self, raw: RawWebhook, connections: &[ConnectionConfig]) -> WebhookConfig {
        let base = path(&["webhook"]);
        let enabled = raw.enabled.unwrap_or(false);
        let listen = self.socket(key_in(&base, "listen"), raw.listen, "127.0.0.1:8780");
        let public_url = raw
            .public_url
            .and_then(|v| self.url(key_in(&base, "public_url"), v.trim()));
        if enabled {
            match &public_url {
                None => self.error(key_in(&base, "public_url"), "missing: webhooks need the public https address Graph can reach (e.g. \"https://halosync.contoso.com\")"),
                Some(url) if url.scheme() != "https" && !is_loopback(url) => self.error(
                    key_in(&base, "public_url"),
                    "Graph delivers notifications to https:// URLs only; put halosync behind a TLS reverse proxy (see README)",
                ),
                Some(_) => {}
            }
            if let Some(delegated) = connections
                .iter()
                .find(|c| c.kind == ConnectionKind::Delegated)
            {
                self.warning(
                    key_in(&base, "enabled"),
                    format!("connection `{}` is delegated: Graph does not notify a delegate about other users' calendars, so its agents are polled on the pull schedule", delegated.name),
                );
            }
        }
        let notify_path = self.url_path(
            key_in(&base, "notify_path"),
            raw.notify_path,
            "/graph/notify",
        );
        let lifecycle_path = self.url_path(
            key_in(&base, "lifecycle_path"),
            raw.lifecycle_path,
            "/graph/lifecycle",
        );
        if notify_path == lifecycle_path {
            self.error(
                key_in(&base, "lifecycle_path"),
                "must differ from notify_path",
            );
        }
        let subscription_lifetime_minutes = self.number(
            key_in(&base, "subscription_lifetime_minutes"),
            raw.subscription_lifetime_minutes,
            4230,
            60..=10080,
            "minutes (Graph allows at most 10080 for events)",
        );
        WebhookConfig {
            enabled,
            listen,
            public_url,
            notify_path,
            lifecycle_path,
            subscription_lifetime_minutes,
        }
    }

    fn admin(&mut self, raw: RawAdmin, webhook: &WebhookConfig) -> AdminConfig {
        let key = path(&["admin", "listen"]);
        let listen = self.socket(key.clone(), raw.listen, "127.0.0.1:9187");
        if !listen.ip().is_loopback() {
            self.warning(key.clone(), format!("{listen} is not loopback: health and metrics will be reachable from the network"));
        }
        if webhook.enabled && listen == webhook.listen {
            self.error(key, format!("{listen} is also webhook.listen; the admin and webhook listeners need different ports"));
        }
        AdminConfig { listen }
    }

    fn store(&mut self, mut raw: RawStore, connections: &[ConnectionConfig]) -> StoreConfig {
        let base = path(&["store"]);
        let path_value = raw
            .path
            .take()
            .unwrap_or_else(|| "/var/lib/halosync/halosync.db".to_string());
        let db_path = self.secrets.config_dir.join(path_value.trim());
        if path_value.trim().is_empty() {
            self.error(
                key_in(&base, "path"),
                "must not be empty (e.g. \"/var/lib/halosync/halosync.db\")",
            );
        } else if let Some(parent) = db_path.parent()
            && !parent.as_os_str().is_empty()
            && !parent.is_dir()
        {
            self.warning(
                key_in(&base, "path"),
                format!("directory {} does not exist yet (the systemd unit's StateDirectory= creates /var/lib/halosync)", parent.display()),
            );
        }
        let request_log_retention_days = self.number(
            key_in(&base, "request_log_retention_days"),
            raw.request_log_retention_days,
            14,
            1..=3650,
            "days",
        );
        let token_key_raw = raw.take_token_key();
        let given = token_key_raw.inline.is_some()
            || token_key_raw.file.is_some()
            || token_key_raw.env.is_some()
            || token_key_raw.credential.is_some();
        let needs_key = connections
            .iter()
            .find(|c| c.kind != ConnectionKind::Application);
        let token_key = if given || needs_key.is_some() {
            let key = key_in(&base, "token_key");
            let value = self.secret(token_key_raw, key.clone(), SecretKind::Text);
            if let Some(value) = &value
                && value.expose_secret().len() < 32
            {
                self.error(key, "must be at least 32 characters of random data (e.g. `head -c 32 /dev/urandom | base64`)");
            }
            value
        } else {
            None
        };
        StoreConfig {
            path: db_path,
            request_log_retention_days,
            token_key,
        }
    }

    fn log(&mut self, raw: RawLog) -> LogConfig {
        let base = path(&["log"]);
        let level = raw.level.unwrap_or_else(|| "info".to_string());
        if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&level) {
            self.error(key_in(&base, "level"), format!("`{level}` is not a log filter ({e}); use e.g. \"info\" or \"halosync=debug,info\""));
        }
        let format = self.choice(
            key_in(&base, "format"),
            raw.format,
            LogFormat::Text,
            &[("text", LogFormat::Text), ("json", LogFormat::Json)],
        );
        LogConfig { level, format }
    }
}
