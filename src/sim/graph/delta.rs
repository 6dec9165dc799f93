//! `calendarView/delta`: rounds of pages linked by `$skiptoken`, ending in a
//! `$deltatoken` that remembers what the client has seen.
//!
//! A delta token is a snapshot (stable id → rendered id and version) of the
//! window; the next round reports what differs from it, and `@removed` for
//! whatever was in it and no longer is (deleted, cancelled, or moved out of
//! the window). Tokens are immutable, so replaying an old one is allowed;
//! eviction from the control API makes them answer `410 Gone`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use axum::http::{StatusCode, header};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use super::Shared;
use super::error::{ApiError, ApiResponse};
use super::model::EventType;
use super::odata::{Presentation, window};
use super::routes::{ApiRequest, MailboxAccess, Prefs, UserRef};
use super::store::{Instance, Mailbox};

/// Graph's page size when the client states none.
const DEFAULT_PAGE: usize = 10;

#[derive(Debug, Clone)]
struct Seen {
    rendered_id: String,
    version: String,
}

#[derive(Debug, Clone)]
struct Snapshot {
    mailbox: String,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    seen: BTreeMap<String, Seen>,
}

#[derive(Debug, Clone)]
struct PendingPage {
    mailbox: String,
    items: Vec<Value>,
    /// The token of the following page, or `None` for the last one.
    next_skip: Option<String>,
    /// The delta token the last page hands out.
    delta_token: String,
}

/// Like Exchange's sync-state cache, the simulator keeps only so many
/// tokens; the oldest are forgotten (and answer `410 Gone`).
const MAX_TOKENS: usize = 5_000;

/// Outstanding skip tokens and delta tokens, oldest first in `order`.
#[derive(Debug, Default)]
pub(crate) struct DeltaTokens {
    pages: HashMap<String, PendingPage>,
    snapshots: HashMap<String, Snapshot>,
    order: VecDeque<String>,
}

impl DeltaTokens {
    fn remember_page(&mut self, token: String, page: PendingPage) {
        self.order.push_back(token.clone());
        self.pages.insert(token, page);
        self.forget_oldest();
    }

    fn remember_snapshot(&mut self, token: String, snapshot: Snapshot) {
        self.order.push_back(token.clone());
        self.snapshots.insert(token, snapshot);
        self.forget_oldest();
    }

    fn forget_oldest(&mut self) {
        while self.order.len() > MAX_TOKENS {
            if let Some(old) = self.order.pop_front() {
                self.pages.remove(&old);
                self.snapshots.remove(&old);
            }
        }
    }

    /// Drops the tokens of one mailbox (or all with `*`).
    pub fn evict(&mut self, mailbox: &str) {
        let all = mailbox == "*";
        let mailbox = mailbox.to_lowercase();
        self.pages.retain(|_, p| !all && p.mailbox != mailbox);
        self.snapshots.retain(|_, s| !all && s.mailbox != mailbox);
        let (pages, snapshots) = (&self.pages, &self.snapshots);
        self.order
            .retain(|t| pages.contains_key(t) || snapshots.contains_key(t));
    }
}

fn new_token() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Uuid::new_v4().as_bytes())
}

fn gone(shared: &Shared, user: &UserRef) -> ApiError {
    ApiError::new(
        StatusCode::GONE,
        "syncStateNotFound",
        "The sync state generation is not found. Start a new round without a token.",
    )
    .with_header(
        header::LOCATION,
        format!(
            "{}/v1.0/{}/calendarView/delta?$deltatoken=",
            shared.base,
            user.path()
        ),
    )
}

/// The version of an instance a client has seen: a change to any of these
/// puts it in the next round.
fn version(instance: &Instance) -> String {
    format!(
        "{}|{}|{}",
        instance.event.change_key.as_deref().unwrap_or_default(),
        instance.start.timestamp(),
        instance.end.timestamp()
    )
}

/// Renders an occurrence as delta does: only its identity and times.
fn sparse(view: &Presentation, instance: &Instance) -> Value {
    let full = view.render(instance, &[]);
    let mut out = serde_json::Map::new();
    for key in [
        "@odata.type",
        "@odata.etag",
        "id",
        "seriesMasterId",
        "type",
        "start",
        "end",
    ] {
        if let Some(value) = full.get(key) {
            out.insert(key.to_string(), value.clone());
        }
    }
    out.insert("@odata.type".into(), json!("#microsoft.graph.event"));
    Value::Object(out)
}

/// A series (or single event) and whether each member is sent sparse.
type Group = Vec<(Instance, bool)>;

