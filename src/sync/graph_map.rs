//! Exchange events ↔ the neutral [`Appointment`].
//!
//! Reading: times (UTC), all-day, subject, plain-text body, location (when
//! location sync is on), the attendees other than the mailbox owner, and
//! the Teams link. A private event — or any event, when "import as
//! private" is set — reads as its times only, so nothing private is ever
//! copied to Halo and only a change of its times counts as a change.
//!
//! Writing produces the event body for a create or a PATCH: a private copy
//! writes its times and sensitivity only, attendees are written only when
//! the invitation setting allows, and a Teams meeting is requested when the
//! caller says the appointment's type is a Teams type.

use crate::config::{AttendeeMode, SyncConfig};
use crate::graph::model::{
    Attendee, BodyType, DateTimeTimeZone, EmailAddress, Event, ItemBody, Location, Sensitivity,
};
use crate::model::Appointment;
use crate::sync::plan::{GraphId, Item};

/// Mapping settings from `[sync]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraphMapping {
    pub sync_location: bool,
    pub import_as_private: bool,
    pub attendees: AttendeeMode,
}

/// Why an event is not synced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unsyncable {
    #[error("the event has no id or version")]
    Unidentified,
    #[error("the event has no start or end")]
    NoTimes,
    #[error("the event's times cannot be read: {0}")]
    BadTimes(String),
    /// A cancelled occurrence, or a meeting copy its organizer cancelled.
    #[error("the event is cancelled")]
    Cancelled,
}

impl GraphMapping {
    pub fn from_config(sync: &SyncConfig) -> Self {
        Self {
            sync_location: sync.sync_location,
            import_as_private: sync.import_as_private,
            attendees: sync.attendees,
        }
    }

    /// The event as an observed item of `mailbox`.
    pub fn read(&self, event: &Event, mailbox: &str) -> Result<Item<GraphId>, Unsyncable> {
        let id = event.id.clone().ok_or(Unsyncable::Unidentified)?;
        let version = event
            .change_key
            .clone()
            .or_else(|| event.etag.clone())
            .ok_or(Unsyncable::Unidentified)?;
        if event.is_cancelled == Some(true) {
            return Err(Unsyncable::Cancelled);
        }
        let start = event
            .start_utc()
            .map_err(|e| Unsyncable::BadTimes(e.to_string()))?
            .ok_or(Unsyncable::NoTimes)?;
        let end = event
            .end_utc()
            .map_err(|e| Unsyncable::BadTimes(e.to_string()))?
            .ok_or(Unsyncable::NoTimes)?;
        let owner = mailbox.trim().to_ascii_lowercase();
        let full = Appointment {
            start,
            end,
            all_day: event.is_all_day.unwrap_or(false),
            subject: event.subject.clone().unwrap_or_default(),
            body: event
                .body
                .as_ref()
                .map(|b| match b.content_type {
                    BodyType::Text => b.content.clone(),
                    BodyType::Html => html_to_text(&b.content),
                })
                .unwrap_or_default(),
            location: if self.sync_location {
                event.location.as_ref().and_then(|l| l.display_name.clone())
            } else {
                None
            },
            private: false,
            // Not synced at all when invitations are off (see HaloMapping).
            attendees: event
                .attendees
                .iter()
                .flatten()
                .filter(|_| self.attendees != AttendeeMode::None)
                .filter_map(|a| a.email_address.address.as_deref())
                .map(|a| a.trim().to_ascii_lowercase())
                .filter(|a| *a != owner)
                .collect(),
            online_meeting_url: event
                .online_meeting
                .as_ref()
                .and_then(|m| m.join_url.clone()),
        };
        let private = matches!(
            event.sensitivity,
            Some(Sensitivity::Private | Sensitivity::Confidential)
        );
        let content = if private || self.import_as_private {
            full.times_only()
        } else {
            full.canonical()
        };
        Ok(Item {
            id,
            version,
            modified: event.last_modified_date_time.unwrap_or(start),
            content,
        })
    }

