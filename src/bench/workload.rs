//! The bench's world: A technicians with E events each in Exchange, the
//! halosync configuration that serves them, and the changes people make.

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use super::BenchError;
use crate::sim::server::Simulator;

/// The environment variable the bench's config reads its (simulated)
/// secrets from.
pub const SECRET_VAR: &str = "HALOSYNC_BENCH_SECRET";
/// Any value works: the bench's simulator accepts every credential.
pub const SECRET_VALUE: &str = "bench";

/// Events per day in a calendar, so 500 events fit the default window.
const EVENTS_PER_DAY: usize = 4;

/// How big the world is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub agents: usize,
    pub events: usize,
}

impl Size {
    pub fn total(self) -> usize {
        self.agents * self.events
    }

    pub fn mailbox(agent: usize) -> String {
        format!("tech{agent:04}@contoso.com")
    }

    /// The agent's Halo id (ids below 2 are Halo's own).
    pub fn agent_id(agent: usize) -> usize {
        agent + 2
    }

    /// Where the `n`th item of the world lives: items are numbered across
    /// agents first, so every `k`th item spreads over all of them.
    pub fn item(self, n: usize) -> (usize, usize) {
        let n = n % self.total().max(1);
        (n % self.agents.max(1), n / self.agents.max(1))
    }

    /// `count` items spread evenly over the world, starting `offset` of
    /// the way into each stride (disjoint sets for different offsets).
    pub fn spread(self, count: usize, offset: f64) -> Vec<(usize, usize)> {
        let total = self.total();
        if total == 0 {
            return Vec::new();
        }
        let stride = (total as f64 / count.max(1) as f64).max(1.0);
        (0..count)
            .map(|k| self.item(((k as f64 + offset) * stride) as usize))
            .collect()
    }

    /// The seeded subject of an item, unique in the world.
    pub fn subject(agent: usize, event: usize) -> String {
        format!("Visit {agent}-{event}")
    }
}

/// When the `event`th appointment of a calendar is: from tomorrow on, four
/// a day on the hour, inside the default sync window (180 days ahead).
fn slot(today: DateTime<Utc>, event: usize) -> (String, String) {
    let day = today + Duration::days(1 + (event / EVENTS_PER_DAY) as i64);
    let hour = 8 + 2 * (event % EVENTS_PER_DAY);
    let date = day.format("%Y-%m-%d");
    (
        format!("{date}T{hour:02}:00:00"),
        format!("{date}T{:02}:00:00", hour + 1),
    )
}

/// The simulator's seed: agents, their mailboxes and every event (Exchange
/// holds the calendars; the import brings them into Halo).
pub fn seed(size: Size, today: DateTime<Utc>) -> Value {
    let agents: Vec<Value> = (0..size.agents)
        .map(|a| json!({"id": Size::agent_id(a), "name": format!("Tech {a}"), "email": Size::mailbox(a)}))
        .collect();
    let mailboxes: Vec<Value> = (0..size.agents)
        .map(|a| json!({"upn": Size::mailbox(a)}))
        .collect();
    let events: serde_json::Map<String, Value> = (0..size.agents)
        .map(|a| {
            let list = (0..size.events)
                .map(|e| {
                    let (start, end) = slot(today, e);
                    json!({"subject": Size::subject(a, e),
                           "start": {"dateTime": start, "timeZone": "UTC"},
                           "end": {"dateTime": end, "timeZone": "UTC"}})
                })
                .collect();
            (Size::mailbox(a), Value::Array(list))
        })
        .collect();
    json!({"agents": agents, "mailboxes": mailboxes, "events": events})
}

