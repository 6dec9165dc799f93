//! The Graph side of the control API: seed, act, faults and state, as JSON.
//!
//! - `seed`: `{"mailboxes":[{"upn","display_name"?,"state"?,"delegates"?,"tenant"?}],
//!   "events":{"<upn>":[<Graph event JSON>]}}`; returns
//!   `{"mailboxes":{"<upn>":"<user id>"},"events":{"<upn>":[{"id","immutable_id"}]}}`.
//!   `state` is `ok` (default), `unlicensed`, `access_denied` or `no_delegate`.
//! - `act` (`"op"`-tagged): `create_event {mailbox, event, calendar?}`,
//!   `update_event {mailbox, id, patch}`, `delete_event {mailbox, id}`,
//!   `move_event {mailbox, id, calendar}` (calendar: `"Calendar"`,
//!   `"Other Calendar"` or a calendar id). Each notifies subscriptions like a
//!   real change and returns `{"id","immutable_id","event"}` (delete: `{}`).
//! - `faults`: see [`GraphFaults`]; every field is optional and an absent one
//!   leaves that setting as it is.
//! - `state`: see [`GraphState`].

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::error::ApiError;
use super::events;
use super::ids::{self, IdForm};
use super::model::{Event, LifecycleEventType, Subscription};
use super::odata::{Presentation, etag};
use super::store::{Mailbox, MailboxState, PRIMARY_CALENDAR};
use super::{Shared, subscriptions, time};
use crate::sim::faults::FaultSettings;

/// Why a control request was refused (the composer answers 400 with this).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GraphSimError {
    #[error("no mailbox '{0}' is seeded; seed it under \"mailboxes\" first")]
    UnknownMailbox(String),
    #[error("mailbox '{0}' is seeded twice")]
    DuplicateMailbox(String),
    #[error("no subscription '{0}' exists")]
    UnknownSubscription(String),
    #[error("{code}: {message}")]
    Rejected { code: String, message: String },
    #[error("{0}")]
    Invalid(String),
}

