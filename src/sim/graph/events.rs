//! The event operations: list, get, create, update, delete, instances,
//! calendarView, calendars and translateExchangeIds.
//!
//! Each mutation also records the invitations Exchange would send, brings
//! the attendees' copies of a meeting in line (`meetings`) and hands the
//! change to the notifier, whoever made it (an API caller or `act()`).

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::error::{ApiError, ApiResponse};
use super::ids::{self, IdForm};
use super::model::{ChangeType, Event, ExchangeIdFormat, SingleValueExtendedProperty};
use super::odata::{Presentation, etag, matches, page, parse_filter, window, with_prefs};
use super::routes::{ApiRequest, MailboxAccess, Route, UserRef, resolve_user};
use super::store::{self, CALENDAR_NAMES, Instance, Mailbox, PRIMARY_CALENDAR, Target};
use super::{Inner, Invitation, Shared, collection, meetings, rules, subscriptions, time};
use crate::sim::token::Claims;

fn user_json(mailbox: &Mailbox) -> Value {
    json!({
        "id": mailbox.user_id,
        "userPrincipalName": mailbox.upn,
        "displayName": mailbox.display_name,
        "mail": mailbox.upn,
    })
}

/// `GET /users`: every seeded mailbox's user, paged like Graph.
pub(crate) fn list_users(
    shared: &Arc<Shared>,
    request: &ApiRequest,
) -> Result<ApiResponse, ApiError> {
    let users = shared.lock().mailboxes.values().map(user_json).collect();
    page(
        request,
        &shared.base,
        format!("{}/v1.0/$metadata#users", shared.base),
        users,
    )
}

pub(crate) fn get_user(
    shared: &Arc<Shared>,
    caller: &Claims,
    user: &UserRef,
) -> Result<ApiResponse, ApiError> {
    let key = resolve_user(shared, caller, user).map_err(|error| {
        let UserRef::User(name) = user else {
            return error;
        };
        // The directory, not Exchange, answers for unknown users here.
        ApiError::new(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            format!("Resource '{name}' does not exist or one of its queried reference-property objects are not present."),
        )
    })?;
    let inner = shared.lock();
    let mailbox = inner
        .mailboxes
        .get(&key)
        .ok_or_else(ApiError::item_not_found)?;
    let mut user = user_json(mailbox);
    user["@odata.context"] = json!(format!("{}/v1.0/$metadata#users/$entity", shared.base));
    Ok(ApiResponse::json(StatusCode::OK, user))
}

fn calendar_id(mailbox: &Mailbox, index: u8) -> String {
    use base64::Engine;
    let raw = format!("{}:{index}", mailbox.user_id);
    format!(
        "AAMkAGCal{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    )
}

fn calendar_index(mailbox: &Mailbox, id: &str) -> Result<u8, ApiError> {
    (0..CALENDAR_NAMES.len() as u8)
        .find(|i| {
            calendar_id(mailbox, *i) == id
                || CALENDAR_NAMES[usize::from(*i)].eq_ignore_ascii_case(id)
        })
        .ok_or_else(ApiError::item_not_found)
}

/// The `@odata.context` of a single event.
fn entity_context(shared: &Shared, upn: &str) -> Value {
    Value::String(format!(
        "{}/v1.0/$metadata#users('{upn}')/events/$entity",
        shared.base
    ))
}

fn mailbox<'a>(inner: &'a Inner, key: &str) -> Result<&'a Mailbox, ApiError> {
    inner
        .mailboxes
        .get(key)
        .ok_or_else(ApiError::item_not_found)
}

