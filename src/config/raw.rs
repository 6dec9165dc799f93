//! The config file as written: every key optional, so that a missing key is a
//! validation finding (reported with all the others) rather than a parse
//! failure that hides everything after it.
//!
//! Unknown keys are collected by the loader (see `source.rs`) instead of
//! `#[serde(deny_unknown_fields)]`, which would stop at the first one.

use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

/// The four places a secret can come from; exactly one must be set.
///
/// Each secret `x` appears in the file as the keys `x` (inline), `x_file`,
/// `x_env` and `x_credential`.
#[derive(Debug, Default)]
pub struct RawSecret {
    pub inline: Option<Field<SecretString>>,
    pub file: Option<Field<String>>,
    pub env: Option<Field<String>>,
    pub credential: Option<Field<String>>,
}

/// A value as written, which may have the wrong type. Keeping the mistake
/// (instead of failing the whole section) lets validation report it with
/// every other finding.
#[derive(Debug)]
pub enum Field<T> {
    Value(T),
    WrongType {
        /// The TOML type that was written, e.g. "integer".
        found: &'static str,
        /// Serde's description, which may quote the value: never shown for
        /// secret keys.
        message: String,
    },
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = toml::Value::deserialize(deserializer)?;
        let found = value.type_str();
        Ok(match T::deserialize(value) {
            Ok(value) => Field::Value(value),
            Err(error) => Field::WrongType {
                found,
                message: error.message().to_string(),
            },
        })
    }
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
    pub base_url: Option<Field<String>>,
    pub auth_url: Option<Field<String>>,
    pub tenant: Option<Field<String>>,
    pub client_id: Option<Field<String>>,
    pub client_secret: Option<Field<SecretString>>,
    pub client_secret_file: Option<Field<String>>,
    pub client_secret_env: Option<Field<String>>,
    pub client_secret_credential: Option<Field<String>>,
    pub scope: Option<Field<String>>,
    pub requests_per_5_minutes: Option<Field<i64>>,
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
    pub name: Option<Field<String>>,
    #[serde(rename = "type")]
    pub kind: Option<Field<String>>,
    pub cloud: Option<Field<String>>,
    pub login_url: Option<Field<String>>,
    pub graph_url: Option<Field<String>>,
    pub tenant_id: Option<Field<String>>,
    pub client_id: Option<Field<String>>,
    pub client_secret: Option<Field<SecretString>>,
    pub client_secret_file: Option<Field<String>>,
    pub client_secret_env: Option<Field<String>>,
    pub client_secret_credential: Option<Field<String>>,
    pub client_certificate_file: Option<Field<String>>,
    pub client_certificate_credential: Option<Field<String>>,
    pub immutable_ids: Option<Field<bool>>,
    pub owner_override: Option<Field<String>>,
    pub update_scheduler_appointment: Option<Field<bool>>,
    /// `"all"`, `"@domain"` or a list of e-mails; interpreted during validation.
    pub agents: Option<toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawSync {
    pub schedule: Option<RawSchedule>,
    pub window_days_past: Option<Field<i64>>,
    pub window_days_ahead: Option<Field<i64>>,
    pub conflict_policy: Option<Field<String>>,
    pub edit_delete_policy: Option<Field<String>>,
    pub delete_policy: Option<Field<String>>,
    pub max_deletes_per_run: Option<Field<i64>>,
    pub max_delete_fraction: Option<Field<f64>>,
    pub import_as_private: Option<Field<bool>>,
    pub sync_location: Option<Field<bool>>,
    pub teams_appointment_type_ids: Option<Field<Vec<i64>>>,
    pub attendees: Option<Field<String>>,
    pub include_agents: Option<Field<Vec<String>>>,
    pub exclude_agents: Option<Field<Vec<String>>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawSchedule {
    pub pull: Option<Field<String>>,
    pub push: Option<Field<String>>,
    pub reconcile: Option<Field<String>>,
    pub renew_subscriptions: Option<Field<String>>,
    pub prune: Option<Field<String>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawWebhook {
    pub enabled: Option<Field<bool>>,
    pub listen: Option<Field<String>>,
    pub public_url: Option<Field<String>>,
    pub notify_path: Option<Field<String>>,
    pub lifecycle_path: Option<Field<String>>,
    pub subscription_lifetime_minutes: Option<Field<i64>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawAdmin {
    pub listen: Option<Field<String>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawStore {
    pub path: Option<Field<String>>,
    pub request_log_retention_days: Option<Field<i64>>,
    pub token_key: Option<Field<SecretString>>,
    pub token_key_file: Option<Field<String>>,
    pub token_key_env: Option<Field<String>>,
    pub token_key_credential: Option<Field<String>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawLog {
    pub level: Option<Field<String>>,
    pub format: Option<Field<String>>,
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
