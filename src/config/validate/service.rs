//! How the service runs: `[webhook]`, `[admin]`, `[store]`, `[log]`.

use super::*;

impl Checker<'_, '_> {
    fn socket(&mut self, key: KeyPath, value: Option<Field<String>>, default: &str) -> SocketAddr {
        let text = self
            .field(&key, value)
            .unwrap_or_else(|| default.to_string());
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

    fn url_path(&mut self, key: KeyPath, value: Option<Field<String>>, default: &str) -> String {
        let value = self
            .field(&key, value)
            .unwrap_or_else(|| default.to_string());
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

    pub(super) fn webhook(
        &mut self,
        raw: RawWebhook,
        connections: &[ConnectionConfig],
    ) -> WebhookConfig {
        let base = path(&["webhook"]);
        let enabled = self.flag(key_in(&base, "enabled"), raw.enabled, false);
        let listen = self.socket(key_in(&base, "listen"), raw.listen, "127.0.0.1:8780");
        let public_url = self.optional_url(key_in(&base, "public_url"), raw.public_url);
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

    pub(super) fn admin(&mut self, raw: RawAdmin, webhook: &WebhookConfig) -> AdminConfig {
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

    pub(super) fn store(
        &mut self,
        mut raw: RawStore,
        connections: &[ConnectionConfig],
    ) -> StoreConfig {
        let base = path(&["store"]);
        let path_value = self
            .field(&key_in(&base, "path"), raw.path.take())
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
            raw.request_log_retention_days.take(),
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

    pub(super) fn log(&mut self, raw: RawLog) -> LogConfig {
        let base = path(&["log"]);
        let level = self
            .field(&key_in(&base, "level"), raw.level)
            .unwrap_or_else(|| "info".to_string());
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