pub(crate) fn handle(
    shared: &Arc<Shared>,
    access: &MailboxAccess,
    route: Route,
    request: &ApiRequest,
) -> Result<ApiResponse, ApiError> {
    let prefs = request.prefs();
    let form = prefs.form();
    let key = access.mailbox.as_str();
    match (route, &request.method) {
        (Route::Calendars(_), &Method::GET) => {
            let inner = shared.lock();
            let mb = mailbox(&inner, key)?;
            let value = (0..CALENDAR_NAMES.len() as u8)
                .map(|i| json!({"id": calendar_id(mb, i), "name": CALENDAR_NAMES[usize::from(i)], "isDefaultCalendar": i == PRIMARY_CALENDAR}))
                .collect();
            Ok(ApiResponse::json(
                StatusCode::OK,
                collection(
                    format!(
                        "{}/v1.0/$metadata#users('{}')/calendars",
                        shared.base, mb.upn
                    ),
                    value,
                ),
            ))
        }
        (Route::Events(_, calendar), &Method::GET) => {
            let view = Presentation::from_request(request)?;
            let filter = request.query("$filter").map(parse_filter).transpose()?;
            let inner = shared.lock();
            let mb = mailbox(&inner, key)?;
            // `/events` and `/calendar/events` list the default calendar.
            let calendar = match calendar {
                Some(c) => calendar_index(mb, &c)?,
                None => PRIMARY_CALENDAR,
            };
            let mut items: Vec<(&store::StoredEvent, Instance)> = mb
                .events
                .values()
                .filter(|s| s.calendar == calendar)
                .filter_map(|s| Some((s, mb.item(s.key, form)?)))
                .filter(|(s, i)| filter.as_ref().is_none_or(|f| matches(f, i, &s.extended)))
                .collect();
            items.sort_by(|a, b| {
                a.1.event
                    .created_date_time
                    .cmp(&b.1.event.created_date_time)
                    .then(a.1.stable_id.cmp(&b.1.stable_id))
            });
            let rendered = items
                .iter()
                .map(|(s, i)| view.render(i, &s.extended))
                .collect();
            let context = format!("{}/v1.0/$metadata#users('{}')/events", shared.base, mb.upn);
            page(request, &shared.base, context, rendered)
        }
        (Route::Events(_, calendar), &Method::POST) => {
            let body = request.json()?;
            let calendar = {
                let inner = shared.lock();
                let mb = mailbox(&inner, key)?;
                calendar
                    .map(|c| calendar_index(mb, &c))
                    .transpose()?
                    .unwrap_or(PRIMARY_CALENDAR)
            };
            let value = create_event(
                shared,
                key,
                &body,
                calendar,
                &Presentation::from_request(request)?,
                form,
                true,
            )?;
            Ok(with_prefs(
                ApiResponse::json(StatusCode::CREATED, value),
                &prefs,
            ))
        }
        (Route::Event(_, id), &Method::GET) => {
            let view = Presentation::from_request(request)?;
            let inner = shared.lock();
            let mb = mailbox(&inner, key)?;
            let target = mb.resolve(&id)?;
            let (instance, extended) = find_instance(mb, target, form)?;
            let mut value = view.render(&instance, extended);
            value["@odata.context"] = entity_context(shared, &mb.upn);
            Ok(with_prefs(ApiResponse::json(StatusCode::OK, value), &prefs))
        }
        (Route::Event(_, id), &Method::PATCH) => {
            let body = request.json()?;
            let view = Presentation::from_request(request)?;
            let value = update_event(
                shared,
                key,
                &id,
                &body,
                request.header("if-match"),
                &view,
                form,
            )?;
            Ok(with_prefs(ApiResponse::json(StatusCode::OK, value), &prefs))
        }
        (Route::Event(_, id), &Method::DELETE) => {
            delete_event(shared, key, &id, request.header("if-match"))?;
            Ok(ApiResponse::no_content())
        }
        (Route::Instances(_, id), &Method::GET) => {
            let (from, to) = window(request)?;
            let view = Presentation::from_request(request)?;
            let inner = shared.lock();
            let mb = mailbox(&inner, key)?;
            let Target::Item(master) = mb.resolve(&id)? else {
                return Err(ApiError::bad_request(
                    "ErrorInvalidRequest",
                    "The id is not the id of a series master.",
                ));
            };
            let stored = mb
                .events
                .get(&master)
                .ok_or_else(ApiError::item_not_found)?;
            let rendered = mb
                .instances(master, from, to, form)
                .iter()
                .map(|i| view.render(i, &stored.extended))
                .collect();
            page(
                request,
                &shared.base,
                format!("{}/v1.0/$metadata#Collection(event)", shared.base),
                rendered,
            )
        }
        (Route::CalendarView(_), &Method::GET) => {
            let (from, to) = window(request)?;
            let view = Presentation::from_request(request)?;
            let inner = shared.lock();
            let mb = mailbox(&inner, key)?;
            let rendered = mb
                .view(from, to, form)
                .iter()
                .map(|i| view.render(i, mb.events.get(&i.series).map_or(&[][..], |s| &s.extended)))
                .collect();
            page(
                request,
                &shared.base,
                format!(
                    "{}/v1.0/$metadata#users('{}')/calendarView",
                    shared.base, mb.upn
                ),
                rendered,
            )
        }
        (Route::Translate(_), &Method::POST) => translate(shared, key, request),
        (_, method) => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "Request_BadRequest",
            format!("The HTTP method '{method}' is not allowed for this resource."),
        )),
    }
}

