//! Users, events and the calendar view.

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::client::{Call, GraphClient, decode};
use super::error::GraphError;
use super::model::{Event, HALO_ID_PROPERTY, User};

/// Events asked for per page (`Prefer: odata.maxpagesize`) of a listing
/// or delta round. Graph's default is 10, which makes a 500-event calendar
/// 50 requests; Graph may still send more than asked when a series expands
/// (microsoftgraph/msgraph-sdk-dotnet#3070), which paging copes with.
pub const PAGE_SIZE: u32 = 100;

/// The `@odata.nextLink`s one listing followed. Graph has been seen to send
/// the same link again and again (msgraph-sdk-dotnet#3070); a link seen
/// twice ends the listing with an error instead of looping for ever.
#[derive(Debug, Default)]
pub(crate) struct FollowedLinks(std::collections::HashSet<String>);

impl FollowedLinks {
    /// The URL to request for `link`, or an error when it was followed before.
    pub(crate) fn next(
        &mut self,
        client: &GraphClient,
        link: &str,
        mailbox: &str,
    ) -> Result<url::Url, GraphError> {
        if !self.0.insert(link.to_string()) {
            return Err(decode(
                mailbox,
                "a paged listing",
                "Graph sent a next-page link it had sent before; stopped instead of looping",
            ));
        }
        client.link(link, mailbox)
    }
}

/// A UTC time window `[start, end)` for calendarView and delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Window {
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        Self { start, end }
    }

    pub(crate) fn query(&self) -> [(&'static str, String); 2] {
        let format = |at: DateTime<Utc>| at.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        [
            ("startDateTime", format(self.start)),
            ("endDateTime", format(self.end)),
        ]
    }

    /// Whether `event` overlaps the window; an event whose times cannot be
    /// read is kept, so nothing is dropped silently.
    pub fn overlaps(&self, event: &Event) -> bool {
        match (event.start_utc(), event.end_utc()) {
            (Ok(Some(start)), Ok(Some(end))) => start < self.end && end > self.start,
            _ => true,
        }
    }
}

/// One page of a collection.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Page<T> {
    #[serde(default = "Vec::new")]
    pub value: Vec<T>,
    #[serde(default, rename = "@odata.nextLink")]
    pub next_link: Option<String>,
    #[serde(default, rename = "@odata.deltaLink")]
    pub delta_link: Option<String>,
}

/// A stored id and the immutable id Graph translated it to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TranslatedId {
    pub source_id: String,
    #[serde(default)]
    pub target_id: Option<String>,
}

/// Graph accepts at most this many ids per `translateExchangeIds` call.
pub const MAX_TRANSLATE_IDS: usize = 1000;

/// `$expand` that reads back halosync's Halo id property.
fn expand_halo_id() -> String {
    format!("singleValueExtendedProperties($filter=id eq '{HALO_ID_PROPERTY}')")
}

impl GraphClient {
    /// `GET /users/{mailbox}`: does the user exist, and may we see it.
    pub async fn user(&self, mailbox: &str) -> Result<User, GraphError> {
        let url = self.user_url(mailbox, &[]);
        self.send_json(Call::new(Method::GET, url, Some(mailbox)))
            .await
    }

    /// One event, with its Halo id property read back.
    pub async fn event(&self, mailbox: &str, id: &str) -> Result<Event, GraphError> {
        let mut url = self.user_url(mailbox, &["events", id]);
        url.query_pairs_mut()
            .append_pair("$expand", &expand_halo_id());
        self.send_json(Call::new(Method::GET, url, Some(mailbox)))
            .await
    }

    /// Creates `event` in the mailbox's default calendar. `transaction_id`
    /// (stable for this logical create, e.g. derived from the Halo id) lets
    /// Graph drop a replay, which is what makes retrying the POST safe.
    pub async fn create_event(
        &self,
        mailbox: &str,
        event: &Event,
        transaction_id: &str,
    ) -> Result<Event, GraphError> {
        let mut body = event.clone();
        body.transaction_id = Some(transaction_id.to_string());
        let url = self.user_url(mailbox, &["events"]);
        let mut call = Call::new(Method::POST, url, Some(mailbox)).json(to_json(mailbox, &body)?);
        call.replay_safe = true;
        self.send_json(call).await
    }