    /// The event body that makes an event hold `content`. The Teams link is
    /// not written: Exchange creates it when `teams_meeting` asks for one.
    pub fn write(&self, content: &Appointment, teams_meeting: bool) -> Event {
        let mut event = Event {
            start: Some(DateTimeTimeZone::utc(content.start)),
            end: Some(DateTimeTimeZone::utc(content.end)),
            is_all_day: Some(content.all_day),
            sensitivity: Some(if content.private {
                Sensitivity::Private
            } else {
                Sensitivity::Normal
            }),
            ..Event::default()
        };
        if content.private && content.subject.is_empty() && content.body.is_empty() {
            // A times-only copy: leave everything else the event holds.
            return event;
        }
        event.subject = Some(content.subject.clone());
        event.body = Some(ItemBody {
            content_type: BodyType::Text,
            content: content.body.clone(),
        });
        if self.sync_location {
            event.location = Some(Location {
                display_name: Some(content.location.clone().unwrap_or_default()),
                ..Location::default()
            });
        }
        if self.attendees != AttendeeMode::None {
            event.attendees = Some(
                content
                    .attendees
                    .iter()
                    .map(|address| Attendee {
                        email_address: EmailAddress {
                            address: Some(address.clone()),
                            name: None,
                        },
                        attendee_type: Some("required".into()),
                        status: None,
                    })
                    .collect(),
            );
        }
        if teams_meeting {
            event.is_online_meeting = Some(true);
            event.online_meeting_provider = Some("teamsForBusiness".into());
        }
        event
    }
}