fn find_instance(
    mb: &Mailbox,
    target: Target,
    form: IdForm,
) -> Result<(Instance, &[SingleValueExtendedProperty]), ApiError> {
    let stored = mb
        .events
        .get(&target.master())
        .ok_or_else(ApiError::item_not_found)?;
    let instance = match target {
        Target::Item(key) => mb.item(key, form),
        Target::Occurrence(key, original) => {
            let at = DateTime::from_timestamp(original, 0).ok_or_else(ApiError::item_not_found)?;
            let far = chrono::Duration::days(400);
            mb.instances(
                key,
                at.checked_sub_signed(far).unwrap_or(at),
                at.checked_add_signed(far).unwrap_or(at),
                form,
            )
            .into_iter()
            .find(|i| {
                i.stable_id == ids::occurrence_id(IdForm::Immutable, key, stored.calendar, at)
            })
        }
    };
    Ok((
        instance.ok_or_else(ApiError::item_not_found)?,
        &stored.extended,
    ))
}

fn current_etag(mb: &Mailbox, target: Target) -> Option<String> {
    let (instance, _) = find_instance(mb, target, IdForm::Immutable).ok()?;
    instance.event.change_key.as_deref().map(etag)
}

fn check_if_match(mb: &Mailbox, target: Target, if_match: Option<&str>) -> Result<(), ApiError> {
    let Some(expected) = if_match.map(str::trim) else {
        return Ok(());
    };
    if expected == "*" {
        return Ok(());
    }
    let current = current_etag(mb, target).unwrap_or_default();
    let bare = current.trim_start_matches("W/").trim_matches('"');
    if expected == current || expected.trim_start_matches("W/").trim_matches('"') == bare {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "ErrorIrresolvableConflict",
            "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item.",
        ))
    }
}

fn record_invitation(
    inner: &mut Inner,
    mailbox: &str,
    event: &Event,
    stable_id: String,
    kind: &str,
    now: DateTime<Utc>,
) {
    let recipients = rules::attendee_addresses(event);
    if recipients.is_empty() || event.is_organizer != Some(true) {
        return;
    }
    inner.invitations.push(Invitation {
        mailbox: mailbox.to_string(),
        event_id: stable_id,
        kind: kind.to_string(),
        subject: event.subject.clone().unwrap_or_default(),
        recipients,
        at: time::format_instant(now),
    });
}

