//! Graph's notification payloads: parsing and verification, as pure
//! functions of the body and a lookup of halosync's subscriptions.
//!
//! A body is `{"value": [item, …]}`; one body may carry items of several
//! subscriptions, change notifications (`changeType`) and lifecycle
//! notifications (`lifecycleEvent`). Each item must name a subscription
//! halosync holds and echo that subscription's clientState, compared by
//! SHA-256 in constant time; every other item is dropped and counted, never
//! acted on. A clientState is never kept beyond its hashing, nor logged.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The most items one body may carry. Graph batches far fewer; a larger
/// array is not a Graph delivery.
pub const MAX_ITEMS: usize = 1000;

/// Why a whole body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("the body is not JSON ({0})")]
    NotJson(String),
    #[error("the body is not a notification collection ({{\"value\": [...]}})")]
    NotACollection,
    #[error("the collection is empty")]
    Empty,
    #[error("the collection has {0} items; at most {MAX_ITEMS} are accepted")]
    TooManyItems(usize),
}

/// A lifecycle notification's event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LifecycleEvent {
    /// Reauthorize (or renew) soon, or delivery pauses.
    ReauthorizationRequired,
    /// Graph deleted the subscription: recreate it and resync.
    SubscriptionRemoved,
    /// Notifications were lost: resync.
    Missed,
}

impl LifecycleEvent {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "reauthorizationRequired" => Self::ReauthorizationRequired,
            "subscriptionRemoved" => Self::SubscriptionRemoved,
            "missed" => Self::Missed,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReauthorizationRequired => "reauthorizationRequired",
            Self::SubscriptionRemoved => "subscriptionRemoved",
            Self::Missed => "missed",
        }
    }
}

/// What a verified item asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationKind {
    /// An item in the mailbox was created, updated or deleted.
    Change,
    Lifecycle(LifecycleEvent),
}

/// A subscription halosync holds, as the verifier needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownSubscription {
    pub subscription_id: String,
    pub agent_id: i64,
    pub mailbox: String,
    /// SHA-256 of the clientState it was created with.
    pub client_state_hash: [u8; 32],
}

/// An item that named a known subscription and echoed its clientState.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub subscription: KnownSubscription,
    pub kind: NotificationKind,
    /// Identifies the notification across Graph's redeliveries; `None`
    /// when nothing in it tells two distinct changes apart.
    pub dedup_key: Option<[u8; 32]>,
}

/// Why an item was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Not an object with a `subscriptionId` string.
    MalformedItem,
    UnknownSubscription,
    /// Missing or different from the subscription's.
    WrongClientState,
    /// Neither a known lifecycle event nor a change.
    UnknownLifecycleEvent,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MalformedItem => "malformed item",
            Self::UnknownSubscription => "unknown subscription",
            Self::WrongClientState => "clientState mismatch",
            Self::UnknownLifecycleEvent => "unknown lifecycle event",
        }
    }
}

/// A dropped item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub subscription_id: Option<String>,
    pub reason: DropReason,
}

/// Every item of a body, sorted into verified and dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verification {
    pub verified: Vec<Verified>,
    pub dropped: Vec<Dropped>,
}

impl Verification {
    pub fn item_count(&self) -> usize {
        self.verified.len() + self.dropped.len()
    }
}

/// One item as Graph sends it; unknown fields are ignored so that a new
/// Graph property does not break delivery.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireItem {
    subscription_id: String,
    #[serde(default)]
    client_state: Option<SecretString>,
    #[serde(default)]
    change_type: Option<String>,
    #[serde(default)]
    lifecycle_event: Option<String>,
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    resource_data: Option<Value>,
    /// The notification's own id, when Graph sends one.
    #[serde(default)]
    id: Option<String>,
}

/// An item before verification: either the parsed item or what little
/// could be read from it.
pub struct Item(Result<WireItem, Option<String>>);

impl std::fmt::Debug for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Ok(item) => f
                .debug_struct("Item")
                .field("subscription_id", &item.subscription_id)
                .finish_non_exhaustive(),
            Err(id) => f.debug_tuple("MalformedItem").field(id).finish(),
        }
    }
}

impl Item {
    /// The subscription the item names, if it names one.
    pub fn subscription_id(&self) -> Option<&str> {
        match &self.0 {
            Ok(item) => Some(&item.subscription_id),
            Err(id) => id.as_deref(),
        }
    }
}

