//! Subscriptions: create (with the validation handshake), list, renew,
//! delete, reauthorize; and delivery of change and lifecycle notifications.

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use axum::http::{Method, StatusCode, header};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::error::{ApiError, ApiResponse};
use super::ids::{self, IdForm};
use super::model::{
    ChangeNotification, ChangeNotificationCollection, ChangeType, LifecycleEventType, ResourceData,
    Subscription,
};
use super::odata::etag;
use super::routes::{ApiRequest, Route, UserRef, check_rights, resolve_user};
use super::{Delivery, Inner, Shared, collection, time};
use crate::sim::token::Claims;

/// Graph answers a subscription whose expiry is sooner with this minimum.
const MIN_MINUTES: i64 = 45;
/// Graph allows an endpoint 10 s to answer the validation request.
const VALIDATION_TIMEOUT: StdDuration = StdDuration::from_secs(10);
/// Graph retries failed deliveries for hours; the simulator keeps the shape
/// (a few attempts, growing waits) but compresses the time.
const DELIVERY_ATTEMPTS: u32 = 4;
const FIRST_RETRY: StdDuration = StdDuration::from_millis(250);

#[derive(Debug, Clone)]
pub(crate) struct SubscriptionRecord {
    pub subscription: Subscription,
    /// The mailbox key (lower-cased UPN) the resource names.
    pub mailbox: String,
    pub change_types: Vec<ChangeType>,
    pub immutable: bool,
    pub tenant: String,
    pub app: String,
    pub expires: DateTime<Utc>,
}

/// A notification ready to POST.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub url: String,
    pub subscription_id: String,
    pub kind: String,
    pub payload: Value,
}

fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        "The object was not found.",
    )
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("InvalidRequest", message)
}

/// Change notifications for one event change in `mailbox`, for every live
/// subscription that asked for this change type.
pub(crate) fn prepare(
    shared: &Shared,
    inner: &Inner,
    mailbox: &str,
    key: Uuid,
    change: ChangeType,
) -> Vec<Pending> {
    let now = shared.now();
    let Some(mb) = inner.mailboxes.get(mailbox) else {
        return Vec::new();
    };
    let Some(stored) = mb.events.get(&key) else {
        return Vec::new();
    };
    inner
        .subscriptions
        .values()
        .filter(|s| s.mailbox == mailbox && s.expires > now && s.change_types.contains(&change))
        .map(|s| {
            let form = if s.immutable {
                IdForm::Immutable
            } else {
                IdForm::Rest
            };
            let id = ids::item_id(form, key, stored.calendar);
            let resource = format!("Users/{}/Events/{id}", mb.user_id);
            let notification = ChangeNotification {
                id: None,
                subscription_id: s.subscription.id.clone().unwrap_or_default(),
                subscription_expiration_date_time: time::format_instant(s.expires),
                change_type: Some(change),
                resource: Some(resource.clone()),
                resource_data: Some(ResourceData {
                    odata_type: "#Microsoft.Graph.Event".into(),
                    odata_id: resource,
                    odata_etag: stored.event.change_key.as_deref().map(etag),
                    id,
                }),
                client_state: s.subscription.client_state.clone(),
                tenant_id: s.tenant.clone(),
                lifecycle_event: None,
            };
            Pending {
                url: s.subscription.notification_url.clone().unwrap_or_default(),
                subscription_id: s.subscription.id.clone().unwrap_or_default(),
                kind: change.as_str().to_string(),
                payload: to_payload(notification),
            }
        })
        .collect()
}

fn to_payload(notification: ChangeNotification) -> Value {
    serde_json::to_value(ChangeNotificationCollection {
        value: vec![notification],
        validation_tokens: None,
    })
    .unwrap_or(Value::Null)
}

/// Prepares and sends the notifications for one change.
pub(crate) fn notify(
    shared: &Arc<Shared>,
    inner: &mut Inner,
    mailbox: &str,
    key: Uuid,
    change: ChangeType,
) {
    let pending = prepare(shared, inner, mailbox, key, change);
    send(shared, inner, pending);
}

/// Delivers in the background, so the change that caused it never waits.
pub(crate) fn send(shared: &Arc<Shared>, inner: &mut Inner, pending: Vec<Pending>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        for p in pending {
            inner.deliveries.push(Delivery {
                subscription_id: p.subscription_id,
                url: p.url,
                kind: p.kind,
                attempt: 0,
                status: None,
                error: Some("no async runtime to deliver on".into()),
                latency_ms: 0,
                at: time::format_instant(shared.now()),
            });
        }
        return;
    };
    for p in pending {
        runtime.spawn(deliver(shared.clone(), p));
    }
}

