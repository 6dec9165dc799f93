//! The writes of one mailbox: [`Calendars`] over the Halo and Graph
//! clients and [`Links`] over the store, with every write journaled.
//!
//! Each write is recorded as an intent before it is sent and finished in
//! the same transaction as the link that records its outcome. A Graph
//! create carries a deterministic `transactionId`, so an intent left by a
//! crash or a lost answer is replayed ([`super::replay`]) before the
//! next observation and returns the event the first attempt made. Other
//! writes are not replayed: a Halo create whose link was lost is found
//! again through its marker (`entryid`), updates and deletes are observed
//! again and planned afresh.
//!
//! Markers: an event halosync creates carries the Halo id in its extended
//! property, and a Halo appointment it creates carries the event's
//! immutable id (`entryid`), iCalUId (`exchange_uid`) and series master
//! (`recurring_master_id`). `halosync relink` and the planner's matching
//! read them back.
//!
//! With an owner override the Exchange writes go to the scheduler's
//! meeting instead ([`super::owner`]).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use serde_json::json;

use super::apply::{
    Calendars, CreatedEvent, HaloUpdate, Links, Origin, WriteError, transaction_id,
};
use super::graph_map::GraphMapping;
use super::halo_map::{AgentDirectory, HaloMapping};
use super::observe::{Details, EventIdentity};
use super::owner::OwnerOverride;
use super::plan::{GraphId, HaloId, Item, LinkId, Side, Synced};
use super::replay::GraphCreateIntent;
use crate::clock::Clock;
use crate::graph::model::Event;
use crate::graph::{GraphClient, GraphError};
use crate::halo::{HaloClient, HaloError};
use crate::model::Appointment;
use crate::store::{Store, WriteKind};

/// Mapping and meeting settings a mailbox's writes use.
#[derive(Debug, Clone)]
pub struct WriteSettings {
    pub halo_mapping: HaloMapping,
    pub graph_mapping: GraphMapping,
    /// Halo appointment types created in Exchange as Teams meetings.
    pub teams_types: Vec<i64>,
}

/// One mailbox's calendars and links for one run.
pub struct MailboxSync<'a> {
    pub halo: &'a HaloClient,
    pub graph: &'a GraphClient,
    pub store: &'a Mutex<Store>,
    pub clock: &'a dyn Clock,
    pub agents: &'a AgentDirectory,
    pub agent_id: i64,
    pub mailbox: &'a str,
    pub settings: &'a WriteSettings,
    pub details: &'a Details,
    /// The connection's owner override, when it applies to this agent.
    pub(super) owner: Option<&'a OwnerOverride>,
    /// The journal row of the write in flight, finished with its link.
    pub(super) intent: Option<i64>,
    /// Exchange identities of events this run created or linked.
    identities: BTreeMap<GraphId, EventIdentity>,
    /// Meetings created in the scheduler's calendar whose copy in this
    /// mailbox has not arrived yet, by Halo id: their links are saved with
    /// the meeting's identity and no event, until the copy is paired.
    pub(super) awaiting_copy: BTreeMap<HaloId, EventIdentity>,
}

impl<'a> MailboxSync<'a> {
    #[allow(clippy::too_many_arguments)] // the run's shared parts, named
    pub fn new(
        halo: &'a HaloClient,
        graph: &'a GraphClient,
        store: &'a Mutex<Store>,
        clock: &'a dyn Clock,
        agents: &'a AgentDirectory,
        agent_id: i64,
        mailbox: &'a str,
        settings: &'a WriteSettings,
        details: &'a Details,
    ) -> Self {
        Self {
            halo,
            graph,
            store,
            clock,
            agents,
            agent_id,
            mailbox,
            settings,
            details,
            owner: None,
            intent: None,
            identities: BTreeMap::new(),
            awaiting_copy: BTreeMap::new(),
        }
    }

    /// Routes this mailbox's Exchange writes through the connection's owner
    /// override (`None`: the agent's own calendar).
    pub fn with_owner(mut self, owner: Option<&'a OwnerOverride>) -> Self {
        self.owner = owner;
        self
    }