/// Reads a body into its items; fails only when it is not a collection.
pub fn parse(body: &[u8]) -> Result<Vec<Item>, Malformed> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| Malformed::NotJson(describe(&e)))?;
    let Some(Value::Array(items)) = value.get("value") else {
        return Err(Malformed::NotACollection);
    };
    if items.is_empty() {
        return Err(Malformed::Empty);
    }
    if items.len() > MAX_ITEMS {
        return Err(Malformed::TooManyItems(items.len()));
    }
    Ok(items
        .iter()
        .map(|item| {
            Item(WireItem::deserialize(item).map_err(|_| {
                item.get("subscriptionId")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            }))
        })
        .collect())
}

/// Where and what kind of JSON error, without quoting the body.
fn describe(error: &serde_json::Error) -> String {
    let kind = match error.classify() {
        serde_json::error::Category::Io => "read error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected data",
        serde_json::error::Category::Eof => "truncated",
    };
    format!("{kind} at line {} column {}", error.line(), error.column())
}

/// Checks every item against the subscription it names. `lookup` finds a
/// subscription by id (its error aborts the verification).
pub fn verify<E>(
    items: Vec<Item>,
    mut lookup: impl FnMut(&str) -> Result<Option<KnownSubscription>, E>,
) -> Result<Verification, E> {
    let mut verification = Verification::default();
    for Item(item) in items {
        let item = match item {
            Ok(item) => item,
            Err(subscription_id) => {
                verification.dropped.push(Dropped {
                    subscription_id,
                    reason: DropReason::MalformedItem,
                });
                continue;
            }
        };
        let drop = |reason| Dropped {
            subscription_id: Some(item.subscription_id.clone()),
            reason,
        };
        let Some(subscription) = lookup(&item.subscription_id)? else {
            verification
                .dropped
                .push(drop(DropReason::UnknownSubscription));
            continue;
        };
        let state_matches = item
            .client_state
            .as_ref()
            .is_some_and(|received| matches(received, &subscription.client_state_hash));
        if !state_matches {
            verification
                .dropped
                .push(drop(DropReason::WrongClientState));
            continue;
        }
        let kind = match item.lifecycle_event.as_deref() {
            Some(event) => match LifecycleEvent::parse(event) {
                Some(event) => NotificationKind::Lifecycle(event),
                None => {
                    verification
                        .dropped
                        .push(drop(DropReason::UnknownLifecycleEvent));
                    continue;
                }
            },
            None => NotificationKind::Change,
        };
        let dedup_key = dedup_key(&item, kind);
        verification.verified.push(Verified {
            subscription,
            kind,
            dedup_key,
        });
    }
    Ok(verification)
}

/// [`parse`] then [`verify`].
pub fn parse_and_verify<E>(
    body: &[u8],
    lookup: impl FnMut(&str) -> Result<Option<KnownSubscription>, E>,
) -> Result<Result<Verification, E>, Malformed> {
    parse(body).map(|items| verify(items, lookup))
}

/// SHA-256 of a clientState: what the store keeps.
pub fn client_state_hash(client_state: &SecretString) -> [u8; 32] {
    Sha256::digest(client_state.expose_secret().as_bytes()).into()
}

/// Compares in constant time, so the answer's timing says nothing about
/// how much of a guessed clientState was right.
fn matches(received: &SecretString, stored: &[u8; 32]) -> bool {
    client_state_hash(received).ct_eq(stored).into()
}

