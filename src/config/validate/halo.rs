//! `[halo]`.

use super::*;

impl Checker<'_, '_> {
    pub(super) fn halo(&mut self, raw: Option<RawHalo>) -> Option<HaloConfig> {
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
        let tenant = match self
            .field(&key_in(&base, "tenant"), raw.tenant)
            .map(|t| t.trim().to_string())
        {
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
        let scope = match self
            .field(&key_in(&base, "scope"), raw.scope)
            .map(|s| s.trim().to_string())
        {
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
}