    pub(super) fn store(&self) -> Result<MutexGuard<'a, Store>, String> {
        self.store
            .lock()
            .map_err(|_| "the database handle was poisoned by an earlier panic".to_string())
    }

    pub(super) fn journal(
        &mut self,
        side: Side,
        kind: WriteKind,
        transaction: Option<&str>,
        payload: &serde_json::Value,
    ) -> Result<(), WriteError> {
        let now = self.clock.now();
        let id = self
            .store()
            .and_then(|s| {
                s.record_intent(None, side, kind, transaction, payload, now)
                    .map_err(|e| e.to_string())
            })
            .map_err(WriteError::Refused)?;
        self.intent = Some(id);
        Ok(())
    }

    /// After a failed write: an outcome that may have happened stays in
    /// the journal (a Graph create is then replayed); any other is done.
    pub(super) fn write_failed(&mut self, error: &WriteError, may_have_happened: bool) {
        let Some(id) = self.intent.take() else { return };
        let now = self.clock.now();
        if let Ok(store) = self.store() {
            let outcome = if may_have_happened {
                store.note_intent_attempt(id, Some(&error.to_string()), now)
            } else {
                store.finish_intent(id)
            };
            if let Err(e) = outcome {
                tracing::warn!(error = %e, "could not update the write journal");
            }
        }
    }

    /// After a write whose outcome no link records: its intent is done.
    pub(super) fn write_done(&mut self) {
        let Some(id) = self.intent.take() else { return };
        let finished = self
            .store()
            .and_then(|s| s.finish_intent(id).map_err(|e| e.to_string()));
        if let Err(e) = finished {
            tracing::warn!(error = %e, "could not update the write journal");
        }
    }

    pub(super) fn remember(&mut self, event: &Event) {
        if let Some(id) = &event.id {
            self.identities.insert(id.clone(), EventIdentity::of(event));
        }
    }

    pub(super) fn identity(&self, id: &GraphId) -> Option<&EventIdentity> {
        self.identities
            .get(id)
            .or_else(|| self.details.events.get(id))
    }

    fn read_halo(&self, row: &crate::halo::Appointment) -> Result<Item<HaloId>, WriteError> {
        self.settings
            .halo_mapping
            .read(row, self.agents)
            .ok_or_else(|| WriteError::Refused("Halo saved an appointment without times".into()))
    }

    pub(super) fn read_event(&self, event: &Event) -> Result<Item<GraphId>, WriteError> {
        self.settings
            .graph_mapping
            .read(event, self.mailbox)
            .map_err(|e| WriteError::Refused(format!("Exchange saved an event that {e}")))
    }

    /// Journals `payload` as one intent, then saves `rows` (creates or
    /// overwrites, `kind`) in one request: one result per row, in order.
    /// The intent is finished with the first link saved. An interrupted
    /// create stays journaled (its appointments are paired with their
    /// events by the entryid marker next run); an interrupted update is
    /// observed afresh.
    async fn save_batch_in_halo(
        &mut self,
        rows: &[crate::halo::Appointment],
        kind: WriteKind,
        payload: serde_json::Value,
    ) -> Vec<Result<Item<HaloId>, WriteError>> {
        if let Err(error) = self.journal(Side::Halo, kind, None, &payload) {
            return vec![Err(error); rows.len()];
        }
        let may_have_happened = kind == WriteKind::Create;
        match self.halo.save_appointments(rows).await {
            Ok(saved) => {
                let read: Vec<_> = saved
                    .iter()
                    .map(|s| self.read_halo(&s.appointment))
                    .collect();
                if read.iter().all(Result::is_err)
                    && let Some(Err(error)) = read.first()
                {
                    self.write_failed(&error.clone(), may_have_happened);
                }
                read
            }
            Err(failure) => {
                // The requests before the failing one were saved: they are
                // recorded, the rest are not.
                let mut read: Vec<_> = failure
                    .saved
                    .iter()
                    .map(|s| self.read_halo(&s.appointment))
                    .collect();
                let error = halo_error(failure.error);
                if read.is_empty() {
                    self.write_failed(&error, false);
                }
                read.resize(rows.len(), Err(error));
                read
            }
        }
    }

    /// Journals, then sends, the create of `event` (a copy of `origin`) in
    /// `calendar`: the agent's own, or the scheduler's for a meeting. The
    /// transactionId is the calendar's, so a replay finds the same event.
    pub(super) async fn post_event(
        &mut self,
        calendar: &str,
        event: &Event,
        origin: &Item<HaloId>,
    ) -> Result<Event, WriteError> {
        let transaction = transaction_id(calendar, origin.id, &origin.version);
        let payload = serde_json::to_value(GraphCreateIntent {
            mailbox: self.mailbox.to_string(),
            agent_id: self.agent_id,
            halo_id: origin.id,
            halo_version: origin.version.clone(),
            halo_fingerprint: origin.content.fingerprint().to_string(),
            event: event.clone(),
            organizer: (!calendar.eq_ignore_ascii_case(self.mailbox)).then(|| calendar.to_string()),
        })
        .map_err(|e| WriteError::Refused(e.to_string()))?;
        self.journal(
            Side::Exchange,
            WriteKind::Create,
            Some(&transaction),
            &payload,
        )?;
        self.graph
            .create_event(calendar, event, &transaction)
            .await
            .map_err(|e| {
                let transient = e.is_transient();
                let error = graph_error(e);
                self.write_failed(&error, transient);
                error
            })
    }

    /// After Exchange made the Teams meeting of a create: its join link
    /// written back to Halo, and the appointment as it now stands.
    pub(super) async fn write_back_join_url(
        &mut self,
        origin: &Item<HaloId>,
        teams: bool,
        join_url: Option<&String>,
    ) -> Option<Item<HaloId>> {
        let url = join_url
            .filter(|url| teams && origin.content.online_meeting_url.as_ref() != Some(url))?;
        let row = crate::halo::Appointment {
            id: Some(origin.id),
            online_meeting_url: Some(url.clone()),
            ..crate::halo::Appointment::default()
        };
        match self.halo.save_appointments(&[row]).await {
            Ok(saved) => saved
                .into_iter()
                .next()
                .and_then(|s| self.settings.halo_mapping.read(&s.appointment, self.agents)),
            Err(failure) => {
                // The event exists and gets linked; the next run copies the
                // link across as a change in Exchange.
                tracing::warn!(error = %failure, halo_id = origin.id, "could not write the Teams link back to Halo");
                None
            }
        }
    }

    pub(super) fn is_teams(&self, halo_id: HaloId) -> bool {
        self.details
            .halo_types
            .get(&halo_id)
            .is_some_and(|kind| self.settings.teams_types.contains(kind))
    }
}

