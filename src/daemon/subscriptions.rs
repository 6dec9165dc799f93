//! The service's care of the webhook subscriptions: the renew-subscriptions
//! job (every served agent subscribed, departed ones unsubscribed, what is
//! due renewed; also run once at start) and the task that renews and
//! repairs between runs (see [`webhook::tend`]).

use std::future::Future;
use std::sync::Arc;

use serde_json::json;
use tokio::sync::Notify;

use super::{Context, JobOutcome};
use crate::graph::{GraphClientOptions, GraphUpstreams};
use crate::http::SharedRequestLog;
use crate::session::{ConnectionClients, refresh_tokens, served_agents};
use crate::webhook::{
    self, GraphClients, SubscriptionManager, SubscriptionSettings, WebhookQueue, served_mailboxes,
};

/// The subscription manager and the Graph clients it works through.
pub struct SubscriptionUpkeep {
    manager: Arc<SubscriptionManager>,
    clients: Arc<ConnectionClients>,
}

impl SubscriptionUpkeep {
    /// Sets up the manager over the service's database; its Graph requests
    /// go to `log`. The error says which setting is wrong.
    pub fn open(context: &Context, log: SharedRequestLog) -> Result<Self, String> {
        let config = &context.config;
        let upstreams =
            GraphUpstreams::new(log, context.clock.clone(), &GraphClientOptions::default())
                .map_err(|e| e.to_string())?;
        let tokens = refresh_tokens(config, &context.clock, Some(context.store.clone()))?;
        let manager = SubscriptionManager::new(
            WebhookQueue::new(context.store.clone()),
            SubscriptionSettings::from_config(&config.webhook),
            context.clock.clone(),
        );
        Ok(Self {
            manager: Arc::new(manager),
            clients: Arc::new(ConnectionClients::new(config.clone(), upstreams, tokens)),
        })
    }

    /// Renews and repairs each time `wakeup` is signalled and when a
    /// subscription falls due, until `shutdown` completes.
    pub fn tend(
        &self,
        wakeup: Arc<Notify>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = ()> + Send + 'static {
        let clients: Arc<dyn GraphClients> = self.clients.clone();
        webhook::tend(self.manager.clone(), clients, wakeup, shutdown)
    }

    /// The renew-subscriptions job: reads Halo's agents and keeps the
    /// subscriptions in step with those served.
    pub async fn run(&self, context: &Context, log: SharedRequestLog) -> JobOutcome {
        let config = &context.config;
        let session = match context.session(log).await {
            Ok(session) => session,
            Err(error) => {
                return JobOutcome::Failed {
                    error: error.to_string(),
                };
            }
        };
        let agents = match served_agents(config, &session.agents, None) {
            Ok(agents) => agents,
            Err(error) => return JobOutcome::Failed { error },
        };
        let served = served_mailboxes(config, &agents);
        let upkeep = match self
            .manager
            .keep_in_step(&served, self.clients.as_ref())
            .await
        {
            Ok(upkeep) => upkeep,
            Err(error) => {
                return JobOutcome::Failed {
                    error: error.to_string(),
                };
            }
        };
        let summary = upkeep.summary();
        let failures = upkeep.failures();
        if failures.is_empty() {
            JobOutcome::Done {
                summary,
                stats: json!({
                    "mailboxes": served.len(),
                    "subscribed": upkeep.subscribed.len(),
                    "unsubscribed": upkeep.unsubscribed.len(),
                    "tended": upkeep.tended.len(),
                }),
            }
        } else {
            JobOutcome::Failed {
                error: format!("{summary}: {}", failures.join("; ")),
            }
        }
    }
}
