//! Routing, bearer-token checks, mailbox access rules, throttling and request
//! accounting: everything between the HTTP request and an operation.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, Method, StatusCode, header};
use axum::response::Response;
use chrono::Duration;
use percent_encoding::percent_decode_str;

use super::error::{ApiError, ApiResponse};
use super::ids::IdForm;
use super::store::MailboxState;
use super::{Shared, batch, delta, events, subscriptions};
use crate::sim::faults::RollingWindow;
use crate::sim::token::{Claims, TokenError};

/// The largest request body the simulator reads.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// A request as the operations see it; `$batch` builds these directly.
#[derive(Debug, Clone)]
pub(crate) struct ApiRequest {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl ApiRequest {
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Result<serde_json::Value, ApiError> {
        serde_json::from_slice(&self.body).map_err(|_| ApiError::invalid_json())
    }

    /// The `Prefer` preferences of this request.
    pub fn prefs(&self) -> Prefs {
        let mut prefs = Prefs::default();
        for value in self.headers.get_all("prefer") {
            let Ok(text) = value.to_str() else { continue };
            for part in text.split(',') {
                let Some((key, value)) = part.split_once('=') else {
                    continue;
                };
                let value = value.trim().trim_matches('"').to_string();
                match key.trim().to_ascii_lowercase().as_str() {
                    "outlook.timezone" => prefs.time_zone = Some(value),
                    "idtype" => prefs.immutable = value.eq_ignore_ascii_case("ImmutableId"),
                    "odata.maxpagesize" => prefs.max_page_size = value.parse().ok(),
                    _ => {}
                }
            }
        }
        prefs
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Prefs {
    pub time_zone: Option<String>,
    pub immutable: bool,
    pub max_page_size: Option<usize>,
}

impl Prefs {
    pub fn form(&self) -> IdForm {
        if self.immutable {
            IdForm::Immutable
        } else {
            IdForm::Rest
        }
    }

    /// The zone responses use: the preferred one if Graph knows it, else UTC.
    pub fn zone(&self) -> String {
        self.time_zone
            .clone()
            .filter(|z| super::time::zone(z).is_some())
            .unwrap_or_else(|| "UTC".into())
    }

    /// `Preference-Applied` for what this simulator honoured.
    pub fn applied(&self) -> Option<String> {
        let mut applied = Vec::new();
        if let Some(zone) = &self.time_zone {
            applied.push(format!("outlook.timezone=\"{zone}\""));
        }
        if self.immutable {
            applied.push("IdType=\"ImmutableId\"".to_string());
        }
        if let Some(size) = self.max_page_size {
            applied.push(format!("odata.maxpagesize={size}"));
        }
        (!applied.is_empty()).then(|| applied.join(", "))
    }
}

/// Whose mailbox a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UserRef {
    Me,
    User(String),
}

impl UserRef {
    /// The path prefix as the client wrote it (for links).
    pub fn path(&self) -> String {
        match self {
            Self::Me => "me".into(),
            Self::User(u) => format!(
                "users/{}",
                percent_encoding::utf8_percent_encode(u, percent_encoding::NON_ALPHANUMERIC)
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    Users,
    User(UserRef),
    Calendars(UserRef),
    /// `/events` (calendar `None`: default), `/calendar/events`,
    /// `/calendars/{id}/events`.
    Events(UserRef, Option<String>),
    Event(UserRef, String),
    Instances(UserRef, String),
    CalendarView(UserRef),
    Delta(UserRef),
    Translate(UserRef),
    Subscriptions,
    Subscription(String),
    Reauthorize(String),
    Batch,
}

impl Route {
    pub fn user(&self) -> Option<&UserRef> {
        match self {
            Self::User(u)
            | Self::Calendars(u)
            | Self::Events(u, _)
            | Self::Event(u, _)
            | Self::Instances(u, _)
            | Self::CalendarView(u)
            | Self::Delta(u)
            | Self::Translate(u) => Some(u),
            _ => None,
        }
    }
}

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Matches a path (after `/v1.0`) to a route and its template for counting.
pub(crate) fn parse_route(path: &str) -> Option<(Route, String)> {
    let trimmed = path.trim_start_matches('/');
    let rest = trimmed
        .strip_prefix("v1.0/")
        .or_else(|| (trimmed == "v1.0").then_some(""))?;
    let segments: Vec<String> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    if let [first] = s.as_slice() {
        if eq(first, "$batch") {
            return Some((Route::Batch, "/v1.0/$batch".into()));
        }
        if eq(first, "subscriptions") {
            return Some((Route::Subscriptions, "/v1.0/subscriptions".into()));
        }
        if eq(first, "users") {
            return Some((Route::Users, "/v1.0/users".into()));
        }
    }
    if let [first, id, rest @ ..] = s.as_slice()
        && eq(first, "subscriptions")
    {
        return match rest {
            [] => Some((
                Route::Subscription((*id).into()),
                "/v1.0/subscriptions/{id}".into(),
            )),
            [action] if eq(action, "reauthorize") => Some((
                Route::Reauthorize((*id).into()),
                "/v1.0/subscriptions/{id}/reauthorize".into(),
            )),
            _ => None,
        };
    }
    let (user, prefix, rest) = match s.as_slice() {
        [me, rest @ ..] if eq(me, "me") => (UserRef::Me, "/v1.0/me", rest),
        [users, u, rest @ ..] if eq(users, "users") => {
            (UserRef::User((*u).into()), "/v1.0/users/{u}", rest)
        }
        _ => return None,
    };
    let (route, suffix) = match rest {
        [] => (Route::User(user), String::new()),
        [c] if eq(c, "calendars") => (Route::Calendars(user), "/calendars".into()),
        [e] if eq(e, "events") => (Route::Events(user, None), "/events".into()),
        [c, e] if eq(c, "calendar") && eq(e, "events") => {
            (Route::Events(user, None), "/calendar/events".into())
        }
        [c, id, e] if eq(c, "calendars") && eq(e, "events") => (
            Route::Events(user, Some((*id).into())),
            "/calendars/{calendar}/events".into(),
        ),
        [e, id] if eq(e, "events") => (Route::Event(user, (*id).into()), "/events/{id}".into()),
        [c, e, id] if eq(c, "calendar") && eq(e, "events") => (
            Route::Event(user, (*id).into()),
            "/calendar/events/{id}".into(),
        ),
        [e, id, i] if eq(e, "events") && eq(i, "instances") => (
            Route::Instances(user, (*id).into()),
            "/events/{id}/instances".into(),
        ),
        [v] if eq(v, "calendarView") => (Route::CalendarView(user), "/calendarView".into()),
        [c, v] if eq(c, "calendar") && eq(v, "calendarView") => {
            (Route::CalendarView(user), "/calendar/calendarView".into())
        }
        [v, d] if eq(v, "calendarView") && eq(d, "delta") => {
            (Route::Delta(user), "/calendarView/delta".into())
        }
        [t] if eq(t, "translateExchangeIds") => {
            (Route::Translate(user), "/translateExchangeIds".into())
        }
        _ => return None,
    };
    Some((route, format!("{prefix}{suffix}")))
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(entry).with_state(shared)
}

async fn entry(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(_) => Bytes::new(),
    };
    let query = parts
        .uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let request = ApiRequest {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query,
        headers: parts.headers,
        body,
    };
    dispatch(&shared, request, true).await.into_http()
}

/// What the route counts of a `$batch`'s items end with.
pub const IN_BATCH: &str = "(in $batch)";

/// Serves one request (top-level or inside `$batch`), adding Graph's
/// correlation headers and error shape.
pub(crate) fn dispatch<'a>(
    shared: &'a Arc<Shared>,
    request: ApiRequest,
    allow_batch: bool,
) -> Pin<Box<dyn Future<Output = ApiResponse> + Send + 'a>> {
    Box::pin(async move {
        let request_id = uuid::Uuid::new_v4().to_string();
        let client_request_id = request.header("client-request-id").map(str::to_string);
        let outcome = handle(shared, request, allow_batch).await;
        let mut response = match outcome {
            Ok(response) => response,
            Err(error) => {
                let body = error.body(&request_id, client_request_id.as_deref(), shared.now());
                let mut response = ApiResponse::json(error.status, body);
                response.headers.extend(error.headers);
                response
            }
        };
        response
            .headers
            .push((HeaderName::from_static("request-id"), request_id));
        if let Some(client) = client_request_id {
            response
                .headers
                .push((HeaderName::from_static("client-request-id"), client));
        }
        response
    })
}

async fn handle(
    shared: &Arc<Shared>,
    request: ApiRequest,
    allow_batch: bool,
) -> Result<ApiResponse, ApiError> {
    let parsed = parse_route(&request.path);
    let template = parsed
        .as_ref()
        .map_or_else(|| "(unmatched)".to_string(), |(_, t)| t.clone());
    {
        // `requests` counts HTTP requests; a batch's items are counted by
        // route apart from top-level requests, so a client that batches can
        // be told from one that does not.
        let mut inner = shared.lock();
        let key = if allow_batch {
            inner.requests += 1;
            format!("{} {template}", request.method)
        } else {
            format!("{} {template} {IN_BATCH}", request.method)
        };
        *inner.by_route.entry(key).or_default() += 1;
    }
    let Some((route, _)) = parsed else {
        let segment = request
            .path
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        return Err(ApiError::bad_request(
            "BadRequest",
            format!("Resource not found for the segment '{segment}'."),
        ));
    };
    let caller = authenticate(shared, &request)?;
    match route {
        Route::Batch if allow_batch => batch::run(shared, request).await,
        Route::Batch => Err(ApiError::bad_request(
            "BadRequest",
            "Nested batch requests are not supported.",
        )),
        Route::Subscriptions | Route::Subscription(_) | Route::Reauthorize(_) => {
            subscriptions::handle(shared, &caller, route, request).await
        }
        Route::Users => events::list_users(shared, &request),
        Route::User(user) => events::get_user(shared, &caller, &user),
        route => {
            let user = route.user().cloned().unwrap_or(UserRef::Me);
            let write = request.method != Method::GET;
            let access = admit(shared, &caller, &user, write)?;
            let hold = shared.lock().settings.mailbox_hold_ms;
            if hold > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(hold)).await;
            }
            let result = match route {
                Route::Delta(user) => delta::handle(shared, &access, &user, &request),
                other => events::handle(shared, &access, other, &request),
            };
            drop(access);
            result
        }
    }
}

