//! Mailboxes and their events: the typed event store, edits, and the
//! expansion of series into occurrences (the write rules are in `rules`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::error::ApiError;
use super::ids::{self, IdForm, ParsedId};
use super::model::{EmailAddress, Event, EventType, Recipient, SingleValueExtendedProperty};
use super::recurrence;
use super::rules;
use super::time;

/// How a mailbox answers Outlook requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailboxState {
    /// A licensed Exchange Online mailbox.
    #[default]
    Ok,
    /// No Exchange licence: `MailboxNotEnabledForRESTAPI`.
    Unlicensed,
    /// An application access policy or missing rights: `403 ErrorAccessDenied`.
    AccessDenied,
    /// Delegated callers other than the owner get `404 ErrorItemNotFound`,
    /// as when the calendar was never shared with them.
    NoDelegate,
}

pub const CALENDAR_NAMES: [&str; 2] = ["Calendar", "Other Calendar"];
/// The index of the default calendar in [`CALENDAR_NAMES`].
pub const PRIMARY_CALENDAR: u8 = 0;

/// A master or single event, its exceptions and cancelled occurrences.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub key: Uuid,
    pub calendar: u8,
    pub event: Event,
    /// Edited occurrences, by original start (unix seconds).
    pub exceptions: BTreeMap<i64, Event>,
    pub cancelled: BTreeSet<i64>,
    pub extended: Vec<SingleValueExtendedProperty>,
}

#[derive(Debug, Clone)]
pub struct Mailbox {
    pub upn: String,
    pub user_id: String,
    pub display_name: String,
    pub state: MailboxState,
    pub delegates: Vec<String>,
    /// The tenant it lives in (`None`: visible from every tenant).
    pub tenant: Option<String>,
    pub events: BTreeMap<Uuid, StoredEvent>,
    pub transactions: HashMap<String, Uuid>,
}

/// A materialized event (single, master, occurrence or exception) with its
/// UTC span, as listing and delta need it.
#[derive(Debug, Clone)]
pub struct Instance {
    pub event: Event,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Stable identity for delta bookkeeping: the immutable id.
    pub stable_id: String,
    /// The series this belongs to (its master's key), or its own key.
    pub series: Uuid,
}

/// Which stored thing an id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Item(Uuid),
    Occurrence(Uuid, i64),
}

impl Target {
    pub fn master(self) -> Uuid {
        match self {
            Self::Item(key) | Self::Occurrence(key, _) => key,
        }
    }
}

impl Mailbox {
    pub fn new(
        upn: &str,
        display_name: Option<String>,
        state: MailboxState,
        delegates: Vec<String>,
    ) -> Self {
        let display_name =
            display_name.unwrap_or_else(|| upn.split('@').next().unwrap_or(upn).to_string());
        Self {
            upn: upn.to_string(),
            user_id: Uuid::new_v4().to_string(),
            display_name,
            state,
            delegates,
            tenant: None,
            events: BTreeMap::new(),
            transactions: HashMap::new(),
        }
    }

    fn owner(&self) -> Recipient {
        Recipient {
            email_address: Some(EmailAddress {
                name: Some(self.display_name.clone()),
                address: Some(self.upn.clone()),
            }),
        }
    }

    /// Resolves an id the client sent; a REST id minted before the item moved
    /// calendars no longer resolves, as in Exchange.
    pub fn resolve(&self, id: &str) -> Result<Target, ApiError> {
        let ParsedId {
            key,
            calendar,
            original_start,
        } = ids::parse(id)
            .ok_or_else(|| ApiError::bad_request("ErrorInvalidIdMalformed", "Id is malformed."))?;
        let stored = self.events.get(&key).ok_or_else(ApiError::item_not_found)?;
        if calendar.is_some_and(|c| c != stored.calendar) {
            return Err(ApiError::item_not_found());
        }
        match original_start {
            None => Ok(Target::Item(key)),
            Some(start) => {
                let exists = stored.exceptions.contains_key(&start)
                    || self.generated_end(stored, start).is_some();
                if exists && !stored.cancelled.contains(&start) {
                    Ok(Target::Occurrence(key, start))
                } else {
                    Err(ApiError::item_not_found())
                }
            }
        }
    }

    /// The original end of the generated occurrence starting at `original`
    /// (unix seconds), if the series has one there.
    fn generated_end(&self, stored: &StoredEvent, original: i64) -> Option<DateTime<Utc>> {
        let at = DateTime::from_timestamp(original, 0)?;
        self.generated(stored, at.checked_add_signed(chrono::Duration::seconds(1))?)
            .into_iter()
            .find(|(start, _)| *start == at)
            .map(|(_, end)| end)
    }

