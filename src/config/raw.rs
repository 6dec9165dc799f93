//! The config file as written: every key optional, so that a missing key is a
//! validation finding (reported with all the others) rather than a parse
//! failure that hides everything after it.
//!
//! Unknown keys are collected by the loader (see `source.rs`) instead of
//! `#[serde(deny_unknown_fields)]`, which would stop at the first one.

use secrecy::SecretString;
use serde::Deserialize;

/// The four places a secret can come from; exactly one must be set.
///
/// Each secret `x` appears in the file as the keys `x` (inline), `x_file`,
/// `x_env` and `x_credential`.
#[derive(Debug, Default)]
pub struct RawSecret {
    pub inline: Option<SecretString>,
    pub file: Option<String>,
    pub env: Option<String>,
    pub credential: Option<String>,
}

/// Assembled section by section (see `source.rs`), never deserialized whole.
#[derive(Debug, Default)]
pub struct RawConfig {
    pub halo: Option<RawHalo>,
    pub exchange: Option<RawExchange>,
    pub sync: Option<RawSync>,
    pub webhook: Option<RawWebhook>,
    pub admin: Option<RawAdmin>,
    pub store: Option<RawStore>,
    pub log: Option<RawLog>,
    /// Sections that produced errors while being read: their absence is not
    /// reported again as "missing".
    pub sections_with_errors: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawHalo {
    pub base_url: Option<String>,
    pub auth_url: Option<String>,
    pub tenant: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    pub client_secret_file: Option<String>,
    pub client_secret_env: Option<String>,
    pub client_secret_credential: Option<String>,
    pub scope: Option<String>,
    pub requests_per_5_minutes: Option<i64>,
}

/// Built by hand from `[[exchange.connection]]` entries (see `source.rs`).
#[derive(Debug, Default)]
pub struct RawExchange {
    pub connection: Option<Vec<RawConnection>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawConnection {
    /// Position in the file, for locating findings.
    #[serde(skip)]
    pub index: usize,
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub cloud: Option<String>,
    pub login_url: Option<String>,
    pub graph_url: Option<String>,
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    pub client_secret_file: Option<String>,
    pub client_secret_env: Option<String>,
    pub client_secret_credential: Option<String>,
    pub client_certificate_file: Option<String>,
    pub client_certificate_credential: Option<String>,
    pub immutable_ids: Option<bool>,
    pub owner_override: Option<String>,
    pub update_scheduler_appointment: Option<bool>,
    pub agents: Option<RawAgentScope>,
}

/// `agents = "all"`, `agents = "@example.com"` or `agents = ["a@example.com", ...]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawAgentScope {
    Word(String),
    List(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
pub struct RawSync {
    pub schedule: Option<RawSchedule>,
    pub window_days_past: Option<i64>,
    pub window_days_ahead: Option<i64>,
    pub conflict_policy: Option<String>,
    pub delete_policy: Option<String>,
    pub max_deletes_per_run: Option<i64>,
    pub max_delete_fraction: Option<f64>,
    pub import_as_private: Option<bool>,
    pub sync_location: Option<bool>,
    pub teams_appointment_type_ids: Option<Vec<i64>>,
    pub attendees: Option<String>,
    pub include_agents: Option<Vec<String>>,
    pub exclude_agents: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawSchedule {
    pub pull: Option<String>,
    pub push: Option<String>,
    pub reconcile: Option<String>,
    pub renew_subscriptions: Option<String>,
    pub prune: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawWebhook {
    pub enabled: Option<bool>,
    pub listen: Option<String>,
    pub public_url: Option<String>,
    pub notify_path: Option<String>,
    pub lifecycle_path: Option<String>,
    pub subscription_lifetime_minutes: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawAdmin {
    pub listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawStore {
    pub path: Option<String>,
    pub request_log_retention_days: Option<i64>,
    pub token_key: Option<SecretString>,
    pub token_key_file: Option<String>,
    pub token_key_env: Option<String>,
    pub token_key_credential: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawLog {
    pub level: Option<String>,
    pub format: Option<String>,
}

impl RawHalo {
    pub fn take_client_secret(&mut self) -> RawSecret {
        RawSecret {
            inline: self.client_secret.take(),
            file: self.client_secret_file.take(),
            env: self.client_secret_env.take(),
            credential: self.client_secret_credential.take(),
        }
    }
}

impl RawConnection {
    pub fn take_client_secret(&mut self) -> RawSecret {
        RawSecret {
            inline: self.client_secret.take(),
            file: self.client_secret_file.take(),
            env: self.client_secret_env.take(),
            credential: self.client_secret_credential.take(),
        }
    }

    /// A certificate's private key is never inline or in the environment:
    /// only a file or a systemd credential.
    pub fn take_client_certificate(&mut self) -> RawSecret {
        RawSecret {
            inline: None,
            file: self.client_certificate_file.take(),
            env: None,
            credential: self.client_certificate_credential.take(),
        }
    }
}

impl RawStore {
    pub fn take_token_key(&mut self) -> RawSecret {
        RawSecret {
            inline: self.token_key.take(),
            file: self.token_key_file.take(),
            env: self.token_key_env.take(),
            credential: self.token_key_credential.take(),
        }
    }
}
