//! [`SubscriptionManager`]: one Graph subscription per subscribed mailbox,
//! created, renewed at about half its lifetime, repaired after lifecycle
//! events and deleted with its agent.
//!
//! Delegated connections get none: Graph does not notify a delegate about
//! other users' calendars, so their agents rely on the scheduled pull.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Duration, Utc};
use secrecy::SecretString;
use url::Url;

use super::notification::client_state_hash;
use super::queue::WebhookQueue;
use crate::clock::SharedClock;
use crate::config::{ConnectionKind, WebhookConfig};
use crate::graph::{GraphClient, GraphError, NewSubscription, Subscription};
use crate::store::subscriptions::{self, SubscriptionRow, SubscriptionState};
use crate::store::webhook_queue::{Arrival, ChangeReason};
use crate::store::{Store, StoreError};

/// What to subscribe to in a mailbox: every event change.
const CHANGE_TYPES: &str = "created,updated,deleted";

/// An expiry this much earlier than asked means Graph capped the lifetime.
const CAP_TOLERANCE: Duration = Duration::minutes(2);

/// Where Graph delivers, and for how long a subscription is asked for.
#[derive(Debug, Clone)]
pub struct SubscriptionSettings {
    /// Both delivery URLs; `None` without a `webhook.public_url`, when
    /// subscriptions can be renewed and deleted but not created.
    pub urls: Option<DeliveryUrls>,
    pub lifetime: Duration,
}

#[derive(Debug, Clone)]
pub struct DeliveryUrls {
    pub notification: Url,
    pub lifecycle: Url,
}

impl SubscriptionSettings {
    pub fn from_config(config: &WebhookConfig) -> Self {
        let urls = match (config.notification_url(), config.lifecycle_url()) {
            (Some(notification), Some(lifecycle)) => Some(DeliveryUrls {
                notification,
                lifecycle,
            }),
            _ => None,
        };
        Self {
            urls,
            lifetime: Duration::minutes(i64::from(config.subscription_lifetime_minutes)),
        }
    }
}

/// The mailbox to subscribe to and how halosync reaches it.
#[derive(Debug, Clone, Copy)]
pub struct SubscriptionTarget<'a> {
    pub agent_id: i64,
    pub mailbox: &'a str,
    /// The configured connection's name.
    pub connection: &'a str,
    pub kind: ConnectionKind,
}

/// The Graph client for an agent's subscriptions: the connection's, or
/// the agent's own for a per-agent connection.
pub trait GraphClients: Send + Sync {
    fn client(&self, agent_id: i64, connection: &str) -> Result<GraphClient, GraphError>;
}

/// What [`SubscriptionManager::ensure`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ensured {
    Created {
        subscription_id: String,
        expires_at: DateTime<Utc>,
    },
    Existing {
        subscription_id: String,
        expires_at: DateTime<Utc>,
    },
    /// A delegated connection: the agent is polled instead.
    Polling,
}

/// What happened to one subscription during maintenance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tended {
    Renewed {
        expires_at: DateTime<Utc>,
    },
    Reauthorized,
    /// Replaced (it was removed, expired or gone); its mailbox is queued
    /// for a resync.
    Recreated {
        subscription_id: String,
    },
    Failed(String),
}

/// One line of a maintenance report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TendedSubscription {
    pub subscription_id: String,
    pub mailbox: String,
    pub outcome: Tended,
}

#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    #[error(
        "webhooks need webhook.public_url (the https address Graph can reach) to create subscriptions"
    )]
    NotConfigured,
    #[error("{mailbox}: {source}")]
    Graph {
        mailbox: String,
        #[source]
        source: Box<GraphError>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot generate a clientState: the operating system's random source failed ({0})")]
    Random(String),
}

/// Creates, renews, repairs and deletes subscriptions, and keeps the
/// `subscriptions` table in step.
#[derive(Debug)]
pub struct SubscriptionManager {
    store: Arc<Mutex<Store>>,
    queue: WebhookQueue,
    settings: SubscriptionSettings,
    clock: SharedClock,
    /// The shorter lifetime Graph imposed, once it has capped one.
    graph_limit: Mutex<Option<Duration>>,
    /// Delegated connections already explained in the log.
    delegated_told: Mutex<HashSet<String>>,
}