/// Creates an event and returns it rendered; a repeated `transactionId`
/// returns the first event (without new invitations or notifications).
pub(crate) fn create_event(
    shared: &Arc<Shared>,
    key: &str,
    body: &Value,
    calendar: u8,
    view: &Presentation,
    form: IdForm,
    notify: bool,
) -> Result<Value, ApiError> {
    let (_, event) = rules::parse_event_body(body)?;
    let now = shared.now();
    let mut inner = shared.lock();
    let mb = inner
        .mailboxes
        .get_mut(key)
        .ok_or_else(ApiError::item_not_found)?;
    let (event_key, created) = mb.create(event, calendar, now)?;
    let instance = mb
        .item(event_key, form)
        .ok_or_else(ApiError::item_not_found)?;
    let extended = mb
        .events
        .get(&event_key)
        .map(|s| s.extended.clone())
        .unwrap_or_default();
    let mut value = view.render(&instance, &extended);
    value["@odata.context"] = entity_context(shared, &mb.upn);
    let upn = mb.upn.clone();
    if created && notify {
        record_invitation(
            &mut inner,
            &upn,
            &instance.event,
            instance.stable_id.clone(),
            "request",
            now,
        );
        subscriptions::notify(shared, &mut inner, key, event_key, ChangeType::Created);
    }
    // A new event without attendees has no copies to make (and seeding
    // thousands of them must not scan every mailbox each time).
    if created && !rules::attendee_addresses(&instance.event).is_empty() {
        meetings::organizer_saved(shared, &mut inner, key, event_key, notify);
    }
    Ok(value)
}

pub(crate) fn update_event(
    shared: &Arc<Shared>,
    key: &str,
    id: &str,
    body: &Value,
    if_match: Option<&str>,
    view: &Presentation,
    form: IdForm,
) -> Result<Value, ApiError> {
    let (written, patch) = rules::parse_event_body(body)?;
    let now = shared.now();
    let mut inner = shared.lock();
    let mb = inner
        .mailboxes
        .get_mut(key)
        .ok_or_else(ApiError::item_not_found)?;
    let target = mb.resolve(id)?;
    check_if_match(mb, target, if_match)?;
    mb.update(target, &written, &patch, now)?;
    let (instance, extended) = find_instance(mb, target, form)?;
    let mut value = view.render(&instance, extended);
    value["@odata.context"] = entity_context(shared, &mb.upn);
    let upn = mb.upn.clone();
    record_invitation(
        &mut inner,
        &upn,
        &instance.event,
        instance.stable_id.clone(),
        "update",
        now,
    );
    subscriptions::notify(
        shared,
        &mut inner,
        key,
        target.master(),
        ChangeType::Updated,
    );
    meetings::organizer_saved(shared, &mut inner, key, target.master(), true);
    Ok(value)
}

pub(crate) fn delete_event(
    shared: &Arc<Shared>,
    key: &str,
    id: &str,
    if_match: Option<&str>,
) -> Result<(), ApiError> {
    let now = shared.now();
    let mut inner = shared.lock();
    let mb = inner
        .mailboxes
        .get_mut(key)
        .ok_or_else(ApiError::item_not_found)?;
    let target = mb.resolve(id)?;
    check_if_match(mb, target, if_match)?;
    let (before, _) = find_instance(mb, target, IdForm::Immutable)?;
    // Notifications for a deleted item carry its last identity, so compute
    // them before it is gone.
    let deleted = match target {
        Target::Item(event_key) => {
            subscriptions::prepare(shared, &inner, key, event_key, ChangeType::Deleted)
        }
        Target::Occurrence(..) => Vec::new(),
    };
    let mb = inner
        .mailboxes
        .get_mut(key)
        .ok_or_else(ApiError::item_not_found)?;
    let meeting = mb.events.get(&target.master()).cloned();
    mb.delete(target, now)?;
    let upn = mb.upn.clone();
    record_invitation(
        &mut inner,
        &upn,
        &before.event,
        before.stable_id.clone(),
        "cancellation",
        now,
    );
    match target {
        Target::Item(_) => {
            subscriptions::send(shared, &mut inner, deleted);
            if let Some(meeting) = meeting {
                meetings::organizer_deleted(shared, &mut inner, key, &meeting);
            }
        }
        // An occurrence's cancellation is an update of its master, whose
        // etag just changed.
        Target::Occurrence(master, _) => {
            subscriptions::notify(shared, &mut inner, key, master, ChangeType::Updated);
            meetings::organizer_saved(shared, &mut inner, key, master, true);
        }
    }
    Ok(())
}

