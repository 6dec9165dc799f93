//! `[[exchange.connection]]`: each connection, and the agents they claim.

use super::*;

impl Checker<'_, '_> {
    pub(super) fn connections(&mut self, raw: Option<Vec<RawConnection>>) -> Vec<ConnectionConfig> {
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
        let login_url = match self.field(&key_in(key, "login_url"), raw.login_url.take()) {
            Some(v) => self.url(key_in(key, "login_url"), v.trim()),
            None => Url::parse(cloud.login_url()).ok(),
        };
        let graph_url = match self.field(&key_in(key, "graph_url"), raw.graph_url.take()) {
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
        let owner_override = self
            .field(&key_in(key, "owner_override"), raw.owner_override.take())
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
            immutable_ids: self.flag(key_in(key, "immutable_ids"), raw.immutable_ids, true),
            owner_override,
            update_scheduler_appointment: self.flag(
                key_in(key, "update_scheduler_appointment"),
                raw.update_scheduler_appointment,
                false,
            ),
            agents: agents?,
        })
    }

    fn agent_scope(
        &mut self,
        key: KeyPath,
        raw: Option<toml::Value>,
        single: bool,
    ) -> Option<AgentScope> {
        match raw {
            None if single => Some(AgentScope::All),
            None => {
                self.error(key, "missing: with several connections each must say which agents it serves (\"all\", \"@domain\" or a list of e-mails)");
                None
            }
            Some(toml::Value::String(word)) if word == "all" => Some(AgentScope::All),
            Some(toml::Value::String(word)) => match word.strip_prefix('@') {
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
            Some(toml::Value::Array(items)) => {
                let mut list = Vec::new();
                for (index, item) in items.into_iter().enumerate() {
                    match item {
                        toml::Value::String(email) => list.push(email),
                        other => {
                            let mut item_key = key.clone();
                            item_key.push(Seg::Index(index));
                            self.error(
                                item_key,
                                format!("expected an e-mail address, found {}", other.type_str()),
                            );
                        }
                    }
                }
                if list.is_empty() {
                    self.error(
                        key,
                        "an empty list serves no agents; remove the connection or list its agents",
                    );
                    return None;
                }
                Some(AgentScope::List(self.emails(key, Some(Field::Value(list)))))
            }
            Some(other) => {
                self.error(
                    key,
                    format!(
                        "expected \"all\", an \"@domain\" or a list of e-mails, found {}",
                        other.type_str()
                    ),
                );
                None
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
}
