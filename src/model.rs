//! The neutral appointment both sides map into, and its fingerprint.
//!
//! Halo appointments and Exchange events are each mapped into an
//! [`Appointment`] holding only the fields halosync keeps in step, in a
//! canonical form (UTC times, trimmed text, normalised line endings,
//! lower-cased and sorted attendees), so that two renderings of the same
//! content have the same [`Fingerprint`] and an edit that changes nothing
//! halosync syncs is not a change.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// What halosync keeps in step between a Halo appointment and an Exchange event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Appointment {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub all_day: bool,
    pub subject: String,
    /// Plain text.
    pub body: String,
    pub location: Option<String>,
    pub private: bool,
    /// Lower-cased e-mail addresses of the other attendees (additional agents).
    pub attendees: BTreeSet<String>,
    pub online_meeting_url: Option<String>,
}

/// A stable hash of an [`Appointment`]'s canonical form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// Parses the hex form stored in the database.
    pub fn from_hex(text: &str) -> Option<Self> {
        if text.len() != 64 {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok()?;
        }
        Some(Self(bytes))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// Text as both sides agree on it: Windows and old-Mac line endings become
/// `\n`, trailing spaces on lines and surrounding blank lines go.
pub fn canonical_text(text: &str) -> String {
    text.replace("\r\n", "\n")
        .replace('\r', "\n")
        .lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

impl Appointment {
    /// The same appointment in canonical form (what is fingerprinted).
    pub fn canonical(&self) -> Self {
        let optional = |value: &Option<String>| {
            value
                .as_deref()
                .map(canonical_text)
                .filter(|v| !v.is_empty())
        };
        Self {
            start: self.start,
            end: self.end,
            all_day: self.all_day,
            subject: canonical_text(&self.subject),
            body: canonical_text(&self.body),
            location: optional(&self.location),
            private: self.private,
            attendees: self
                .attendees
                .iter()
                .map(|a| a.trim().to_ascii_lowercase())
                .filter(|a| !a.is_empty())
                .collect(),
            online_meeting_url: optional(&self.online_meeting_url),
        }
    }

    /// A hash of the canonical form. Each field is length-prefixed, so no
    /// two different appointments can encode to the same bytes.
    pub fn fingerprint(&self) -> Fingerprint {
        let c = self.canonical();
        let mut hasher = Sha256::new();
        let mut field = |bytes: &[u8]| {
            hasher.update((bytes.len() as u64).to_be_bytes());
            hasher.update(bytes);
        };
        field(b"halosync appointment v1");
        field(&c.start.timestamp().to_be_bytes());
        field(&c.end.timestamp().to_be_bytes());
        field(&[u8::from(c.all_day), u8::from(c.private)]);
        field(c.subject.as_bytes());
        field(c.body.as_bytes());
        field(c.location.as_deref().unwrap_or_default().as_bytes());
        field(
            c.online_meeting_url
                .as_deref()
                .unwrap_or_default()
                .as_bytes(),
        );
        field(&(c.attendees.len() as u64).to_be_bytes());
        for attendee in &c.attendees {
            field(attendee.as_bytes());
        }
        Fingerprint(hasher.finalize().into())
    }

    /// What may be copied into Halo from a private Exchange event: its times
    /// only (the guide: "only the start and end date/times").
    pub fn times_only(&self) -> Self {
        Self {
            start: self.start,
            end: self.end,
            all_day: self.all_day,
            private: true,
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, hour, 0, 0)
            .single()
            .expect("valid date")
    }

    fn sample() -> Appointment {
        Appointment {
            start: at(9),
            end: at(10),
            subject: "Server room audit".into(),
            body: "Bring the keys.\nAsk facilities.".into(),
            location: Some("B2".into()),
            attendees: ["amir@contoso.com".to_string()].into(),
            ..Appointment::default()
        }
    }

    #[test]
    fn renderings_that_differ_only_in_form_have_one_fingerprint() {
        let mut other = sample();
        other.subject = "  Server room audit ".into();
        other.body = "Bring the keys.  \r\nAsk facilities.\r\n\r\n".into();
        other.attendees = [" Amir@Contoso.com".to_string()].into();
        assert_eq!(sample().fingerprint(), other.fingerprint());
        let mut empty_location = sample();
        empty_location.location = Some("   ".into());
        let mut no_location = sample();
        no_location.location = None;
        assert_eq!(empty_location.fingerprint(), no_location.fingerprint());
    }

    #[test]
    fn every_synced_field_changes_the_fingerprint() {
        let base = sample().fingerprint();
        let edits: Vec<fn(&mut Appointment)> = vec![
            |a| a.start = at(8),
            |a| a.end = at(11),
            |a| a.all_day = true,
            |a| a.subject.push('!'),
            |a| a.body.push('!'),
            |a| a.location = Some("B3".into()),
            |a| a.private = true,
            |a| {
                a.attendees.insert("leah@contoso.com".into());
            },
            |a| a.online_meeting_url = Some("https://teams.example/j/1".into()),
        ];
        for (i, edit) in edits.into_iter().enumerate() {
            let mut changed = sample();
            edit(&mut changed);
            assert_ne!(changed.fingerprint(), base, "edit {i} went unnoticed");
        }
    }

    #[test]
    fn fields_cannot_bleed_into_each_other() {
        let mut a = sample();
        a.subject = "ab".into();
        a.body = "c".into();
        let mut b = sample();
        b.subject = "a".into();
        b.body = "bc".into();
        assert_ne!(a.fingerprint(), b.fingerprint());
    }

    #[test]
    fn private_copies_carry_times_only() {
        let private = sample().times_only();
        assert!(private.private);
        assert_eq!((private.start, private.end), (at(9), at(10)));
        assert!(private.subject.is_empty() && private.body.is_empty());
        assert!(private.location.is_none() && private.attendees.is_empty());
    }

    proptest! {
        #[test]
        fn the_hex_form_round_trips(subject in ".{0,40}", body in ".{0,80}") {
            let fingerprint = Appointment { subject, body, ..sample() }.fingerprint();
            prop_assert_eq!(Fingerprint::from_hex(&fingerprint.to_string()), Some(fingerprint));
        }

        #[test]
        fn canonical_form_is_a_fixed_point(subject in "[ -~\r\n]{0,40}", body in "[ -~\r\n\t]{0,80}") {
            let once = Appointment { subject, body, ..sample() }.canonical();
            prop_assert_eq!(once.canonical(), once.clone());
            prop_assert_eq!(once.fingerprint(), Appointment { ..once.clone() }.fingerprint());
        }
    }
}