impl From<ApiError> for GraphSimError {
    fn from(error: ApiError) -> Self {
        Self::Rejected {
            code: error.code,
            message: error.message,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedMailbox {
    pub upn: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub state: MailboxState,
    /// UPNs whose delegated tokens may use this mailbox.
    #[serde(default)]
    pub delegates: Vec<String>,
    /// The tenant the mailbox lives in; callers with tokens of another
    /// tenant do not find it. Absent: every tenant finds it.
    #[serde(default)]
    pub tenant: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphSeed {
    #[serde(default)]
    pub mailboxes: Vec<SeedMailbox>,
    /// Graph event JSON (as a client would POST it) per mailbox UPN.
    #[serde(default)]
    pub events: BTreeMap<String, Vec<Value>>,
}

/// A person acting in Exchange outside halosync's credentials.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum GraphAction {
    CreateEvent {
        mailbox: String,
        event: Value,
        #[serde(default)]
        calendar: Option<String>,
    },
    UpdateEvent {
        mailbox: String,
        id: String,
        patch: Value,
    },
    DeleteEvent {
        mailbox: String,
        id: String,
    },
    MoveEvent {
        mailbox: String,
        id: String,
        calendar: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleFault {
    pub subscription_id: String,
    pub event: LifecycleEventType,
}

/// `POST /_sim/faults` for Graph. Absent fields leave settings unchanged.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphFaults {
    /// Replaces latency, fail-next-N rules and random faults.
    #[serde(default)]
    pub faults: Option<FaultSettings>,
    /// Concurrent requests per app and mailbox (default 4).
    #[serde(default)]
    pub concurrency_limit: Option<usize>,
    /// Requests per app and mailbox per rolling 10 minutes (default 10,000).
    #[serde(default)]
    pub budget_per_10_min: Option<usize>,
    /// How long each mailbox request holds its concurrency slot, to make the
    /// concurrency limit reachable (default 0).
    #[serde(default)]
    pub mailbox_hold_ms: Option<u64>,
    /// Longest subscription lifetime accepted (default 10080; 4230 mimics
    /// the older limit).
    #[serde(default)]
    pub max_subscription_minutes: Option<i64>,
    /// Forget the delta tokens of this mailbox (`"*"`: all), so they get
    /// `410 Gone` / `syncStateNotFound`.
    #[serde(default)]
    pub evict_delta_tokens: Option<String>,
    /// Lifecycle notifications to send now; `subscriptionRemoved` also
    /// deletes the subscription.
    #[serde(default)]
    pub lifecycle: Vec<LifecycleFault>,
}

/// An invitation, update or cancellation Exchange would have emailed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Invitation {
    pub mailbox: String,
    /// The event's immutable id.
    pub event_id: String,
    /// `request`, `update` or `cancellation`.
    pub kind: String,
    pub subject: String,
    pub recipients: Vec<String>,
    pub at: String,
}

/// One attempt to deliver a notification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    pub subscription_id: String,
    pub url: String,
    /// The change type or lifecycle event.
    pub kind: String,
    pub attempt: u32,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: u64,
    pub at: String,
}

/// What `GET /_sim/state` shows for Graph.
#[derive(Debug, Clone, Serialize)]
pub struct GraphState {
    /// Masters, single instances and exceptions per mailbox, with REST ids,
    /// as Graph would return them.
    pub events: BTreeMap<String, Vec<Event>>,
    pub invitations: Vec<Invitation>,
    pub subscriptions: Vec<Subscription>,
    pub deliveries: Vec<Delivery>,
    pub requests: u64,
    pub by_route: BTreeMap<String, u64>,
}

fn mailbox_key(shared: &Shared, upn: &str) -> Result<String, GraphSimError> {
    shared
        .lock()
        .mailbox_key(upn)
        .ok_or_else(|| GraphSimError::UnknownMailbox(upn.to_string()))
}

fn id_pair(value: &Value) -> Value {
    let id = value.get("id").and_then(Value::as_str).unwrap_or_default();
    // Immutable ids ignore the calendar, so any index will do.
    let immutable = ids::parse(id).map(|p| {
        match p
            .original_start
            .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        {
            Some(at) => ids::occurrence_id(IdForm::Immutable, p.key, PRIMARY_CALENDAR, at),
            None => ids::item_id(IdForm::Immutable, p.key, PRIMARY_CALENDAR),
        }
    });
    json!({"id": id, "immutable_id": immutable})
}

pub(crate) fn seed(shared: &Arc<Shared>, seed: GraphSeed) -> Result<Value, GraphSimError> {
    let mut mailboxes = serde_json::Map::new();
    {
        let mut inner = shared.lock();
        for m in seed.mailboxes {
            let key = m.upn.to_lowercase();
            if inner.mailboxes.contains_key(&key) {
                return Err(GraphSimError::DuplicateMailbox(m.upn));
            }
            let mut mailbox = Mailbox::new(&m.upn, m.display_name, m.state, m.delegates);
            mailbox.tenant = m.tenant;
            mailboxes.insert(m.upn.clone(), Value::String(mailbox.user_id.clone()));
            inner.mailboxes.insert(key, mailbox);
        }
    }
    let mut events_out = serde_json::Map::new();
    let view = Presentation {
        zone: "UTC".into(),
        ..Presentation::default()
    };
    for (upn, list) in seed.events {
        let key = mailbox_key(shared, &upn)?;
        let mut ids = Vec::new();
        for event in list {
            let value = events::create_event(
                shared,
                &key,
                &event,
                PRIMARY_CALENDAR,
                &view,
                IdForm::Rest,
                false,
            )?;
            ids.push(id_pair(&value));
        }
        events_out.insert(upn, Value::Array(ids));
    }
    Ok(json!({"mailboxes": mailboxes, "events": events_out}))
}

pub(crate) fn act(shared: &Arc<Shared>, action: GraphAction) -> Result<Value, GraphSimError> {
    let view = Presentation {
        zone: "UTC".into(),
        ..Presentation::default()
    };
    let with_ids = |event: Value| {
        let mut out = id_pair(&event);
        out["event"] = event;
        out
    };
    match action {
        GraphAction::CreateEvent {
            mailbox,
            event,
            calendar,
        } => {
            let key = mailbox_key(shared, &mailbox)?;
            let calendar = match calendar {
                None => PRIMARY_CALENDAR,
                Some(name) => events::calendar_index_of(shared, &key, &name)?,
            };
            let value =
                events::create_event(shared, &key, &event, calendar, &view, IdForm::Rest, true)?;
            Ok(with_ids(value))
        }
        GraphAction::UpdateEvent { mailbox, id, patch } => {
            let key = mailbox_key(shared, &mailbox)?;
            let value = events::update_event(shared, &key, &id, &patch, None, &view, IdForm::Rest)?;
            Ok(with_ids(value))
        }
        GraphAction::DeleteEvent { mailbox, id } => {
            let key = mailbox_key(shared, &mailbox)?;
            events::delete_event(shared, &key, &id, None)?;
            Ok(json!({}))
        }
        GraphAction::MoveEvent {
            mailbox,
            id,
            calendar,
        } => {
            let key = mailbox_key(shared, &mailbox)?;
            let new_id = events::move_event(shared, &key, &id, &calendar)?;
            Ok(
                json!({"id": new_id, "immutable_id": id_pair(&json!({"id": new_id}))["immutable_id"]}),
            )
        }
    }
}

pub(crate) fn set_faults(shared: &Arc<Shared>, faults: GraphFaults) -> Result<(), GraphSimError> {
    if faults.concurrency_limit == Some(0) {
        return Err(GraphSimError::Invalid(
            "concurrency_limit must be at least 1".into(),
        ));
    }
    if faults.max_subscription_minutes.is_some_and(|m| m < 45) {
        return Err(GraphSimError::Invalid(
            "max_subscription_minutes must be at least 45".into(),
        ));
    }
    // Validate everything before changing anything.
    let mut inner = shared.lock();
    if let Some(missing) = faults
        .lifecycle
        .iter()
        .find(|l| !inner.subscriptions.contains_key(&l.subscription_id))
    {
        return Err(GraphSimError::UnknownSubscription(
            missing.subscription_id.clone(),
        ));
    }
    if let Some(settings) = faults.faults {
        shared.faults.set(settings);
    }
    if let Some(limit) = faults.concurrency_limit {
        inner.settings.concurrency_limit = limit;
    }
    if let Some(budget) = faults.budget_per_10_min {
        inner.settings.budget_per_10_min = budget;
        // Windows are created with their limit; start them afresh.
        inner.budgets.clear();
    }
    if let Some(hold) = faults.mailbox_hold_ms {
        inner.settings.mailbox_hold_ms = hold;
    }
    if let Some(max) = faults.max_subscription_minutes {
        inner.settings.max_subscription_minutes = max;
    }
    if let Some(mailbox) = faults.evict_delta_tokens {
        inner.delta.evict(&mailbox);
    }
    for l in faults.lifecycle {
        subscriptions::lifecycle(shared, &mut inner, &l.subscription_id, l.event);
    }
    Ok(())
}

pub(crate) fn state(shared: &Shared) -> GraphState {
    let inner = shared.lock();
    let events = inner
        .mailboxes
        .values()
        .map(|m| {
            let list = m
                .all_events(IdForm::Rest)
                .into_iter()
                .map(|mut e| {
                    e.odata_etag = e.change_key.as_deref().map(etag);
                    e
                })
                .collect();
            (m.upn.clone(), list)
        })
        .collect();
    let subscriptions = inner
        .subscriptions
        .values()
        .map(|s| {
            let mut sub = s.subscription.clone();
            sub.expiration_date_time = Some(time::format_instant(s.expires));
            sub
        })
        .collect();
    GraphState {
        events,
        invitations: inner.invitations.clone(),
        subscriptions,
        deliveries: inner.deliveries.clone(),
        requests: inner.requests,
        by_route: inner.by_route.clone(),
    }
}