async fn deliver(shared: Arc<Shared>, pending: Pending) {
    let mut wait = FIRST_RETRY;
    for attempt in 1..=DELIVERY_ATTEMPTS {
        let started = Instant::now();
        let result = shared
            .http
            .post(&pending.url)
            .json(&pending.payload)
            .send()
            .await;
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let (status, error) = match result {
            Ok(response) => (Some(response.status().as_u16()), None),
            Err(e) if e.is_timeout() => (None, Some("timed out after 3 s".to_string())),
            Err(e) => (None, Some(format!("delivery failed: {e}"))),
        };
        let delivered = status.is_some_and(|s| (200..300).contains(&s));
        shared.lock().deliveries.push(Delivery {
            subscription_id: pending.subscription_id.clone(),
            url: pending.url.clone(),
            kind: pending.kind.clone(),
            attempt,
            status,
            error,
            latency_ms,
            at: time::format_instant(shared.now()),
        });
        if delivered {
            return;
        }
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
}

/// Sends a lifecycle notification (on demand from the control API).
pub(crate) fn lifecycle(
    shared: &Arc<Shared>,
    inner: &mut Inner,
    id: &str,
    event: LifecycleEventType,
) -> bool {
    let Some(record) = inner.subscriptions.get(id).cloned() else {
        return false;
    };
    let subscription = &record.subscription;
    let notification = ChangeNotification {
        id: None,
        subscription_id: id.to_string(),
        subscription_expiration_date_time: time::format_instant(record.expires),
        change_type: None,
        resource: None,
        resource_data: None,
        client_state: subscription.client_state.clone(),
        tenant_id: record.tenant.clone(),
        lifecycle_event: Some(event),
    };
    let url = subscription
        .lifecycle_notification_url
        .clone()
        .or_else(|| subscription.notification_url.clone())
        .unwrap_or_default();
    if event == LifecycleEventType::SubscriptionRemoved {
        inner.subscriptions.remove(id);
    }
    let pending = Pending {
        url,
        subscription_id: id.to_string(),
        kind: event.as_str().to_string(),
        payload: to_payload(notification),
    };
    send(shared, inner, vec![pending]);
    true
}

/// POSTs `?validationToken=` and checks the answer as Graph does: 200,
/// `text/plain`, body equal to the decoded token.
async fn validate_endpoint(shared: &Shared, endpoint: &str) -> Result<(), ApiError> {
    let failed = |why: &str| {
        ApiError::bad_request(
            "ValidationError",
            format!("Subscription validation request failed. {why}"),
        )
    };
    let mut url = url::Url::parse(endpoint)
        .map_err(|_| invalid(format!("'{endpoint}' is not a valid URL.")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!("'{endpoint}' must be an http(s) URL.")));
    }
    let token = format!(
        "Validation: Testing client application reachability for subscription Request-Id: {}",
        Uuid::new_v4()
    );
    url.query_pairs_mut().append_pair("validationToken", &token);
    let response = shared
        .http
        .post(url)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .timeout(VALIDATION_TIMEOUT)
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                failed("The notification endpoint did not answer within 10 seconds.")
            } else {
                failed("The notification endpoint could not be reached.")
            }
        })?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(failed(
            "Notification endpoint must respond with 200 OK to validation request.",
        ));
    }
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("text/plain"));
    if !plain {
        return Err(failed("Response must have Content-Type text/plain."));
    }
    let body = response.text().await.unwrap_or_default();
    if body != token {
        return Err(failed(
            "Response must exactly match validationToken query parameter.",
        ));
    }
    Ok(())
}

/// The mailbox a subscription resource names (`/users/{id}/events`,
/// `/me/events`, optionally `/calendar/events`).
fn resource_user(resource: &str) -> Option<UserRef> {
    let segments: Vec<&str> = resource.trim_matches('/').split('/').collect();
    let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    match segments.as_slice() {
        [me, e] if eq(me, "me") && eq(e, "events") => Some(UserRef::Me),
        [me, c, e] if eq(me, "me") && eq(c, "calendar") && eq(e, "events") => Some(UserRef::Me),
        [u, id, e] if eq(u, "users") && eq(e, "events") => Some(UserRef::User((*id).to_string())),
        [u, id, c, e] if eq(u, "users") && eq(c, "calendar") && eq(e, "events") => {
            Some(UserRef::User((*id).to_string()))
        }
        _ => None,
    }
}