/// Checks the bearer token: signature, expiry, audience.
pub(crate) fn authenticate(shared: &Shared, request: &ApiRequest) -> Result<Claims, ApiError> {
    let header = request
        .header(header::AUTHORIZATION.as_str())
        .unwrap_or_default();
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .unwrap_or_default();
    if token.is_empty() {
        return Err(ApiError::invalid_token("Access token is empty."));
    }
    let claims = shared
        .tokens
        .verify(token, shared.now())
        .map_err(|e| match e {
            TokenError::Expired => {
                ApiError::invalid_token("Lifetime validation failed, the token is expired.")
            }
            TokenError::Revoked => ApiError::invalid_token("Access token has been revoked."),
            TokenError::Malformed | TokenError::BadSignature => ApiError::invalid_token(
                "Access token validation failure. Invalid signature or malformed token.",
            ),
        })?;
    let own = claims.aud.trim_end_matches('/') == shared.base;
    if !own && !is_graph_audience(&claims.aud) {
        return Err(ApiError::invalid_token(
            "Access token validation failure. Invalid audience.",
        ));
    }
    Ok(claims)
}

/// Graph roots of the national clouds (tokens name them, optionally with a
/// trailing slash or as `00000003-0000-0000-c000-000000000000`); the
/// simulator's own public base is accepted too.
fn is_graph_audience(aud: &str) -> bool {
    const ROOTS: &[&str] = &[
        "https://graph.microsoft.com",
        "https://graph.microsoft.us",
        "https://dod-graph.microsoft.us",
        "https://microsoftgraph.chinacloudapi.cn",
        "00000003-0000-0000-c000-000000000000",
    ];
    let aud = aud.trim_end_matches('/');
    ROOTS.iter().any(|root| root.eq_ignore_ascii_case(aud))
}