/// Moves an event to another calendar of its mailbox; returns its new REST id.
pub(crate) fn move_event(
    shared: &Arc<Shared>,
    key: &str,
    id: &str,
    calendar: &str,
) -> Result<String, ApiError> {
    let now = shared.now();
    let mut inner = shared.lock();
    let mb = inner
        .mailboxes
        .get_mut(key)
        .ok_or_else(ApiError::item_not_found)?;
    let Target::Item(event_key) = mb.resolve(id)? else {
        return Err(ApiError::bad_request(
            "ErrorInvalidRequest",
            "An occurrence cannot be moved on its own.",
        ));
    };
    let index = calendar_index(mb, calendar)?;
    mb.move_to(event_key, index, now)?;
    let new_id = ids::item_id(IdForm::Rest, event_key, index);
    subscriptions::notify(shared, &mut inner, key, event_key, ChangeType::Updated);
    Ok(new_id)
}

fn translate(
    shared: &Arc<Shared>,
    key: &str,
    request: &ApiRequest,
) -> Result<ApiResponse, ApiError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Body {
        input_ids: Vec<String>,
        source_id_type: ExchangeIdFormat,
        target_id_type: ExchangeIdFormat,
    }
    let body: Body = serde_json::from_slice(&request.body)
        .map_err(|e| ApiError::from_body_error(&e, "microsoft.graph.translateExchangeIds"))?;
    if body.input_ids.len() > 1000 {
        return Err(ApiError::bad_request(
            "ErrorInvalidParameter",
            "At most 1000 ids can be translated in one request.",
        ));
    }
    let supported = |f: ExchangeIdFormat| {
        matches!(
            f,
            ExchangeIdFormat::RestId | ExchangeIdFormat::RestImmutableEntryId
        )
    };
    if !supported(body.source_id_type) {
        return Err(ApiError::bad_request(
            "ErrorInvalidParameter",
            format!(
                "The simulator translates only between restId and restImmutableEntryId, not from {}.",
                body.source_id_type.as_str()
            ),
        ));
    }
    let target_form = match body.target_id_type {
        ExchangeIdFormat::RestId => IdForm::Rest,
        ExchangeIdFormat::RestImmutableEntryId => IdForm::Immutable,
        other => {
            return Err(ApiError::bad_request(
                "ErrorInvalidParameter",
                format!(
                    "The simulator translates only between restId and restImmutableEntryId, not to {}.",
                    other.as_str()
                ),
            ));
        }
    };
    let inner = shared.lock();
    let mb = mailbox(&inner, key)?;
    let value = body
        .input_ids
        .iter()
        .map(|source| {
            let translated = ids::parse(source).and_then(|parsed| {
                let stored = mb.events.get(&parsed.key)?;
                if parsed.calendar.is_some_and(|c| c != stored.calendar) {
                    return None;
                }
                Some(match parsed.original_start.and_then(|s| DateTime::from_timestamp(s, 0)) {
                    Some(at) => ids::occurrence_id(target_form, stored.key, stored.calendar, at),
                    None => ids::item_id(target_form, stored.key, stored.calendar),
                })
            });
            match translated {
                Some(target) => json!({"sourceId": source, "targetId": target}),
                None => json!({"sourceId": source, "errorDetails": {"code": "ErrorItemNotFound", "message": "The specified object was not found in the store."}}),
            }
        })
        .collect();
    Ok(ApiResponse::json(
        StatusCode::OK,
        collection(
            format!(
                "{}/v1.0/$metadata#Collection(microsoft.graph.convertIdResult)",
                shared.base
            ),
            value,
        ),
    ))
}

/// A calendar of mailbox `key` by id or name.
pub(crate) fn calendar_index_of(
    shared: &Shared,
    key: &str,
    calendar: &str,
) -> Result<u8, ApiError> {
    let inner = shared.lock();
    calendar_index(mailbox(&inner, key)?, calendar)
}