/// A change is identified by the notification's id, or by its
/// subscription, change type, item and version (`@odata.etag`); without a
/// version two updates of one item would look alike, so they get no key.
/// Lifecycle events are never deduplicated: acting twice is harmless.
fn dedup_key(item: &WireItem, kind: NotificationKind) -> Option<[u8; 32]> {
    if kind != NotificationKind::Change {
        return None;
    }
    let mut hasher = Sha256::new();
    let mut part = |text: &str| {
        hasher.update((text.len() as u64).to_be_bytes());
        hasher.update(text.as_bytes());
    };
    part(&item.subscription_id);
    if let Some(id) = &item.id {
        part("id");
        part(id);
    } else {
        let etag = item
            .resource_data
            .as_ref()
            .and_then(|data| data.get("@odata.etag"))
            .and_then(Value::as_str);
        let change_type = item.change_type.as_deref().unwrap_or_default();
        if etag.is_none() && change_type != "deleted" {
            return None;
        }
        part("change");
        part(change_type);
        part(item.resource.as_deref().unwrap_or_default());
        part(etag.unwrap_or_default());
    }
    Some(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn known(id: &str, secret: &str) -> KnownSubscription {
        KnownSubscription {
            subscription_id: id.into(),
            agent_id: 2,
            mailbox: "leah@contoso.com".into(),
            client_state_hash: client_state_hash(&SecretString::from(secret)),
        }
    }

    fn lookup(id: &str) -> Result<Option<KnownSubscription>, ()> {
        Ok((id == "sub-1").then(|| known("sub-1", "right")))
    }

    fn change(client_state: &str, etag: &str) -> Value {
        json!({"subscriptionId": "sub-1", "clientState": client_state, "changeType": "updated",
               "tenantId": "t", "resource": "Users/u/Events/e1",
               "resourceData": {"@odata.type": "#Microsoft.Graph.Event", "id": "e1", "@odata.etag": etag}})
    }

    fn run(body: &Value) -> Verification {
        parse_and_verify(body.to_string().as_bytes(), lookup)
            .unwrap()
            .unwrap()
    }

    #[test]
    fn only_items_with_their_subscriptions_client_state_are_verified() {
        let body = json!({"value": [
            change("right", "W/\"1\""),
            change("wrong", "W/\"1\""),
            {"subscriptionId": "sub-1", "changeType": "updated"},
            {"subscriptionId": "sub-9", "clientState": "right"},
            {"subscriptionId": 5},
            {"subscriptionId": "sub-1", "clientState": "right", "lifecycleEvent": "missed"},
            {"subscriptionId": "sub-1", "clientState": "right", "lifecycleEvent": "explode"},
        ]});
        let verification = run(&body);
        let kinds: Vec<_> = verification.verified.iter().map(|v| v.kind).collect();
        assert_eq!(
            kinds,
            [
                NotificationKind::Change,
                NotificationKind::Lifecycle(LifecycleEvent::Missed)
            ]
        );
        let reasons: Vec<_> = verification.dropped.iter().map(|d| d.reason).collect();
        assert_eq!(
            reasons,
            [
                DropReason::WrongClientState,
                DropReason::WrongClientState,
                DropReason::UnknownSubscription,
                DropReason::MalformedItem,
                DropReason::UnknownLifecycleEvent,
            ]
        );
        assert_eq!(verification.item_count(), 7);
    }

    #[test]
    fn bodies_that_are_not_collections_are_malformed() {
        for (body, expected) in [
            (&b"{"[..], "truncated"),
            (b"[1,2]", "not a notification collection"),
            (br#"{"value": {}}"#, "not a notification collection"),
            (br#"{"value": []}"#, "empty"),
        ] {
            let error = parse(body).unwrap_err();
            assert!(error.to_string().contains(expected), "{error}");
        }
        let many = json!({"value": vec![json!({}); MAX_ITEMS + 1]});
        assert_eq!(
            parse(many.to_string().as_bytes()).unwrap_err(),
            Malformed::TooManyItems(MAX_ITEMS + 1)
        );
    }

    #[test]
    fn redeliveries_share_a_key_and_distinct_versions_do_not() {
        let key = |body: Value| run(&json!({"value": [body]})).verified[0].dedup_key;
        let first = key(change("right", "W/\"1\""));
        assert!(first.is_some());
        assert_eq!(first, key(change("right", "W/\"1\"")));
        assert_ne!(first, key(change("right", "W/\"2\"")));
        let mut unversioned = change("right", "");
        unversioned["resourceData"]
            .as_object_mut()
            .unwrap()
            .remove("@odata.etag");
        assert_eq!(key(unversioned), None, "two such updates look alike");
    }

    #[test]
    fn a_lookup_failure_aborts_verification() {
        let body = json!({"value": [change("right", "x")]}).to_string();
        let result = parse_and_verify(body.as_bytes(), |_| {
            Err::<Option<KnownSubscription>, _>("db down")
        });
        assert_eq!(result.unwrap().unwrap_err(), "db down");
    }
}