/// Seeds `simulator` and returns the id of every event, by agent then event.
pub fn seed_simulator(
    simulator: &Simulator,
    size: Size,
    today: DateTime<Utc>,
) -> Result<Vec<Vec<String>>, BenchError> {
    // Seeding one mailbox at a time keeps the seed JSON small.
    let whole = seed(size, today);
    let mut ids = Vec::with_capacity(size.agents);
    simulator
        .seed_json(
            json!({"agents": whole["agents"], "mailboxes": whole["mailboxes"]})
                .to_string()
                .as_bytes(),
        )
        .map_err(BenchError::Simulator)?;
    for agent in 0..size.agents {
        let mailbox = Size::mailbox(agent);
        let answer = simulator
            .seed_json(
                json!({"events": {&mailbox: whole["events"][&mailbox]}})
                    .to_string()
                    .as_bytes(),
            )
            .map_err(BenchError::Simulator)?;
        let list = answer["graph"]["events"][&mailbox]
            .as_array()
            .map(|events| {
                events
                    .iter()
                    .filter_map(|e| e["id"].as_str().map(str::to_string))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        if list.len() != size.events {
            return Err(BenchError::Simulator(format!(
                "seeding {mailbox} returned {} event ids, expected {}",
                list.len(),
                size.events
            )));
        }
        ids.push(list);
    }
    Ok(ids)
}

/// Ports and schedules of the service (`halosync run`) the latency phase
/// starts; `None` for the runs the bench makes in process.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    pub admin_port: u16,
    pub webhook_port: u16,
    pub webhooks: bool,
    /// Cron (with seconds) of the push job.
    pub push: String,
}

/// The halosync configuration for the bench: the simulator's snippet with
/// the database in `dir`, Halo's budget at its highest (the bench records
/// Halo's limit instead of enforcing it); everything else at its default.
pub fn config_text(simulator: &Simulator, dir: &Path, service: Option<&ServiceSettings>) -> String {
    let never = "0 0 0 1 1 *";
    let snippet = simulator
        .config_snippet()
        .replace("HALOSYNC_SIM_SECRET", SECRET_VAR)
        .replace(
            "path = \"halosync-sim.db\"",
            &format!("path = {:?}", dir.join("halosync.db").display().to_string()),
        )
        .replacen(
            "[[exchange.connection]]",
            "requests_per_5_minutes = 100000\n\n[[exchange.connection]]",
            1,
        );
    let mut text = snippet;
    if let Some(service) = service {
        text.push_str(&format!(
            "\n[sync.schedule]\npull = \"{never}\"\npush = \"{push}\"\nreconcile = \"{never}\"\n\
             renew_subscriptions = \"{never}\"\nprune = \"{never}\"\n\n\
             [admin]\nlisten = \"127.0.0.1:{admin}\"\n\n\
             [webhook]\nenabled = {webhooks}\nlisten = \"127.0.0.1:{hook}\"\n\
             public_url = \"http://127.0.0.1:{hook}\"\n",
            push = service.push,
            admin = service.admin_port,
            webhooks = service.webhooks,
            hook = service.webhook_port,
        ));
    }
    text
}

/// Writes the config where only its owner can read it (halosync refuses
/// secrets in files others can read).
pub fn write_config(path: &Path, text: &str) -> Result<(), BenchError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e: std::io::Error| BenchError::Io(format!("{}: {e}", path.display()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)
}

/// A person renames an event in Outlook.
pub fn rename_event(mailbox: &str, id: &str, subject: &str) -> Value {
    json!({"op": "update_event", "mailbox": mailbox, "id": id, "patch": {"subject": subject}})
}

/// A dispatcher renames an appointment in Halo.
pub fn rename_appointment(id: i64, subject: &str) -> Value {
    json!({"op": "update_appointment", "id": id, "changes": {"subject": subject}})
}

/// One edit a person makes: the item on both sides and its new subject.
#[derive(Debug, Clone)]
pub struct Change {
    pub mailbox: String,
    pub event_id: String,
    pub halo_id: i32,
    pub subject: String,
}

/// `count` edits spread over the world, `offset` into each stride (so
/// different phases edit different items), each with a subject never
/// used before.
pub fn changes(
    size: Size,
    count: usize,
    offset: f64,
    tag: &str,
    event_ids: &[Vec<String>],
    halo_ids: &HashMap<String, i32>,
) -> Result<Vec<Change>, BenchError> {
    size.spread(count, offset)
        .into_iter()
        .enumerate()
        .map(|(k, (agent, event))| {
            let seeded = Size::subject(agent, event);
            let halo_id = *halo_ids.get(&seeded).ok_or_else(|| {
                BenchError::Halosync(format!("the import did not bring {seeded:?} into Halo"))
            })?;
            let event_id = event_ids
                .get(agent)
                .and_then(|ids| ids.get(event))
                .cloned()
                .ok_or_else(|| BenchError::Simulator(format!("no event id for {seeded:?}")))?;
            Ok(Change {
                mailbox: Size::mailbox(agent),
                event_id,
                halo_id,
                subject: format!("{seeded} ({tag} {k})"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_sets_with_different_offsets_are_disjoint_and_cover_every_agent() {
        let size = Size {
            agents: 4,
            events: 50,
        };
        let exchange = size.spread(8, 0.0);
        let halo = size.spread(8, 0.5);
        assert_eq!(exchange.len(), 8);
        assert!(exchange.iter().all(|item| !halo.contains(item)));
        for agent in 0..4 {
            assert!(exchange.iter().any(|(a, _)| *a == agent), "{exchange:?}");
        }
    }

    #[test]
    fn every_seeded_event_is_a_one_hour_slot_inside_the_default_window() {
        let today = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        let (start, end) = slot(today, 499);
        assert_eq!(start, "2026-05-06T14:00:00");
        assert_eq!(end, "2026-05-06T15:00:00");
        let seed = seed(
            Size {
                agents: 2,
                events: 3,
            },
            today,
        );
        assert_eq!(
            seed["events"]["tech0001@contoso.com"]
                .as_array()
                .map(Vec::len),
            Some(3)
        );
    }
}
