//! Turning the file as written ([`RawConfig`]) into a checked [`Config`],
//! recording every finding on the way instead of stopping at the first.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::Path;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

mod exchange;
mod halo;
mod service;
mod sync;

use super::diagnostic::{Diagnostic, Diagnostics, KeyPath, Seg, path};
use super::raw::{
    Field, RawAdmin, RawConfig, RawConnection, RawHalo, RawLog, RawSchedule, RawSecret, RawStore,
    RawSync, RawWebhook,
};
use super::secret::{self, SecretContext, SecretKind, SecretSource};
use super::source::{self, Source};
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

    /// Unwraps a value as written, reporting a wrong type like any other
    /// finding (without quoting it when the key holds a secret).
    fn field<T>(&mut self, key: &KeyPath, value: Option<Field<T>>) -> Option<T> {
        match value? {
            Field::Value(value) => Some(value),
            Field::WrongType { found, message } => {
                let message = if source::holds_secret(key) {
                    format!(
                        "expected a string, found {found} (the value is not shown because this key holds a secret)"
                    )
                } else {
                    source::plain_types(&message)
                };
                self.error(key.clone(), message);
                None
            }
        }
    }

    fn flag(&mut self, key: KeyPath, value: Option<Field<bool>>, default: bool) -> bool {
        self.field(&key, value).unwrap_or(default)
    }

    fn required(
        &mut self,
        key: KeyPath,
        value: Option<Field<String>>,
        example: &str,
    ) -> Option<String> {
        let given = value.is_some();
        match self.field(&key, value).map(|v| v.trim().to_string()) {
            Some(v) if !v.is_empty() => Some(v),
            Some(_) => {
                self.error(key, format!("must not be empty (e.g. {example})"));
                None
            }
            None if given => None,
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

    fn optional_url(&mut self, key: KeyPath, value: Option<Field<String>>) -> Option<Url> {
        let value = self.field(&key, value)?;
        self.url(key, value.trim())
    }

    fn choice<T: Copy>(
        &mut self,
        key: KeyPath,
        value: Option<Field<String>>,
        default: T,
        options: &[(&str, T)],
    ) -> T {
        let Some(value) = self.field(&key, value) else {
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
        value: Option<Field<i64>>,
        default: u32,
        range: RangeInclusive<i64>,
        unit: &str,
    ) -> u32 {
        let Some(value) = self.field(&key, value) else {
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

    fn emails(&mut self, key: KeyPath, values: Option<Field<Vec<String>>>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let values = self.field(&key, values).unwrap_or_default();
        for (index, value) in values.iter().enumerate() {
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

    fn secret(&mut self, raw: RawSecret, key: KeyPath, kind: SecretKind) -> Option<SecretString> {
        let errors_before = self.found.error_count();
        let source = SecretSource {
            inline: self.field(&key, raw.inline),
            file: self.field(&secret::suffixed(&key, "_file"), raw.file),
            env: self.field(&secret::suffixed(&key, "_env"), raw.env),
            credential: self.field(&secret::suffixed(&key, "_credential"), raw.credential),
        };
        if self.found.error_count() > errors_before {
            return None;
        }
        match secret::resolve(source, &key, kind, self.secrets) {
            Ok(value) => Some(value),
            Err(diagnostic) => {
                self.report(diagnostic);
                None
            }
        }
    }
}