/// A caller admitted to a mailbox: holds one of its concurrency slots until
/// dropped.
#[derive(Debug)]
pub(crate) struct MailboxAccess {
    shared: Arc<Shared>,
    slot: (String, String),
    /// Lower-cased UPN, the key of the mailbox in the store.
    pub mailbox: String,
}

impl Drop for MailboxAccess {
    fn drop(&mut self) {
        let mut inner = self.shared.lock();
        if let Some(count) = inner.in_flight.get_mut(&self.slot) {
            *count = count.saturating_sub(1);
        }
    }
}

/// Resolves the user a path names for the caller.
pub(crate) fn resolve_user(
    shared: &Shared,
    caller: &Claims,
    user: &UserRef,
) -> Result<String, ApiError> {
    let name = match user {
        UserRef::Me => caller.upn.clone().ok_or_else(|| {
            ApiError::bad_request(
                "BadRequest",
                "/me request is only valid with delegated authentication flow.",
            )
        })?,
        UserRef::User(u) => u.clone(),
    };
    shared.lock().mailbox_key(&name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "ErrorInvalidUser",
            format!("The requested user '{name}' is invalid."),
        )
    })
}

/// Applies the mailbox's state, the caller's rights and Outlook's throttling.
pub(crate) fn admit(
    shared: &Arc<Shared>,
    caller: &Claims,
    user: &UserRef,
    write: bool,
) -> Result<MailboxAccess, ApiError> {
    let mailbox = resolve_user(shared, caller, user)?;
    check_rights(shared, caller, &mailbox, write)?;
    let slot = (caller.appid.clone(), mailbox.clone());
    let now = shared.now();
    let mut inner = shared.lock();
    let limit = inner.settings.concurrency_limit;
    let budget = inner.settings.budget_per_10_min;
    let in_flight = inner.in_flight.entry(slot.clone()).or_default();
    if *in_flight >= limit {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "ApplicationThrottled",
            "Application is over its MailboxConcurrency limit.",
        )
        .with_header(header::RETRY_AFTER, "1"));
    }
    let window = inner
        .budgets
        .entry(slot.clone())
        .or_insert_with(|| RollingWindow::new(budget, Duration::minutes(10)));
    if let Err(wait) = window.try_acquire(now) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "ApplicationThrottled",
            "Application is over its MailboxRequests limit.",
        )
        .with_header(header::RETRY_AFTER, wait.as_secs().to_string()));
    }
    *inner.in_flight.entry(slot.clone()).or_default() += 1;
    Ok(MailboxAccess {
        shared: shared.clone(),
        slot,
        mailbox,
    })
}