/// When a subscription is due for renewal: half-way through its lifetime.
pub fn renewal_due_at(row: &SubscriptionRow) -> DateTime<Utc> {
    let start = row.lifetime_start();
    start + (row.expires_at - start) / 2
}

/// Graph answers 404 for a subscription that no longer exists.
fn is_gone(error: &GraphError) -> bool {
    matches!(
        error,
        GraphError::UnknownUser { .. } | GraphError::ItemNotFound { .. }
    ) || matches!(error, GraphError::Other { status: 404, .. })
}

fn new_client_state() -> Result<SecretString, SubscriptionError> {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| SubscriptionError::Random(e.to_string()))?;
    // 43 URL-safe characters: within Graph's 128 and safe in any JSON.
    Ok(SecretString::from(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
    ))
}

impl SubscriptionManager {
    pub fn new(queue: WebhookQueue, settings: SubscriptionSettings, clock: SharedClock) -> Self {
        Self {
            store: queue.store().clone(),
            queue,
            settings,
            clock,
            graph_limit: Mutex::new(None),
            delegated_told: Mutex::new(HashSet::new()),
        }
    }

    pub(super) fn shared_store(&self) -> &Arc<Mutex<Store>> {
        &self.store
    }

    pub(super) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub(super) fn store<T>(
        &self,
        work: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut store = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        store.transaction(work)
    }

    fn lifetime(&self) -> Duration {
        let limit = *self
            .graph_limit
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        limit.map_or(self.settings.lifetime, |l| l.min(self.settings.lifetime))
    }

    /// Remembers a cap Graph imposed, so later requests ask for it directly.
    fn learn_limit(&self, asked: DateTime<Utc>, got: DateTime<Utc>, now: DateTime<Utc>) {
        if got < asked - CAP_TOLERANCE {
            let limit = got - now;
            tracing::info!(
                limit_minutes = limit.num_minutes(),
                "Graph capped the subscription lifetime; asking for that from now on"
            );
            *self
                .graph_limit
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(limit);
        }
    }

    /// Makes sure the agent's mailbox has a live subscription (creating one
    /// if needed), unless its connection is delegated.
    pub async fn ensure(
        &self,
        target: &SubscriptionTarget<'_>,
        client: &GraphClient,
    ) -> Result<Ensured, SubscriptionError> {
        if target.kind == ConnectionKind::Delegated {
            let first_time = self
                .delegated_told
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(target.connection.to_owned());
            if first_time {
                tracing::warn!(
                    connection = target.connection,
                    "delegated connections cannot receive change notifications; polling its agents on the pull schedule"
                );
            }
            return Ok(Ensured::Polling);
        }
        let now = self.clock.now();
        let existing = self.store(|tx| subscriptions::of_agent(tx, target.agent_id))?;
        if let Some(live) = existing.iter().find(|row| {
            row.state == SubscriptionState::Active
                && row.expires_at > now
                && row.mailbox.eq_ignore_ascii_case(target.mailbox)
        }) {
            return Ok(Ensured::Existing {
                subscription_id: live.subscription_id.clone(),
                expires_at: live.expires_at,
            });
        }
        // Anything else of this agent's is stale: clear it out first so the
        // mailbox never ends up with two subscriptions.
        for stale in &existing {
            self.forget(stale, client).await?;
        }
        let created = self
            .create(target.agent_id, target.mailbox, target.connection, client)
            .await?;
        Ok(Ensured::Created {
            subscription_id: created.subscription_id,
            expires_at: created.expires_at,
        })
    }