/// Plain text from an HTML body: tags dropped, line breaks kept, the
/// common entities decoded. Only for reading a body a client wrote as HTML.
fn html_to_text(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut in_tag = false;
    let mut tag = String::new();
    for c in html.chars() {
        match (in_tag, c) {
            (false, '<') => {
                in_tag = true;
                tag.clear();
            }
            (true, '>') => {
                in_tag = false;
                let name = tag.trim_start_matches('/').to_ascii_lowercase();
                if name.starts_with("br") || name.starts_with("p") || name.starts_with("div") {
                    text.push('\n');
                }
            }
            (true, c) => tag.push(c),
            (false, c) => text.push(c),
        }
    }
    text.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::model::OnlineMeeting;
    use chrono::{DateTime, TimeZone, Utc};

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, hour, 0, 0)
            .single()
            .expect("valid date")
    }

    fn mapping() -> GraphMapping {
        GraphMapping {
            sync_location: true,
            import_as_private: false,
            attendees: AttendeeMode::Agents,
        }
    }

    fn event() -> Event {
        Event {
            id: Some("AAMkE1".into()),
            change_key: Some("ck1".into()),
            subject: Some("Server room audit".into()),
            body: Some(ItemBody {
                content_type: BodyType::Html,
                content: "<html><body><p>Bring the keys &amp; badge</p></body></html>".into(),
            }),
            start: Some(DateTimeTimeZone::utc(at(9))),
            end: Some(DateTimeTimeZone::utc(at(10))),
            location: Some(Location {
                display_name: Some("B2".into()),
                ..Location::default()
            }),
            attendees: Some(vec![
                attendee("Leah@contoso.com"),
                attendee("amir@contoso.com"),
            ]),
            online_meeting: Some(OnlineMeeting {
                join_url: Some("https://teams.example/j/1".into()),
            }),
            last_modified_date_time: Some(at(8)),
            ..Event::default()
        }
    }

    fn attendee(address: &str) -> Attendee {
        Attendee {
            email_address: EmailAddress {
                address: Some(address.into()),
                name: None,
            },
            attendee_type: Some("required".into()),
            status: None,
        }
    }

    #[test]
    fn an_event_reads_as_its_synced_fields() {
        let item = mapping()
            .read(&event(), "leah@contoso.com")
            .expect("syncable");
        assert_eq!((item.id.as_str(), item.version.as_str()), ("AAMkE1", "ck1"));
        assert_eq!(item.modified, at(8));
        let c = item.content;
        assert_eq!((c.start, c.end), (at(9), at(10)));
        assert_eq!(c.body, "Bring the keys & badge");
        assert_eq!(c.location.as_deref(), Some("B2"));
        assert_eq!(
            c.attendees.into_iter().collect::<Vec<_>>(),
            vec!["amir@contoso.com".to_string()],
            "the mailbox owner is not an attendee of their own copy"
        );
        assert_eq!(
            c.online_meeting_url.as_deref(),
            Some("https://teams.example/j/1")
        );
    }

    #[test]
    fn private_events_and_import_as_private_read_as_times_only() {
        let mut private = event();
        private.sensitivity = Some(Sensitivity::Private);
        let item = mapping()
            .read(&private, "leah@contoso.com")
            .expect("syncable");
        assert!(item.content.private);
        assert!(item.content.subject.is_empty() && item.content.body.is_empty());
        assert!(item.content.location.is_none() && item.content.attendees.is_empty());
        // A new subject on a private event is not a change worth syncing.
        let mut renamed = private.clone();
        renamed.subject = Some("Something else".into());
        assert_eq!(
            mapping()
                .read(&renamed, "leah@contoso.com")
                .expect("ok")
                .content
                .fingerprint(),
            item.content.fingerprint()
        );
        let all_private = GraphMapping {
            import_as_private: true,
            ..mapping()
        };
        assert!(
            all_private
                .read(&event(), "leah@contoso.com")
                .expect("ok")
                .content
                .private
        );
    }

    #[test]
    fn unsyncable_events_say_why() {
        let mut no_id = event();
        no_id.id = None;
        assert_eq!(
            mapping().read(&no_id, "m").err(),
            Some(Unsyncable::Unidentified)
        );
        let mut no_end = event();
        no_end.end = None;
        assert_eq!(
            mapping().read(&no_end, "m").err(),
            Some(Unsyncable::NoTimes)
        );
        let mut cancelled = event();
        cancelled.is_cancelled = Some(true);
        assert_eq!(
            mapping().read(&cancelled, "m").err(),
            Some(Unsyncable::Cancelled)
        );
    }

    #[test]
    fn writing_and_reading_back_keeps_the_content() {
        // The Teams link is Exchange's to create (on request), never written.
        let mut original = mapping()
            .read(&event(), "leah@contoso.com")
            .expect("ok")
            .content;
        original.online_meeting_url = None;
        let mut written = mapping().write(&original, false);
        written.id = Some("AAMkE2".into());
        written.change_key = Some("ck9".into());
        let again = mapping()
            .read(&written, "leah@contoso.com")
            .expect("ok")
            .content;
        assert_eq!(again.fingerprint(), original.fingerprint());
    }

    #[test]
    fn invitations_teams_and_private_copies_follow_the_settings() {
        let content = mapping()
            .read(&event(), "leah@contoso.com")
            .expect("ok")
            .content;
        let quiet = GraphMapping {
            attendees: AttendeeMode::None,
            ..mapping()
        };
        assert!(
            quiet.write(&content, false).attendees.is_none(),
            "no attendee, no invitation"
        );
        assert!(
            quiet
                .read(&event(), "leah@contoso.com")
                .expect("ok")
                .content
                .attendees
                .is_empty(),
            "attendees are not part of what is synced when invitations are off"
        );
        let teams = mapping().write(&content, true);
        assert_eq!(teams.is_online_meeting, Some(true));
        assert_eq!(
            teams.online_meeting_provider.as_deref(),
            Some("teamsForBusiness")
        );
        let private = mapping().write(&content.times_only(), false);
        assert_eq!(private.sensitivity, Some(Sensitivity::Private));
        assert!(private.subject.is_none() && private.body.is_none() && private.attendees.is_none());
    }
}