    /// The generated (unedited) occurrences of a master starting before
    /// `until`: original start and end in UTC.
    fn generated(
        &self,
        stored: &StoredEvent,
        until: DateTime<Utc>,
    ) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let event = &stored.event;
        let (Some(recurrence), Some(start), Some(end)) =
            (&event.recurrence, &event.start, &event.end)
        else {
            return Vec::new();
        };
        let zone_name = recurrence
            .range
            .recurrence_time_zone
            .clone()
            .or_else(|| start.time_zone.clone());
        let (Ok(tz), Ok(start_utc), Ok(end_utc)) = (
            time::zone_or_utc(zone_name.as_deref()),
            time::to_utc(start),
            time::to_utc(end),
        ) else {
            return Vec::new();
        };
        let local_start = start_utc.with_timezone(&tz).naive_local();
        let local_length = end_utc.with_timezone(&tz).naive_local() - local_start;
        recurrence::expand(recurrence, tz, local_start, until)
            .into_iter()
            .map(|local| {
                (
                    time::local_to_utc(tz, local),
                    time::local_to_utc(tz, local.checked_add_signed(local_length).unwrap_or(local)),
                )
            })
            .collect()
    }

    fn item_id(&self, stored: &StoredEvent, form: IdForm) -> String {
        ids::item_id(form, stored.key, stored.calendar)
    }

    /// The master or single event itself, with its id in `form`.
    pub fn item(&self, key: Uuid, form: IdForm) -> Option<Instance> {
        let stored = self.events.get(&key)?;
        let mut event = stored.event.clone();
        let id = self.item_id(stored, form);
        event.web_link = Some(web_link(&id));
        event.id = Some(id);
        let start = event.start.as_ref().and_then(|s| time::to_utc(s).ok())?;
        let end = event.end.as_ref().and_then(|e| time::to_utc(e).ok())?;
        Some(Instance {
            event,
            start,
            end,
            stable_id: self.item_id(stored, IdForm::Immutable),
            series: key,
        })
    }

    fn occurrence(
        &self,
        stored: &StoredEvent,
        original: DateTime<Utc>,
        end: DateTime<Utc>,
        form: IdForm,
    ) -> Instance {
        let original_ts = original.timestamp();
        let master_id = self.item_id(stored, form);
        let id = ids::occurrence_id(form, stored.key, stored.calendar, original);
        let stable_id =
            ids::occurrence_id(IdForm::Immutable, stored.key, stored.calendar, original);
        if let Some(exception) = stored.exceptions.get(&original_ts) {
            let mut event = exception.clone();
            event.id = Some(id.clone());
            event.web_link = Some(web_link(&id));
            event.series_master_id = Some(master_id);
            let start = event
                .start
                .as_ref()
                .and_then(|s| time::to_utc(s).ok())
                .unwrap_or(original);
            let end = event
                .end
                .as_ref()
                .and_then(|e| time::to_utc(e).ok())
                .unwrap_or(end);
            return Instance {
                event,
                start,
                end,
                stable_id,
                series: stored.key,
            };
        }
        let mut event = stored.event.clone();
        event.web_link = Some(web_link(&id));
        event.id = Some(id);
        event.event_type = Some(EventType::Occurrence);
        event.series_master_id = Some(master_id);
        event.recurrence = None;
        event.transaction_id = None;
        event.cancelled_occurrences = None;
        event.original_start = Some(time::format_instant(original).replace(".0000000Z", "Z"));
        // In the series' own zone, so an edit keeps an all-day occurrence at
        // local midnight.
        let zone = stored
            .event
            .start
            .as_ref()
            .and_then(|s| s.time_zone.clone())
            .unwrap_or_else(|| "UTC".into());
        event.start = Some(time::render(original, &zone));
        event.end = Some(time::render(end, &zone));
        event.i_cal_uid = event
            .i_cal_uid
            .as_deref()
            .map(|uid| rules::occurrence_ical_uid(uid, original));
        Instance {
            event,
            start: original,
            end,
            stable_id,
            series: stored.key,
        }
    }

    /// Occurrences and exceptions of one series overlapping `[from, to)`,
    /// without cancelled ones, ordered by start.
    pub fn instances(
        &self,
        key: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        form: IdForm,
    ) -> Vec<Instance> {
        let Some(stored) = self.events.get(&key) else {
            return Vec::new();
        };
        // Exceptions may have moved later than the window's end: expand a
        // little beyond it and filter on the real span.
        let horizon = to
            .checked_add_signed(chrono::Duration::days(366))
            .unwrap_or(to);
        let mut out: Vec<Instance> = self
            .generated(stored, horizon)
            .into_iter()
            .filter(|(start, _)| !stored.cancelled.contains(&start.timestamp()))
            .map(|(start, end)| self.occurrence(stored, start, end, form))
            .filter(|instance| instance.start < to && instance.end > from)
            .collect();
        out.sort_by_key(|i| i.start);
        out
    }

    /// `calendarView` of the primary calendar (as `/calendarView` and its
    /// delta serve): single instances, occurrences and exceptions
    /// overlapping the window, by start.
    pub fn view(&self, from: DateTime<Utc>, to: DateTime<Utc>, form: IdForm) -> Vec<Instance> {
        let mut out = Vec::new();
        for (key, stored) in &self.events {
            if stored.calendar != PRIMARY_CALENDAR {
                continue;
            }
            if stored.event.recurrence.is_some() {
                out.extend(self.instances(*key, from, to, form));
            } else if let Some(item) = self.item(*key, form)
                && item.start < to
                && item.end > from
            {
                out.push(item);
            }
        }
        out.sort_by(|a, b| a.start.cmp(&b.start).then(a.stable_id.cmp(&b.stable_id)));
        out
    }

    /// Creates an event; with a `transactionId` seen before, returns the
    /// existing event instead (Graph's duplicate-create guard).
    pub fn create(
        &mut self,
        input: Event,
        calendar: u8,
        now: DateTime<Utc>,
    ) -> Result<(Uuid, bool), ApiError> {
        if let Some(tx) = &input.transaction_id
            && let Some(existing) = self.transactions.get(tx)
            && self.events.contains_key(existing)
        {
            return Ok((*existing, false));
        }
        let mut event = rules::complete_new(input, self.owner(), now)?;
        let extended = event
            .single_value_extended_properties
            .take()
            .unwrap_or_default();
        let key = Uuid::new_v4();
        if let Some(tx) = &event.transaction_id {
            self.transactions.insert(tx.clone(), key);
        }
        self.events.insert(
            key,
            StoredEvent {
                key,
                calendar,
                event,
                exceptions: BTreeMap::new(),
                cancelled: BTreeSet::new(),
                extended,
            },
        );
        Ok((key, true))
    }

    /// Applies a PATCH; editing an occurrence turns it into an exception.
    pub fn update(
        &mut self,
        target: Target,
        written: &Map<String, Value>,
        patch: &Event,
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        let stamp = time::format_instant(now);
        let Some(stored) = self.events.get(&target.master()) else {
            return Err(ApiError::item_not_found());
        };
        match target {
            Target::Item(key) => {
                let mut merged = rules::merge(&stored.event, written, patch)?;
                if written.contains_key("recurrence")
                    && stored.event.event_type == Some(EventType::SingleInstance)
                    && merged.recurrence.is_some()
                {
                    merged.event_type = Some(EventType::SeriesMaster);
                }
                if written.contains_key("transactionId") {
                    merged.transaction_id = stored.event.transaction_id.clone();
                }
                if merged.location != stored.event.location {
                    merged.locations = merged.location.clone().map(|l| vec![l]);
                }
                rules::normalize(&mut merged)?;
                merged.change_key = Some(rules::new_change_key());
                merged.last_modified_date_time = Some(stamp);
                let reshaped = merged.recurrence != stored.event.recurrence
                    || merged.start != stored.event.start;
                let new_extended = patch.single_value_extended_properties.clone();
                merged.single_value_extended_properties = None;
                let Some(stored) = self.events.get_mut(&key) else {
                    return Err(ApiError::item_not_found());
                };
                if reshaped {
                    // Exchange drops exceptions when a series' pattern or time changes.
                    stored.exceptions.clear();
                    stored.cancelled.clear();
                }
                stored.event = merged;
                if let Some(props) = new_extended {
                    rules::upsert_extended(&mut stored.extended, props);
                }
            }
            Target::Occurrence(key, original) => {
                if written.contains_key("recurrence") {
                    return Err(ApiError::bad_request(
                        "ErrorInvalidRequest",
                        "The recurrence of an occurrence cannot be changed; change the series master.",
                    ));
                }
                let original_at = DateTime::from_timestamp(original, 0).unwrap_or_default();
                let end = self
                    .generated_end(stored, original)
                    .ok_or_else(ApiError::item_not_found)?;
                let current = self.occurrence(stored, original_at, end, IdForm::Immutable);
                let mut merged = rules::merge(&current.event, written, patch)?;
                rules::normalize(&mut merged)?;
                let new_start = merged.start.as_ref().and_then(|s| time::to_utc(s).ok());
                if let Some(new_start) = new_start {
                    self.check_within_neighbours(key, original_at, new_start)?;
                }
                merged.event_type = Some(EventType::Exception);
                merged.change_key = Some(rules::new_change_key());
                merged.last_modified_date_time = Some(stamp.clone());
                merged.single_value_extended_properties = None;
                let Some(stored) = self.events.get_mut(&key) else {
                    return Err(ApiError::item_not_found());
                };
                stored.exceptions.insert(original, merged);
                stored.event.change_key = Some(rules::new_change_key());
                stored.event.last_modified_date_time = Some(stamp);
            }
        }
        Ok(())
    }

    /// Exchange refuses to move an occurrence onto or past the occurrences
    /// before and after it.
    fn check_within_neighbours(
        &self,
        key: Uuid,
        original: DateTime<Utc>,
        new_start: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        let reach = chrono::Duration::days(800);
        let from = original.checked_sub_signed(reach).unwrap_or(original);
        let to = original.checked_add_signed(reach).unwrap_or(original);
        let others: Vec<(i64, DateTime<Utc>)> = self
            .instances(key, from, to, IdForm::Immutable)
            .into_iter()
            .filter_map(|i| Some((ids::parse(&i.stable_id)?.original_start?, i.start)))
            .filter(|(at, _)| *at != original.timestamp())
            .collect();
        let previous = others
            .iter()
            .filter(|(at, _)| *at < original.timestamp())
            .map(|(_, s)| *s)
            .max();
        let next = others
            .iter()
            .filter(|(at, _)| *at > original.timestamp())
            .map(|(_, s)| *s)
            .min();
        if previous.is_some_and(|p| new_start <= p) || next.is_some_and(|n| new_start >= n) {
            return Err(ApiError::bad_request(
                "ErrorOccurrenceCrossingBoundary",
                "An occurrence can't be moved to or beyond an adjacent occurrence.",
            ));
        }
        Ok(())
    }

    /// Deletes an event, or cancels one occurrence of a series.
    pub fn delete(&mut self, target: Target, now: DateTime<Utc>) -> Result<(), ApiError> {
        match target {
            Target::Item(key) => {
                self.events
                    .remove(&key)
                    .ok_or_else(ApiError::item_not_found)?;
                self.transactions.retain(|_, k| *k != key);
                Ok(())
            }
            Target::Occurrence(key, original) => {
                let stored = self
                    .events
                    .get_mut(&key)
                    .ok_or_else(ApiError::item_not_found)?;
                stored.exceptions.remove(&original);
                stored.cancelled.insert(original);
                stored.event.change_key = Some(rules::new_change_key());
                stored.event.last_modified_date_time = Some(time::format_instant(now));
                Ok(())
            }
        }
    }

    /// Moves an event to another of the mailbox's calendars (its REST id
    /// changes, its immutable id does not).
    pub fn move_to(&mut self, key: Uuid, calendar: u8, now: DateTime<Utc>) -> Result<(), ApiError> {
        let stored = self
            .events
            .get_mut(&key)
            .ok_or_else(ApiError::item_not_found)?;
        stored.calendar = calendar;
        stored.event.change_key = Some(rules::new_change_key());
        stored.event.last_modified_date_time = Some(time::format_instant(now));
        Ok(())
    }

    /// Every stored event as Graph shows it (masters, singles, exceptions).
    pub fn all_events(&self, form: IdForm) -> Vec<Event> {
        let mut out = Vec::new();
        for (key, stored) in &self.events {
            if let Some(item) = self.item(*key, form) {
                out.push(item.event);
            }
            for original in stored.exceptions.keys() {
                let at = DateTime::from_timestamp(*original, 0).unwrap_or_default();
                out.push(self.occurrence(stored, at, at, form).event);
            }
        }
        out
    }
}

fn web_link(id: &str) -> String {
    format!("https://outlook.office365.com/owa/?itemid={id}&exvsurl=1&path=/calendar/item")
}