fn halo_error(error: HaloError) -> WriteError {
    match error {
        HaloError::NotFound { .. } => WriteError::NotFound,
        HaloError::RateLimited { .. } | HaloError::Http(_) => {
            WriteError::Transient(error.to_string())
        }
        HaloError::Api { status, .. } if status >= 500 => WriteError::Transient(error.to_string()),
        other => WriteError::Refused(other.to_string()),
    }
}

pub(super) fn graph_error(error: GraphError) -> WriteError {
    match error {
        GraphError::ItemNotFound { .. } => WriteError::NotFound,
        GraphError::Conflict { .. } => WriteError::Conflict,
        e if e.is_transient() => WriteError::Transient(e.to_string()),
        other => WriteError::Refused(other.to_string()),
    }
}

/// Graph's `If-Match` value for a stored changeKey.
pub(super) fn etag(change_key: &str) -> String {
    format!("W/\"{change_key}\"")
}

impl Calendars for MailboxSync<'_> {
    async fn create_in_halo(
        &mut self,
        origins: &[&Item<GraphId>],
    ) -> Vec<Result<Item<HaloId>, WriteError>> {
        let rows: Vec<crate::halo::Appointment> = origins
            .iter()
            .map(|origin| {
                let mut row = self.settings.halo_mapping.write(
                    None,
                    self.agent_id,
                    &origin.content,
                    self.agents,
                );
                // The event already exists: Halo's clash warnings must not stop it.
                row.force = Some(true);
                row.entryid = Some(origin.id.clone());
                if let Some(identity) = self.identity(&origin.id) {
                    row.exchange_uid = identity.ical_uid.clone();
                    row.recurring_master_id = identity.series_master_id.clone();
                }
                row
            })
            .collect();
        let entries: Vec<&str> = origins.iter().map(|o| o.id.as_str()).collect();
        let payload =
            json!({"mailbox": self.mailbox, "agent_id": self.agent_id, "entryids": entries});
        self.save_batch_in_halo(&rows, WriteKind::Create, payload)
            .await
    }

    async fn update_in_halo(
        &mut self,
        updates: &[HaloUpdate<'_>],
    ) -> Vec<Result<Item<HaloId>, WriteError>> {
        let mut results: Vec<Option<Result<Item<HaloId>, WriteError>>> = vec![None; updates.len()];
        let mut rows = Vec::with_capacity(updates.len());
        let mut slots = Vec::with_capacity(updates.len());
        for (slot, update) in updates.iter().enumerate() {
            if let Some(owner) = self.owner
                // Before the Halo write, so a failure leaves both to the next run.
                && let Err(error) = self.carry_to_scheduler(owner, update.origin).await
            {
                results[slot] = Some(Err(error));
                continue;
            }
            let mut row = self.settings.halo_mapping.write(
                Some(update.target.id),
                self.agent_id,
                update.content,
                self.agents,
            );
            row.force = Some(true);
            rows.push(row);
            slots.push(slot);
        }
        if !rows.is_empty() {
            let ids: Vec<Option<i64>> = rows.iter().map(|row| row.id).collect();
            let payload =
                json!({"mailbox": self.mailbox, "agent_id": self.agent_id, "halo_ids": ids});
            let saved = self
                .save_batch_in_halo(&rows, WriteKind::Update, payload)
                .await;
            for (slot, written) in slots.into_iter().zip(saved) {
                results[slot] = Some(written);
            }
        }
        results
            .into_iter()
            .map(|result| {
                result.unwrap_or_else(|| {
                    Err(WriteError::Refused(
                        "Halo answered for fewer appointments than were sent".into(),
                    ))
                })
            })
            .collect()
    }

    async fn delete_in_halo(&mut self, target: &Synced<HaloId>) -> Result<(), WriteError> {
        self.journal(
            Side::Halo,
            WriteKind::Delete,
            None,
            &json!({"mailbox": self.mailbox, "halo_id": target.id}),
        )?;
        // halosync deletes the Exchange copy itself, under its own policy.
        self.halo
            .delete_appointment(target.id, true)
            .await
            .map_err(|e| {
                let error = halo_error(e);
                self.write_failed(&error, false);
                error
            })
    }

    async fn create_in_exchange(
        &mut self,
        content: &Appointment,
        origin: &Item<HaloId>,
    ) -> Result<CreatedEvent, WriteError> {
        let teams = self.is_teams(origin.id);
        if let Some(owner) = self.owner {
            return self.create_meeting(owner, content, origin, teams).await;
        }
        let mut event = self.settings.graph_mapping.write(content, teams);
        event.set_halo_id(origin.id);
        let created = self.post_event(self.mailbox, &event, origin).await?;
        self.remember(&created);
        let item = self.read_event(&created)?;
        let halo = self
            .write_back_join_url(origin, teams, item.content.online_meeting_url.as_ref())
            .await;
        Ok(CreatedEvent {
            event: Some(item),
            halo,
        })
    }

    async fn update_in_exchange(
        &mut self,
        target: &Synced<GraphId>,
        content: &Appointment,
    ) -> Result<Item<GraphId>, WriteError> {
        if let Some(owner) = self.owner
            && let Some(written) = self.update_meeting(owner, target, content).await?
        {
            return Ok(written);
        }
        let event = self.settings.graph_mapping.write(content, false);
        self.journal(
            Side::Exchange,
            WriteKind::Update,
            None,
            &json!({"mailbox": self.mailbox, "event_id": target.id}),
        )?;
        let updated = self
            .graph
            .update_event(
                self.mailbox,
                &target.id,
                &event,
                Some(&etag(&target.version)),
            )
            .await
            .map_err(|e| {
                let error = graph_error(e);
                self.write_failed(&error, false);
                error
            })?;
        self.read_event(&updated)
    }

    async fn delete_in_exchange(&mut self, target: &Synced<GraphId>) -> Result<(), WriteError> {
        if let Some(owner) = self.owner
            && self.delete_meeting(owner, target).await?
        {
            return Ok(());
        }
        self.journal(
            Side::Exchange,
            WriteKind::Delete,
            None,
            &json!({"mailbox": self.mailbox, "event_id": target.id}),
        )?;
        self.graph
            .delete_event(self.mailbox, &target.id, Some(&etag(&target.version)))
            .await
            .map_err(|e| {
                let error = graph_error(e);
                self.write_failed(&error, false);
                error
            })
    }
}