fn expiry(shared: &Shared, raw: Option<&str>) -> Result<DateTime<Utc>, ApiError> {
    let raw = raw.ok_or_else(|| invalid("expirationDateTime is required."))?;
    let requested = time::parse_instant(raw)
        .ok_or_else(|| invalid(format!("'{raw}' is not a valid expirationDateTime.")))?;
    let now = shared.now();
    let max = shared.lock().settings.max_subscription_minutes;
    if requested <= now {
        return Err(invalid("Subscription expiration must be in the future."));
    }
    let latest = now
        .checked_add_signed(Duration::minutes(max))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    if requested > latest {
        return Err(ApiError::bad_request(
            "ExtensionError",
            format!("Subscription expiration can only be {max} minutes in the future."),
        ));
    }
    Ok(requested.max(now + Duration::minutes(MIN_MINUTES)))
}

fn parse_change_types(raw: Option<&str>) -> Result<Vec<ChangeType>, ApiError> {
    let raw = raw
        .filter(|r| !r.trim().is_empty())
        .ok_or_else(|| invalid("changeType is required."))?;
    raw.split(',')
        .map(|part| {
            serde_json::from_value::<ChangeType>(Value::String(part.trim().to_string()))
                .map_err(|_| invalid(format!("'{}' is not a valid changeType.", part.trim())))
        })
        .collect()
}

fn render(shared: &Shared, record: &SubscriptionRecord) -> Value {
    let mut subscription = record.subscription.clone();
    subscription.expiration_date_time = Some(time::format_instant(record.expires));
    subscription.odata_context = Some(format!(
        "{}/v1.0/$metadata#subscriptions/$entity",
        shared.base
    ));
    serde_json::to_value(subscription).unwrap_or(Value::Null)
}

/// The caller's live subscription `id`.
fn owned(shared: &Shared, caller: &Claims, id: &str) -> Result<SubscriptionRecord, ApiError> {
    let now = shared.now();
    let mut inner = shared.lock();
    inner.subscriptions.retain(|_, s| s.expires > now);
    inner
        .subscriptions
        .get(id)
        .filter(|s| s.app == caller.appid)
        .cloned()
        .ok_or_else(not_found)
}

pub(crate) async fn handle(
    shared: &Arc<Shared>,
    caller: &Claims,
    route: Route,
    request: ApiRequest,
) -> Result<ApiResponse, ApiError> {
    match (route, request.method.clone()) {
        (Route::Subscriptions, Method::POST) => create(shared, caller, &request).await,
        (Route::Subscriptions, Method::GET) => {
            let now = shared.now();
            let inner = shared.lock();
            let value = inner
                .subscriptions
                .values()
                .filter(|s| s.app == caller.appid && s.expires > now)
                .map(|s| {
                    let mut v = render(shared, s);
                    if let Value::Object(map) = &mut v {
                        map.remove("@odata.context");
                    }
                    v
                })
                .collect();
            Ok(ApiResponse::json(
                StatusCode::OK,
                collection(
                    format!("{}/v1.0/$metadata#subscriptions", shared.base),
                    value,
                ),
            ))
        }
        (Route::Subscription(id), Method::GET) => {
            let record = owned(shared, caller, &id)?;
            Ok(ApiResponse::json(StatusCode::OK, render(shared, &record)))
        }
        (Route::Subscription(id), Method::PATCH) => renew(shared, caller, &id, &request).await,
        (Route::Subscription(id), Method::DELETE) => {
            owned(shared, caller, &id)?;
            shared.lock().subscriptions.remove(&id);
            Ok(ApiResponse::no_content())
        }
        (Route::Reauthorize(id), Method::POST) => {
            owned(shared, caller, &id)?;
            Ok(ApiResponse::no_content())
        }
        (_, method) => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "Request_BadRequest",
            format!("The HTTP method '{method}' is not allowed for this resource."),
        )),
    }
}

