//! Finishing the writes a crash or a lost answer left in the journal,
//! before a mailbox is observed.
//!
//! Only a Graph create is replayed: it carries a deterministic
//! `transactionId`, so sending it again returns the event the first attempt
//! made (in the agent's calendar, or the scheduler's under an owner
//! override), which is then linked. Any other interrupted write is dropped:
//! its effect, if it happened, is observed and planned afresh.

use serde::{Deserialize, Serialize};

use super::apply::{Links, Origin};
use super::engine::MailboxSync;
use super::plan::{GraphId, HaloId, Item, Side, Synced};
use crate::graph::model::Event;
use crate::model::Fingerprint;
use crate::store::WriteKind;

/// What a Graph create's intent holds, so a replay can finish it.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct GraphCreateIntent {
    /// The agent's mailbox, whose run replays the create.
    pub mailbox: String,
    pub agent_id: i64,
    pub halo_id: HaloId,
    pub halo_version: String,
    pub halo_fingerprint: String,
    pub event: Event,
    /// The scheduler's mailbox the meeting was created in (owner override).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organizer: Option<String>,
}

/// An interrupted write found and finished (or dropped) before a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replayed {
    /// A Graph create, replayed with its transactionId and linked (to no
    /// event yet when it is a meeting whose copy has not arrived).
    Linked {
        halo_id: HaloId,
        event_id: Option<GraphId>,
    },
    /// A write that is not replayed: the run observes its effect instead.
    Dropped { side: Side, kind: WriteKind },
}

impl MailboxSync<'_> {
    /// Finishes the interrupted writes of this mailbox.
    pub async fn replay(&mut self) -> Result<Vec<Replayed>, String> {
        let intents = self.store()?.pending_intents().map_err(|e| e.to_string())?;
        let mut replayed = Vec::new();
        for intent in intents {
            let mailbox = intent
                .payload
                .get("mailbox")
                .and_then(|m| m.as_str())
                .unwrap_or_default();
            if !mailbox.eq_ignore_ascii_case(self.mailbox) {
                continue;
            }
            let graph_create = intent.side == Side::Exchange && intent.kind == WriteKind::Create;
            let (Some(transaction), true) = (intent.transaction_id.as_deref(), graph_create) else {
                self.store()?
                    .finish_intent(intent.id)
                    .map_err(|e| e.to_string())?;
                replayed.push(Replayed::Dropped {
                    side: intent.side,
                    kind: intent.kind,
                });
                continue;
            };
            let Ok(create) = serde_json::from_value::<GraphCreateIntent>(intent.payload.clone())
            else {
                tracing::warn!(
                    intent = intent.id,
                    "a journaled Exchange create cannot be read; dropping it"
                );
                self.store()?
                    .finish_intent(intent.id)
                    .map_err(|e| e.to_string())?;
                continue;
            };
            let target = create.organizer.as_deref().unwrap_or(self.mailbox);
            let created = match self
                .graph
                .create_event(target, &create.event, transaction)
                .await
            {
                Ok(created) => created,
                Err(error) if error.is_transient() => {
                    let now = self.clock.now();
                    self.store()?
                        .note_intent_attempt(intent.id, Some(&error.to_string()), now)
                        .map_err(|e| e.to_string())?;
                    return Err(format!(
                        "an interrupted Exchange create could not be finished yet: {error}"
                    ));
                }
                Err(error) => {
                    tracing::warn!(%error, halo_id = create.halo_id, "an interrupted Exchange create was refused on replay; the next sync plans it again");
                    self.store()?
                        .finish_intent(intent.id)
                        .map_err(|e| e.to_string())?;
                    continue;
                }
            };
            let event = if let Some(scheduler) = create.organizer.as_deref() {
                self.copy_of_meeting(scheduler, &created, create.halo_id)
                    .await
            } else {
                self.remember(&created);
                Some(
                    self.settings
                        .graph_mapping
                        .read(&created, self.mailbox)
                        .map_err(|e| {
                            format!("the replayed Exchange create reads back wrong: {e}")
                        })?,
                )
            };
            let halo = Fingerprint::from_hex(&create.halo_fingerprint).map(|fingerprint| Synced {
                id: create.halo_id,
                version: create.halo_version.clone(),
                fingerprint,
            });
            let existing = self
                .store()?
                .links(self.mailbox)
                .map_err(|e| e.to_string())?
                .into_iter()
                .find(|l| l.halo.as_ref().is_some_and(|h| h.id == create.halo_id));
            self.intent = Some(intent.id);
            let link = existing.map(|l| l.id);
            self.save(link, halo, event.as_ref().map(Item::synced), Origin::Halo)?;
            replayed.push(Replayed::Linked {
                halo_id: create.halo_id,
                event_id: event.map(|e| e.id),
            });
        }
        Ok(replayed)
    }
}