/// Mailbox state, app roles and delegate rights, in the order Exchange
/// checks them.
pub(crate) fn check_rights(
    shared: &Shared,
    caller: &Claims,
    mailbox: &str,
    write: bool,
) -> Result<(), ApiError> {
    let inner = shared.lock();
    let Some(mb) = inner.mailboxes.get(mailbox) else {
        return Err(ApiError::item_not_found());
    };
    if mb
        .tenant
        .as_deref()
        .is_some_and(|tenant| !tenant.eq_ignore_ascii_case(&caller.tid))
    {
        // Another tenant's user does not exist for this caller.
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "ErrorInvalidUser",
            format!("The requested user '{}' is invalid.", mb.upn),
        ));
    }
    match mb.state {
        MailboxState::Unlicensed => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "MailboxNotEnabledForRESTAPI",
                "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
            ));
        }
        MailboxState::AccessDenied => return Err(ApiError::access_denied()),
        MailboxState::Ok | MailboxState::NoDelegate => {}
    }
    match &caller.upn {
        None => {
            let allowed = caller
                .roles
                .iter()
                .any(|r| r == "Calendars.ReadWrite" || (!write && r == "Calendars.Read"));
            if !allowed {
                return Err(ApiError::access_denied());
            }
        }
        Some(upn) if upn.eq_ignore_ascii_case(&mb.upn) => {}
        Some(upn) => {
            let delegate = mb.state != MailboxState::NoDelegate
                && mb.delegates.iter().any(|d| d.eq_ignore_ascii_case(upn));
            if !delegate {
                return Err(ApiError::item_not_found());
            }
        }
    }
    Ok(())
}