async fn create(
    shared: &Arc<Shared>,
    caller: &Claims,
    request: &ApiRequest,
) -> Result<ApiResponse, ApiError> {
    let body: Subscription = serde_json::from_slice(&request.body)
        .map_err(|e| ApiError::from_body_error(&e, "microsoft.graph.subscription"))?;
    let change_types = parse_change_types(body.change_type.as_deref())?;
    let notification_url = body
        .notification_url
        .clone()
        .ok_or_else(|| invalid("notificationUrl is required."))?;
    let resource = body
        .resource
        .clone()
        .ok_or_else(|| invalid("resource is required."))?;
    let user = resource_user(&resource)
        .ok_or_else(|| invalid(format!("Resource '{resource}' is not supported; subscribe to /users/{{id}}/events or /me/events.")))?;
    if body
        .client_state
        .as_ref()
        .is_some_and(|c| c.chars().count() > 128)
    {
        return Err(invalid("clientState must be at most 128 characters."));
    }
    let mailbox = resolve_user(shared, caller, &user)?;
    if let Some(upn) = &caller.upn
        && !upn.eq_ignore_ascii_case(&mailbox)
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "ExtensionError",
            "Operation: Create; Exception: [Status Code: Forbidden; Reason: Access is denied. A delegated caller can only subscribe to its own mailbox.]",
        ));
    }
    check_rights(shared, caller, &mailbox, false)?;
    let expires = expiry(shared, body.expiration_date_time.as_deref())?;
    validate_endpoint(shared, &notification_url).await?;
    if let Some(lifecycle_url) = &body.lifecycle_notification_url {
        validate_endpoint(shared, lifecycle_url).await?;
    }
    let creator = {
        let inner = shared.lock();
        caller
            .upn
            .as_ref()
            .and_then(|u| inner.mailbox_key(u))
            .and_then(|k| inner.mailboxes.get(&k).map(|m| m.user_id.clone()))
    };
    let id = Uuid::new_v4().to_string();
    let subscription = Subscription {
        odata_context: None,
        odata_type: None,
        id: Some(id.clone()),
        resource: Some(resource),
        application_id: Some(caller.appid.clone()),
        change_type: body.change_type.clone(),
        client_state: body.client_state.clone(),
        notification_url: Some(notification_url),
        notification_query_options: None,
        lifecycle_notification_url: body.lifecycle_notification_url.clone(),
        expiration_date_time: None,
        creator_id: Some(creator.unwrap_or_else(|| caller.appid.clone())),
        include_resource_data: body.include_resource_data,
        latest_supported_tls_version: Some(
            body.latest_supported_tls_version
                .clone()
                .unwrap_or_else(|| "v1_2".into()),
        ),
        encryption_certificate: None,
        encryption_certificate_id: None,
        notification_url_app_id: None,
    };
    let record = SubscriptionRecord {
        subscription,
        mailbox,
        change_types,
        immutable: request.prefs().immutable,
        tenant: caller.tid.clone(),
        app: caller.appid.clone(),
        expires,
    };
    let value = render(shared, &record);
    shared.lock().subscriptions.insert(id, record);
    Ok(ApiResponse::json(StatusCode::CREATED, value))
}

async fn renew(
    shared: &Arc<Shared>,
    caller: &Claims,
    id: &str,
    request: &ApiRequest,
) -> Result<ApiResponse, ApiError> {
    let raw: Map<String, Value> =
        serde_json::from_slice(&request.body).map_err(|_| ApiError::invalid_json())?;
    let body: Subscription = serde_json::from_value(Value::Object(raw.clone()))
        .map_err(|e| ApiError::from_body_error(&e, "microsoft.graph.subscription"))?;
    if let Some(key) = raw.keys().find(|k| {
        !matches!(
            k.as_str(),
            "expirationDateTime" | "notificationUrl" | "@odata.type"
        )
    }) {
        return Err(invalid(format!(
            "Property '{key}' cannot be updated on a subscription."
        )));
    }
    let mut record = owned(shared, caller, id)?;
    if body.expiration_date_time.is_some() {
        record.expires = expiry(shared, body.expiration_date_time.as_deref())?;
    }
    if let Some(url) = body.notification_url {
        validate_endpoint(shared, &url).await?;
        record.subscription.notification_url = Some(url);
    }
    let value = render(shared, &record);
    shared.lock().subscriptions.insert(id.to_string(), record);
    Ok(ApiResponse::json(StatusCode::OK, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_resources_name_their_mailbox() {
        assert_eq!(resource_user("/me/events"), Some(UserRef::Me));
        assert_eq!(
            resource_user("users/adele@contoso.com/calendar/events"),
            Some(UserRef::User("adele@contoso.com".into()))
        );
        assert_eq!(resource_user("/users/x/messages"), None);
        assert_eq!(
            parse_change_types(Some("created, Updated")).unwrap(),
            [ChangeType::Created, ChangeType::Updated]
        );
        assert!(parse_change_types(Some("created,moved")).is_err());
    }
}