    async fn create(
        &self,
        agent_id: i64,
        mailbox: &str,
        connection: &str,
        client: &GraphClient,
    ) -> Result<SubscriptionRow, SubscriptionError> {
        let urls = self
            .settings
            .urls
            .as_ref()
            .ok_or(SubscriptionError::NotConfigured)?;
        let client_state = new_client_state()?;
        let now = self.clock.now();
        let asked = now + self.lifetime();
        let new = NewSubscription {
            resource: format!("/users/{mailbox}/events"),
            change_type: CHANGE_TYPES.into(),
            notification_url: urls.notification.to_string(),
            lifecycle_notification_url: Some(urls.lifecycle.to_string()),
            expiration: asked,
            client_state: client_state.clone(),
        };
        let created: Subscription =
            client
                .create_subscription(&new)
                .await
                .map_err(|source| SubscriptionError::Graph {
                    mailbox: mailbox.to_owned(),
                    source: Box::new(source),
                })?;
        self.learn_limit(asked, created.expiration_date_time, now);
        let row = SubscriptionRow {
            subscription_id: created.id,
            agent_id,
            mailbox: mailbox.to_owned(),
            connection: connection.to_owned(),
            resource: new.resource,
            client_state_hash: client_state_hash(&client_state),
            expires_at: created.expiration_date_time,
            created_at: now,
            renewed_at: None,
            state: SubscriptionState::Active,
            last_error: None,
            last_notification_at: None,
        };
        self.store(|tx| subscriptions::insert(tx, &row))?;
        tracing::info!(mailbox, subscription_id = %row.subscription_id,
            expires_at = %row.expires_at, "subscribed to change notifications");
        Ok(row)
    }

    /// Deletes `row` on Graph (already gone is fine) and forgets it.
    async fn forget(
        &self,
        row: &SubscriptionRow,
        client: &GraphClient,
    ) -> Result<(), SubscriptionError> {
        match client.delete_subscription(&row.subscription_id).await {
            Ok(()) => {}
            Err(error) if is_gone(&error) => {}
            Err(source) => {
                return Err(SubscriptionError::Graph {
                    mailbox: row.mailbox.clone(),
                    source: Box::new(source),
                });
            }
        }
        self.store(|tx| subscriptions::delete(tx, &row.subscription_id))?;
        Ok(())
    }

    /// Deletes every subscription of the agent (disabled or removed);
    /// returns how many.
    pub async fn delete(
        &self,
        agent_id: i64,
        client: &GraphClient,
    ) -> Result<usize, SubscriptionError> {
        let rows = self.store(|tx| subscriptions::of_agent(tx, agent_id))?;
        for row in &rows {
            self.forget(row, client).await?;
        }
        Ok(rows.len())
    }

    /// Renews every subscription past half its lifetime; with `all`, every
    /// subscription. Subscriptions that are gone or expired are recreated.
    pub async fn renew(
        &self,
        clients: &dyn GraphClients,
        all: bool,
    ) -> Result<Vec<TendedSubscription>, StoreError> {
        let now = self.clock.now();
        let rows = self.store(|tx| subscriptions::all(tx))?;
        let mut report = Vec::new();
        for row in rows {
            let due = all || now >= renewal_due_at(&row) || row.state != SubscriptionState::Active;
            if due {
                let outcome = self.tend(&row, clients, now).await;
                report.push(TendedSubscription {
                    subscription_id: row.subscription_id.clone(),
                    mailbox: row.mailbox.clone(),
                    outcome,
                });
            }
        }
        Ok(report)
    }