impl Links for MailboxSync<'_> {
    type Error = String;

    fn save(
        &mut self,
        link: Option<LinkId>,
        halo: Option<Synced<HaloId>>,
        graph: Option<Synced<GraphId>>,
        origin: Origin,
    ) -> Result<LinkId, String> {
        let now = self.clock.now();
        let intent = self.intent.take();
        let identity = graph
            .as_ref()
            .and_then(|g| self.identity(&g.id))
            .or_else(|| halo.as_ref().and_then(|h| self.awaiting_copy.get(&h.id)))
            .cloned()
            .unwrap_or_default();
        let (agent_id, mailbox) = (self.agent_id, self.mailbox);
        self.store()?
            .atomically(|store| {
                let id = store.save_link(
                    agent_id,
                    mailbox,
                    link,
                    halo.as_ref(),
                    graph.as_ref(),
                    origin,
                    now,
                )?;
                store.set_link_identity(
                    id,
                    identity.ical_uid.as_deref(),
                    identity.series_master_id.as_deref(),
                )?;
                if let Some(intent) = intent {
                    store.finish_intent(intent)?;
                }
                Ok(id)
            })
            .map_err(|e: crate::store::StoreError| e.to_string())
    }

    fn remove(&mut self, link: LinkId) -> Result<(), String> {
        let now = self.clock.now();
        let intent = self.intent.take();
        self.store()?
            .atomically(|store| {
                store.remove_link(link, now)?;
                if let Some(intent) = intent {
                    store.finish_intent(intent)?;
                }
                Ok(())
            })
            .map_err(|e: crate::store::StoreError| e.to_string())
    }
}
