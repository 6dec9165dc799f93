//! Keeping the subscriptions in step with the agents served: every served
//! agent subscribed (unless its connection is delegated), every agent no
//! longer served unsubscribed, and what is due renewed or repaired. The
//! service does this when it starts and on the renew-subscriptions
//! schedule; `halosync subscriptions create` does the first part by hand.

use std::collections::HashSet;
use std::sync::PoisonError;

use chrono::{DateTime, Utc};

use super::subscriptions::{
    Ensured, GraphClients, SubscriptionError, SubscriptionManager, SubscriptionTarget, Tended,
    TendedSubscription,
};
use crate::config::{Config, ConnectionKind};
use crate::halo::Agent;
use crate::store::subscriptions::{self, SubscriptionRow};
use crate::store::{AgentRow, StoreError};

/// A served agent's mailbox and the connection that reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedMailbox {
    pub agent_id: i64,
    /// The agent's name in Halo (recorded with the subscription).
    pub name: String,
    pub mailbox: String,
    pub connection: String,
    pub kind: ConnectionKind,
}

impl ServedMailbox {
    fn target(&self) -> SubscriptionTarget<'_> {
        SubscriptionTarget {
            agent_id: self.agent_id,
            mailbox: &self.mailbox,
            connection: &self.connection,
            kind: self.kind,
        }
    }
}

/// The mailboxes of `agents` that a configured connection serves.
pub fn served_mailboxes(config: &Config, agents: &[&Agent]) -> Vec<ServedMailbox> {
    agents
        .iter()
        .filter_map(|agent| {
            let mailbox = agent.mailbox()?;
            let connection = config
                .connections
                .iter()
                .find(|c| c.agents.serves(&mailbox))?;
            Some(ServedMailbox {
                agent_id: agent.id,
                name: agent.name.as_deref().unwrap_or_default().trim().to_owned(),
                mailbox,
                connection: connection.name.clone(),
                kind: connection.kind,
            })
        })
        .collect()
}

/// What one round of upkeep did, per mailbox.
#[derive(Debug, Default)]
pub struct Upkeep {
    pub subscribed: Vec<(String, Result<Ensured, String>)>,
    /// Agents no longer served: how many subscriptions were deleted.
    pub unsubscribed: Vec<(String, Result<usize, String>)>,
    /// Renewals and repairs of subscriptions that already existed.
    pub tended: Vec<TendedSubscription>,
}

impl Upkeep {
    pub fn failures(&self) -> Vec<String> {
        let subscribed = self.subscribed.iter().filter_map(|(mailbox, result)| {
            result.as_ref().err().map(|e| format!("{mailbox}: {e}"))
        });
        let unsubscribed = self.unsubscribed.iter().filter_map(|(mailbox, result)| {
            result.as_ref().err().map(|e| format!("{mailbox}: {e}"))
        });
        let tended = self.tended.iter().filter_map(|t| match &t.outcome {
            Tended::Failed(error) => Some(format!("{}: {error}", t.mailbox)),
            _ => None,
        });
        subscribed.chain(unsubscribed).chain(tended).collect()
    }

    pub fn summary(&self) -> String {
        let count = |wanted: fn(&Ensured) -> bool| {
            self.subscribed
                .iter()
                .filter(|(_, r)| r.as_ref().is_ok_and(wanted))
                .count()
        };
        let renewed = self
            .tended
            .iter()
            .filter(|t| !matches!(t.outcome, Tended::Failed(_)))
            .count();
        let deleted: usize = self
            .unsubscribed
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok())
            .sum();
        format!(
            "{} created, {} already live, {} polled (delegated), {} renewed or repaired, {} deleted, {} failed",
            count(|e| matches!(e, Ensured::Created { .. })),
            count(|e| matches!(e, Ensured::Existing { .. })),
            count(|e| matches!(e, Ensured::Polling)),
            renewed,
            deleted,
            self.failures().len()
        )
    }
}

impl SubscriptionManager {
    /// Records the agent (its subscription row refers to it) and makes sure
    /// its mailbox is subscribed.
    pub async fn subscribe(
        &self,
        served: &ServedMailbox,
        clients: &dyn GraphClients,
        now: DateTime<Utc>,
    ) -> Result<Ensured, SubscriptionError> {
        let row = AgentRow {
            agent_id: served.agent_id,
            name: served.name.clone(),
            email: Some(served.mailbox.clone()),
            mailbox: Some(served.mailbox.clone()),
            connection: Some(served.connection.clone()),
            enabled: true,
        };
        self.shared_store()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .upsert_agent(&row, now)?;
        if served.kind == ConnectionKind::Delegated {
            // No client needed to learn that Graph will not notify.
            return Ok(Ensured::Polling);
        }
        let client = clients
            .client(served.agent_id, &served.connection)
            .map_err(|source| SubscriptionError::Graph {
                mailbox: served.mailbox.clone(),
                source: Box::new(source),
            })?;
        self.ensure(&served.target(), &client).await
    }

    /// Subscribes every mailbox of `served`, unsubscribes every agent not
    /// in it, then renews and repairs what is due.
    pub async fn keep_in_step(
        &self,
        served: &[ServedMailbox],
        clients: &dyn GraphClients,
    ) -> Result<Upkeep, StoreError> {
        let mut upkeep = Upkeep::default();
        for mailbox in served {
            let result = self.subscribe(mailbox, clients, self.now()).await;
            if let Err(error) = &result {
                tracing::warn!(mailbox = %mailbox.mailbox, %error, "could not subscribe to change notifications; the pull schedule still syncs it");
            }
            upkeep
                .subscribed
                .push((mailbox.mailbox.clone(), result.map_err(|e| e.to_string())));
        }
        let wanted: HashSet<i64> = served.iter().map(|m| m.agent_id).collect();
        let rows: Vec<SubscriptionRow> = self.store(|tx| subscriptions::all(tx))?;
        let mut gone: Vec<&SubscriptionRow> = rows
            .iter()
            .filter(|row| !wanted.contains(&row.agent_id))
            .collect();
        gone.dedup_by_key(|row| row.agent_id);
        for row in gone {
            let result = match clients.client(row.agent_id, &row.connection) {
                Ok(client) => self
                    .delete(row.agent_id, &client)
                    .await
                    .map_err(|e| e.to_string()),
                Err(error) => Err(error.to_string()),
            };
            if result.is_ok() {
                tracing::info!(mailbox = %row.mailbox, "agent no longer served: unsubscribed");
            }
            upkeep.unsubscribed.push((row.mailbox.clone(), result));
        }
        // Subscriptions just created are not due; the rest are renewed at
        // half their lifetime, and repaired if a lifecycle event flagged them.
        upkeep.tended = self.maintain(clients).await?;
        Ok(upkeep)
    }
}
