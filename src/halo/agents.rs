//! Agents (Halo's `Uname`): the technicians whose calendars are synced.

use serde::{Deserialize, Serialize};

use super::{HaloClient, HaloError, rows};
use crate::http::RequestContext;

/// Halo's "unassigned" pseudo-agent, listed like a real agent.
pub const UNASSIGNED_AGENT_ID: i64 = 1;

/// The agent fields halosync uses; others are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    pub id: i64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub isdisabled: Option<bool>,
    #[serde(default)]
    pub isapiagent: Option<bool>,
    /// Probably a per-agent mailbox override (see `halo.md` §3).
    #[serde(default)]
    pub exchange_account: Option<String>,
}

impl Agent {
    pub fn is_disabled(&self) -> bool {
        self.isdisabled.unwrap_or(false)
    }

    /// The e-mail, trimmed and lower-cased; `None` when blank.
    pub fn mailbox(&self) -> Option<String> {
        self.email
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_lowercase)
    }

    /// Whether halosync can sync this agent's calendar.
    fn is_syncable(&self) -> bool {
        self.id != UNASSIGNED_AGENT_ID && !self.is_disabled() && self.mailbox().is_some()
    }
}

impl HaloClient {
    /// The agents whose calendars can be synced: enabled, with an e-mail,
    /// not the unassigned pseudo-agent; e-mails lower-cased.
    pub async fn agents(&self) -> Result<Vec<Agent>, HaloError> {
        let reply = self
            .get("api/Agent", &[], RequestContext::idempotent())
            .await?;
        let all: Vec<Agent> = rows(&reply, &["agents", "results"])?;
        Ok(all
            .into_iter()
            .filter(Agent::is_syncable)
            .map(|mut agent| {
                agent.email = agent.mailbox();
                agent
            })
            .collect())
    }

    pub async fn agent(&self, id: i64) -> Result<Agent, HaloError> {
        let reply = self
            .get(
                &format!("api/Agent/{id}"),
                &[],
                RequestContext::idempotent().for_agent(id),
            )
            .await?;
        super::json(&reply)
    }

    /// The agent the API application logs in as.
    pub async fn me(&self) -> Result<Agent, HaloError> {
        let reply = self
            .get("api/Agent/me", &[], RequestContext::idempotent())
            .await?;
        super::json(&reply)
    }
}