    /// When [`Self::maintain`] next has work: the earliest renewal, or now
    /// for a subscription that is not active.
    pub fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let now = self.clock.now();
        let rows = self.store(|tx| subscriptions::all(tx))?;
        Ok(rows
            .iter()
            .map(|row| match row.state {
                SubscriptionState::Active => renewal_due_at(row),
                _ => now,
            })
            .min())
    }

    /// Renews what is due and repairs what lifecycle events flagged; the
    /// scheduler calls it daily and the listener's wake-ups call it at once.
    pub async fn maintain(
        &self,
        clients: &dyn GraphClients,
    ) -> Result<Vec<TendedSubscription>, StoreError> {
        self.renew(clients, false).await
    }

    /// Brings one subscription back to health: reauthorize, renew, or
    /// recreate, as its state and expiry ask.
    async fn tend(
        &self,
        row: &SubscriptionRow,
        clients: &dyn GraphClients,
        now: DateTime<Utc>,
    ) -> Tended {
        let client = match clients.client(row.agent_id, &row.connection) {
            Ok(client) => client,
            Err(error) => return self.failed(row, &error.to_string()),
        };
        let result = match row.state {
            SubscriptionState::Removed | SubscriptionState::Expired => {
                self.recreate(row, &client).await
            }
            _ if row.expires_at <= now => self.recreate(row, &client).await,
            SubscriptionState::ReauthorizationRequired => {
                match client.reauthorize_subscription(&row.subscription_id).await {
                    Ok(()) => self
                        .store(|tx| {
                            subscriptions::set_state(
                                tx,
                                &row.subscription_id,
                                SubscriptionState::Active,
                                None,
                            )
                        })
                        .map(|()| Tended::Reauthorized)
                        .map_err(SubscriptionError::from),
                    // Renewing also reauthorizes.
                    Err(error) if !is_gone(&error) => self.extend(row, &client).await,
                    Err(_) => self.recreate(row, &client).await,
                }
            }
            SubscriptionState::Active | SubscriptionState::Error => self.extend(row, &client).await,
        };
        result.unwrap_or_else(|error| self.failed(row, &error.to_string()))
    }

    /// PATCHes a new expiry; recreates the subscription if Graph lost it.
    async fn extend(
        &self,
        row: &SubscriptionRow,
        client: &GraphClient,
    ) -> Result<Tended, SubscriptionError> {
        let now = self.clock.now();
        let asked = now + self.lifetime();
        match client.renew_subscription(&row.subscription_id, asked).await {
            Ok(renewed) => {
                self.learn_limit(asked, renewed.expiration_date_time, now);
                self.store(|tx| {
                    subscriptions::renewed(
                        tx,
                        &row.subscription_id,
                        renewed.expiration_date_time,
                        now,
                    )
                })?;
                Ok(Tended::Renewed {
                    expires_at: renewed.expiration_date_time,
                })
            }
            Err(error) if is_gone(&error) => self.recreate(row, client).await,
            Err(source) => Err(SubscriptionError::Graph {
                mailbox: row.mailbox.clone(),
                source: Box::new(source),
            }),
        }
    }

    /// Replaces a subscription Graph no longer honours, then queues its
    /// mailbox for a resync: changes may have gone unnoticed meanwhile.
    async fn recreate(
        &self,
        row: &SubscriptionRow,
        client: &GraphClient,
    ) -> Result<Tended, SubscriptionError> {
        // The old one is usually gone already; deleting it makes sure no
        // second subscription keeps notifying.
        self.forget(row, client).await?;
        let created = self
            .create(row.agent_id, &row.mailbox, &row.connection, client)
            .await?;
        self.queue
            .push(&arrival(&created, ChangeReason::Removed), self.clock.now())?;
        Ok(Tended::Recreated {
            subscription_id: created.subscription_id,
        })
    }

    /// Records the failure on the row (kept for the next attempt).
    fn failed(&self, row: &SubscriptionRow, message: &str) -> Tended {
        tracing::warn!(mailbox = %row.mailbox, subscription_id = %row.subscription_id,
            error = message, "could not look after a webhook subscription");
        let state = match row.state {
            SubscriptionState::Active => SubscriptionState::Error,
            other => other,
        };
        if let Err(error) = self
            .store(|tx| subscriptions::set_state(tx, &row.subscription_id, state, Some(message)))
        {
            tracing::warn!(%error, "could not record the subscription's failure");
        }
        Tended::Failed(message.to_owned())
    }
}

fn arrival(row: &SubscriptionRow, reason: ChangeReason) -> Arrival {
    Arrival {
        mailbox: row.mailbox.clone(),
        agent_id: row.agent_id,
        subscription_id: Some(row.subscription_id.clone()),
        reason,
        notifications: 1,
    }
}