pub(crate) fn handle(
    shared: &Arc<Shared>,
    access: &MailboxAccess,
    user: &UserRef,
    request: &ApiRequest,
) -> Result<ApiResponse, ApiError> {
    let prefs = request.prefs();
    let page_size = prefs.max_page_size.unwrap_or(DEFAULT_PAGE).max(1);
    let mut inner = shared.lock();
    if let Some(skip) = request.query("$skiptoken") {
        let page = inner
            .delta
            .pages
            .get(skip)
            .filter(|p| p.mailbox == access.mailbox)
            .cloned()
            .ok_or_else(|| gone(shared, user))?;
        return Ok(respond(shared, user, page));
    }
    let previous = match request.query("$deltatoken") {
        Some(token) if !token.is_empty() => Some(
            inner
                .delta
                .snapshots
                .get(token)
                .filter(|s| s.mailbox == access.mailbox)
                .cloned()
                .ok_or_else(|| gone(shared, user))?,
        ),
        _ => None,
    };
    let (from, to) = match &previous {
        Some(snapshot) => (snapshot.from, snapshot.to),
        None => window(request)?,
    };
    let mailbox = inner
        .mailboxes
        .get(&access.mailbox)
        .ok_or_else(ApiError::item_not_found)?;
    let empty = BTreeMap::new();
    let before = previous.as_ref().map_or(&empty, |s| &s.seen);
    let (changed_groups, seen) = round_changes(mailbox, from, to, &prefs, before);
    let pages = paginate(changed_groups, page_size);
    let delta_token = new_token();
    inner.delta.remember_snapshot(
        delta_token.clone(),
        Snapshot {
            mailbox: access.mailbox.clone(),
            from,
            to,
            seen,
        },
    );
    let tokens: Vec<String> = pages.iter().map(|_| new_token()).collect();
    let mut first = None;
    for (index, items) in pages.into_iter().enumerate() {
        let page = PendingPage {
            mailbox: access.mailbox.clone(),
            items,
            next_skip: tokens.get(index + 1).cloned(),
            delta_token: delta_token.clone(),
        };
        if index == 0 {
            first = Some(page.clone());
        }
        if let Some(token) = tokens.get(index) {
            inner.delta.remember_page(token.clone(), page);
        }
    }
    let first = first.ok_or_else(ApiError::item_not_found)?;
    Ok(respond(shared, user, first))
}

/// Compares the window now with what the client saw: the changed groups
/// (a series with its master, or a single event), then one group of
/// `@removed` entries, and the new snapshot.
fn round_changes(
    mailbox: &Mailbox,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    prefs: &Prefs,
    before: &BTreeMap<String, Seen>,
) -> (Vec<Vec<Value>>, BTreeMap<String, Seen>) {
    let view = Presentation {
        zone: prefs.zone(),
        select: None,
        expand: None,
    };
    let form = prefs.form();
    // Instances in the window, then the masters of the series among them.
    let instances = mailbox.view(from, to, form);
    let mut groups: BTreeMap<(DateTime<Utc>, Uuid), Group> = BTreeMap::new();
    let mut first_start: HashMap<Uuid, DateTime<Utc>> = HashMap::new();
    for instance in &instances {
        first_start.entry(instance.series).or_insert(instance.start);
    }
    for instance in instances {
        let sparse_item = instance.event.event_type == Some(EventType::Occurrence);
        let start = first_start
            .get(&instance.series)
            .copied()
            .unwrap_or(instance.start);
        groups
            .entry((start, instance.series))
            .or_default()
            .push((instance, sparse_item));
    }
    for ((_, series), members) in groups.iter_mut() {
        if members
            .iter()
            .any(|(i, _)| i.event.series_master_id.is_some())
            && let Some(master) = mailbox.item(*series, form)
        {
            members.insert(0, (master, false));
        }
    }
    let mut seen = BTreeMap::new();
    let mut changed_groups: Vec<Vec<Value>> = Vec::new();
    for members in groups.values() {
        let mut changed = Vec::new();
        for (instance, sparse_item) in members {
            let now_version = version(instance);
            let known = before
                .get(&instance.stable_id)
                .is_some_and(|s| s.version == now_version);
            if !known {
                changed.push(if *sparse_item {
                    sparse(&view, instance)
                } else {
                    view.render(instance, &[])
                });
            }
            seen.insert(
                instance.stable_id.clone(),
                Seen {
                    rendered_id: instance.event.id.clone().unwrap_or_default(),
                    version: now_version,
                },
            );
        }
        if !changed.is_empty() {
            changed_groups.push(changed);
        }
    }
    let removed: Vec<Value> = before
        .iter()
        .filter(|(stable, _)| !seen.contains_key(*stable))
        .map(|(_, s)| json!({"@odata.type": "#microsoft.graph.event", "id": s.rendered_id, "@removed": {"reason": "deleted"}}))
        .collect();
    if !removed.is_empty() {
        changed_groups.push(removed);
    }
    (changed_groups, seen)
}

/// Splits changes into pages of about `page_size`, never splitting a group.
fn paginate(changed_groups: Vec<Vec<Value>>, page_size: usize) -> Vec<Vec<Value>> {
    // A series is never split across pages (a page may run over to keep it).
    let mut pages: Vec<Vec<Value>> = Vec::new();
    for group in changed_groups {
        match pages.last_mut() {
            Some(last) if last.len() + group.len() <= page_size || last.is_empty() => {
                last.extend(group)
            }
            _ => pages.push(group),
        }
    }
    if pages.is_empty() {
        pages.push(Vec::new());
    }
    pages
}

fn respond(shared: &Shared, user: &UserRef, page: PendingPage) -> ApiResponse {
    let link = |param: &str, token: &str| {
        format!(
            "{}/v1.0/{}/calendarView/delta?{param}={token}",
            shared.base,
            user.path()
        )
    };
    let mut body = json!({
        "@odata.context": format!("{}/v1.0/$metadata#Collection(event)", shared.base),
        "value": page.items,
    });
    match &page.next_skip {
        Some(skip) => body["@odata.nextLink"] = Value::String(link("$skiptoken", skip)),
        None => body["@odata.deltaLink"] = Value::String(link("$deltatoken", &page.delta_token)),
    }
    ApiResponse::json(StatusCode::OK, body)
}