    /// PATCHes the properties set in `changes`. With `etag` (the stored
    /// `@odata.etag`) a concurrent edit fails as [`GraphError::Conflict`]
    /// instead of being overwritten, and the PATCH may be retried.
    pub async fn update_event(
        &self,
        mailbox: &str,
        id: &str,
        changes: &Event,
        etag: Option<&str>,
    ) -> Result<Event, GraphError> {
        let url = self.user_url(mailbox, &["events", id]);
        let mut call =
            Call::new(Method::PATCH, url, Some(mailbox)).json(to_json(mailbox, changes)?);
        call.if_match = etag;
        self.send_json(call).await
    }

    /// Deletes an event; with `etag`, only the version halosync last saw.
    pub async fn delete_event(
        &self,
        mailbox: &str,
        id: &str,
        etag: Option<&str>,
    ) -> Result<(), GraphError> {
        let url = self.user_url(mailbox, &["events", id]);
        let mut call = Call::new(Method::DELETE, url, Some(mailbox));
        call.if_match = etag;
        self.send(call).await.map(drop)
    }

    /// The events halosync stamped with `halo_id` (normally one), for
    /// rebuilding a link the store lost.
    pub async fn events_with_halo_id(
        &self,
        mailbox: &str,
        halo_id: i64,
    ) -> Result<Vec<Event>, GraphError> {
        let mut url = self.user_url(mailbox, &["events"]);
        url.query_pairs_mut()
            .append_pair(
                "$filter",
                &format!(
                    "singleValueExtendedProperties/Any(ep: ep/id eq '{HALO_ID_PROPERTY}' and ep/value eq '{halo_id}')"
                ),
            )
            .append_pair("$expand", &expand_halo_id());
        self.collect_pages(mailbox, url).await
    }

    /// The events of one meeting (or occurrence) in `mailbox`: the
    /// organizer's event in the organizer's mailbox, an attendee's copy in
    /// theirs. Each copy has its own id; the iCalUId is what they share.
    pub async fn events_with_ical_uid(
        &self,
        mailbox: &str,
        ical_uid: &str,
    ) -> Result<Vec<Event>, GraphError> {
        let mut url = self.user_url(mailbox, &["events"]);
        url.query_pairs_mut()
            .append_pair(
                "$filter",
                &format!("iCalUId eq '{}'", ical_uid.replace('\'', "''")),
            )
            .append_pair("$expand", &expand_halo_id());
        self.collect_pages(mailbox, url).await
    }

    /// Every occurrence, exception and single event overlapping `window`,
    /// with halosync's Halo-id marker read back.
    pub async fn calendar_view(
        &self,
        mailbox: &str,
        window: Window,
    ) -> Result<Vec<Event>, GraphError> {
        let mut url = self.user_url(mailbox, &["calendarView"]);
        url.query_pairs_mut()
            .extend_pairs(window.query())
            .append_pair("$expand", &expand_halo_id());
        self.collect_pages(mailbox, url).await
    }

    /// Follows `@odata.nextLink` from `url` to the end, [`PAGE_SIZE`] events
    /// a page.
    pub(crate) async fn collect_pages(
        &self,
        mailbox: &str,
        url: url::Url,
    ) -> Result<Vec<Event>, GraphError> {
        let mut all = Vec::new();
        let mut followed = FollowedLinks::default();
        let mut next = Some(url);
        while let Some(url) = next.take() {
            let mut call = Call::new(Method::GET, url, Some(mailbox));
            call.max_page_size = Some(PAGE_SIZE);
            let page: Page<Event> = self.send_json(call).await?;
            all.extend(page.value);
            next = page
                .next_link
                .map(|link| followed.next(self, &link, mailbox))
                .transpose()?;
        }
        Ok(all)
    }

    /// Translates stored (REST) ids of `mailbox` to immutable ids, at most
    /// [`MAX_TRANSLATE_IDS`] per call (longer lists are split).
    pub async fn translate_exchange_ids(
        &self,
        mailbox: &str,
        ids: &[String],
    ) -> Result<Vec<TranslatedId>, GraphError> {
        let mut translated = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(MAX_TRANSLATE_IDS) {
            let url = self.user_url(mailbox, &["translateExchangeIds"]);
            let mut call = Call::new(Method::POST, url, Some(mailbox)).json(json!({
                "inputIds": chunk,
                "sourceIdType": "restId",
                "targetIdType": "restImmutableEntryId",
            }));
            // A translation changes nothing, so a replay is harmless.
            call.replay_safe = true;
            let page: Page<TranslatedId> = self.send_json(call).await?;
            translated.extend(page.value);
        }
        Ok(translated)
    }
}

fn to_json(mailbox: &str, value: &impl serde::Serialize) -> Result<serde_json::Value, GraphError> {
    serde_json::to_value(value).map_err(|e| decode(mailbox, "a request body", e))
}
