//! One run over one agent's calendar: finish interrupted writes, observe
//! both sides, plan, and apply — or, for a dry run, only plan.
//!
//! The same path serves every command that syncs: `sync --once` (the whole
//! plan), `import` (only bringing Exchange items into Halo, matching first),
//! `relink` (only linking copies that are already on both sides) and the
//! daemon's jobs. A mailbox that cannot be read is reported with its
//! diagnosis and skipped; it never stops the others.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use super::apply::{Applied, apply_with};
use super::engine::{MailboxSync, WriteSettings};
use super::halo_map::AgentDirectory;
use super::observe::{Cursors, Details, ObserveError, Observer, ReadAhead};
use super::owner::OwnerOverride;
use super::plan::{Action, Plan, Policy, Side, Source, plan};
use super::replay::Replayed;
use crate::clock::Clock;
use crate::config::{ConnectionConfig, SyncConfig};
use crate::graph::{GraphClient, GraphError, Window};
use crate::halo::{Agent, HaloClient};
use crate::store::{AgentHealth, AgentRow, Store};

/// The `halo_cursors` scope of an agent's appointment listing.
const HALO_CURSOR_SCOPE: &str = "appointments";

/// What a run does with its plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Everything the plan says, both ways.
    Sync,
    /// Only bring Exchange items into Halo (matching those already there);
    /// series occurrences only when `recurring`.
    Import { recurring: bool },
    /// Only link items already on both sides (rebuilding lost links).
    Relink,
}

/// How much of each side a run reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// The whole window on both sides, every missing linked item read back
    /// (finds deletions nothing announced, pairs lost links by marker).
    Full,
    /// Only what changed since the cursors the last run committed; a full
    /// pass when there are none yet.
    Incremental,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOptions {
    pub mode: Mode,
    pub pass: Pass,
    /// Plan and report, change nothing anywhere.
    pub dry_run: bool,
    /// Let this run past the mass-deletion guard.
    pub allow_deletes: bool,
}

/// How one agent's run ended.
#[derive(Debug)]
pub enum AgentOutcome {
    /// Not read: no connection, no access, an expired sign-in...
    Skipped {
        reason: String,
        diagnosis: Option<String>,
    },
    /// A dry run: what would happen.
    Planned { plan: Plan },
    Applied {
        plan: Plan,
        applied: Applied,
        replayed: Vec<Replayed>,
    },
}

/// One agent's run.
#[derive(Debug)]
pub struct AgentRun {
    pub agent_id: i64,
    pub mailbox: String,
    /// Items left out, with why.
    pub unsynced: Vec<String>,
    pub outcome: AgentOutcome,
}

/// Where an agent's incremental run starts, as saved by the last one.
#[derive(Debug, Clone)]
pub struct IncrementalStart {
    pub agent_id: i64,
    pub mailbox: String,
    pub halo_cursor: chrono::DateTime<chrono::Utc>,
    pub delta_link: Option<String>,
}

/// What every agent's run shares.
pub struct Engine<'a> {
    pub halo: &'a HaloClient,
    pub store: &'a Mutex<Store>,
    pub clock: &'a dyn Clock,
    pub agents: &'a AgentDirectory,
    /// Every mailbox this configuration syncs (lower-case).
    pub served: BTreeSet<String>,
    pub window: Window,
    pub policy: Policy,
    pub settings: WriteSettings,
    /// Owner overrides by connection name.
    pub owner_overrides: BTreeMap<String, OwnerOverride>,
}

impl<'a> Engine<'a> {
    /// The engine for `[sync]`, with the window ending `days_ahead` from now.
    pub fn new(
        sync: &SyncConfig,
        halo: &'a HaloClient,
        store: &'a Mutex<Store>,
        clock: &'a dyn Clock,
        agents: &'a AgentDirectory,
        served: BTreeSet<String>,
    ) -> Self {
        // Whole UTC days, so the window (part of a delta link) stays the
        // same all day and the link can be reused.
        let today = clock
            .now()
            .date_naive()
            .and_time(chrono::NaiveTime::MIN)
            .and_utc();
        Self {
            halo,
            store,
            clock,
            agents,
            served,
            window: Window::new(
                today - chrono::Duration::days(i64::from(sync.window.days_past)),
                today + chrono::Duration::days(i64::from(sync.window.days_ahead) + 1),
            ),
            policy: Policy {
                conflict: sync.conflict_policy,
                edit_delete: sync.edit_delete_policy,
                deletes: sync.delete_policy,
                guard: sync.delete_guard,
                allow_mass_deletes: false,
            },
            settings: WriteSettings {
                halo_mapping: super::halo_map::HaloMapping::from_config(sync),
                graph_mapping: super::graph_map::GraphMapping::from_config(sync),
                teams_types: sync.teams_appointment_type_ids.clone(),
            },
            owner_overrides: BTreeMap::new(),
        }
    }

    /// Creates the appointments of agents served by a connection with an
    /// owner override as that mailbox's meetings ([`super::owner`]).
    pub fn with_owner_overrides(mut self, connections: &[ConnectionConfig]) -> Self {
        self.owner_overrides = OwnerOverride::by_connection(connections);
        self
    }

    /// Runs one agent through `graph` (the client of the connection that
    /// serves it). `connection` is its name, recorded with the agent.
    pub async fn agent(
        &self,
        agent: &Agent,
        connection: &str,
        graph: &GraphClient,
        options: RunOptions,
        read_ahead: ReadAhead<'_>,
        progress: &mut (dyn FnMut(usize, usize) -> bool + Send),
    ) -> AgentRun {
        let mailbox = agent.mailbox().unwrap_or_default();
        let mut run = AgentRun {
            agent_id: agent.id,
            mailbox: mailbox.clone(),
            unsynced: Vec::new(),
            outcome: AgentOutcome::Skipped {
                reason: String::new(),
                diagnosis: None,
            },
        };
        let skipped =
            |reason: String, diagnosis: Option<String>| AgentOutcome::Skipped { reason, diagnosis };
        if !options.dry_run
            && let Err(e) = self.note_agent(agent, connection, &mailbox)
        {
            run.outcome = skipped(e, None);
            return run;
        }
        // The writes see no observation until there is one: replaying the
        // journal needs none.
        let empty = Details::default();
        let mut writes = MailboxSync::new(
            self.halo,
            graph,
            self.store,
            self.clock,
            self.agents,
            agent.id,
            &mailbox,
            &self.settings,
            &empty,
        )
        .with_owner(
            self.owner_overrides
                .get(connection)
                .filter(|owner| owner.applies_to(&mailbox)),
        );
        let replayed = if options.dry_run {
            Vec::new()
        } else {
            match writes.replay().await {
                Ok(replayed) => replayed,
                Err(e) => {
                    run.outcome = skipped(e, None);
                    return run;
                }
            }
        };
        let links = match self.store.lock() {
            Ok(store) => store.links(&mailbox),
            Err(_) => {
                run.outcome = skipped("the database handle was poisoned".into(), None);
                return run;
            }
        };
        let links = match links {
            Ok(links) => links,
            Err(e) => {
                run.outcome = skipped(e.to_string(), None);
                return run;
            }
        };
        let observer = Observer {
            halo: self.halo,
            graph,
            halo_mapping: self.settings.halo_mapping,
            graph_mapping: self.settings.graph_mapping,
            agents: self.agents,
            read_ahead,
        };
        let previous = match self.cursors(agent.id, &mailbox, options) {
            Ok(previous) => previous,
            Err(e) => {
                run.outcome = skipped(e, None);
                return run;
            }
        };
        let observed = match &previous {
            Some(previous) => {
                observer
                    .incremental(agent.id, &mailbox, self.window, links, previous)
                    .await
            }
            None => observer.full(agent.id, &mailbox, self.window, links).await,
        };
        let mut observation = match observed {
            Ok(observation) => observation,
            Err(error) => {
                let (health, diagnosis) = match &error {
                    ObserveError::Graph(e) => (health_of(e), e.diagnosis(graph.access())),
                    ObserveError::Halo(_) => (AgentHealth::Error, None),
                };
                if !options.dry_run {
                    self.set_health(
                        agent.id,
                        health,
                        Some(&error.to_string()),
                        diagnosis.as_deref(),
                    );
                }
                run.outcome = skipped(error.to_string(), diagnosis);
                return run;
            }
        };
        // One meeting seen from several calendars is synced once.
        if let Err(e) =
            super::meetings::settle(&mut observation, &mailbox, self.store, &self.served)
        {
            run.outcome = skipped(e, None);
            return run;
        }
        run.unsynced = observation.skipped;
        let policy = Policy {
            allow_mass_deletes: options.allow_deletes,
            ..self.policy
        };
        let full = plan(&observation.snapshot, &policy);
        let plan = match options.mode {
            Mode::Sync => full,
            Mode::Import { recurring } => for_import(full, recurring, &observation.details),
            Mode::Relink => for_relink(full),
        };
        if options.dry_run {
            run.outcome = AgentOutcome::Planned { plan };
            return run;
        }
        writes.details = &observation.details;
        let applied = apply_with(plan.actions.clone(), &mut writes, progress).await;
        let failed = applied.failed.first().map(|(_, why)| why.clone());
        match &failed {
            Some(why) => self.set_health(agent.id, AgentHealth::Error, Some(why), None),
            None => self.set_health(agent.id, AgentHealth::Ok, None, None),
        }
        // Only a sync carried out whole moves the cursors: what failed or
        // was held back by the guard must be read again next time, and an
        // import or relink does not carry everything a sync would.
        if failed.is_none()
            && plan.guard.is_none()
            && options.mode == Mode::Sync
            && let Err(e) = self.save_cursors(agent.id, &mailbox, &observation.cursors)
        {
            tracing::warn!(agent_id = agent.id, error = %e, "could not save the sync cursors; the next run reads more");
        }
        run.outcome = AgentOutcome::Applied {
            plan,
            applied,
            replayed,
        };
        run
    }

    /// Where each of `agents` whose run will be incremental starts (an
    /// incremental sync, and a Halo cursor saved): what a run reads ahead
    /// once for all of them ([`SharedHalo`], batched delta pages).
    pub fn incremental_starts(
        &self,
        agents: &[&Agent],
        options: RunOptions,
    ) -> Vec<IncrementalStart> {
        if options.pass == Pass::Full || options.mode != Mode::Sync {
            return Vec::new();
        }
        let Ok(store) = self.store.lock() else {
            return Vec::new();
        };
        let window = (self.window.start, self.window.end);
        agents
            .iter()
            .filter_map(|agent| {
                let mailbox = agent.mailbox()?;
                // A cursor that cannot be read is the agent's own run to report.
                let halo_cursor = store.halo_cursor(agent.id, HALO_CURSOR_SCOPE).ok()??;
                let delta_link = store.delta_link(&mailbox, window).ok().flatten();
                Some(IncrementalStart {
                    agent_id: agent.id,
                    mailbox,
                    halo_cursor,
                    delta_link,
                })
            })
            .collect()
    }

    /// Where an incremental run starts: `None` for a full pass (asked for,
    /// or nothing committed yet).
    fn cursors(
        &self,
        agent_id: i64,
        mailbox: &str,
        options: RunOptions,
    ) -> Result<Option<Cursors>, String> {
        if options.pass == Pass::Full || options.mode != Mode::Sync {
            return Ok(None);
        }
        let store = self
            .store
            .lock()
            .map_err(|_| "the database handle was poisoned".to_string())?;
        let window = (self.window.start, self.window.end);
        let halo_modified = store
            .halo_cursor(agent_id, HALO_CURSOR_SCOPE)
            .map_err(|e| e.to_string())?;
        let delta_link = store
            .delta_link(mailbox, window)
            .map_err(|e| e.to_string())?;
        Ok(halo_modified.map(|halo_modified| Cursors {
            delta_link,
            halo_modified: Some(halo_modified),
        }))
    }

    fn save_cursors(&self, agent_id: i64, mailbox: &str, cursors: &Cursors) -> Result<(), String> {
        let now = self.clock.now();
        let store = self
            .store
            .lock()
            .map_err(|_| "the database handle was poisoned".to_string())?;
        let window = (self.window.start, self.window.end);
        if let Some(link) = &cursors.delta_link {
            store
                .save_delta_link(mailbox, window, link, now)
                .map_err(|e| e.to_string())?;
        }
        if let Some(at) = cursors.halo_modified {
            store
                .save_halo_cursor(agent_id, HALO_CURSOR_SCOPE, at, now)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn note_agent(&self, agent: &Agent, connection: &str, mailbox: &str) -> Result<(), String> {
        let row = AgentRow {
            agent_id: agent.id,
            name: agent.name.clone().unwrap_or_default(),
            email: agent.email.clone(),
            mailbox: Some(mailbox.to_string()),
            connection: Some(connection.to_string()),
            enabled: true,
        };
        self.store
            .lock()
            .map_err(|_| "the database handle was poisoned".to_string())?
            .upsert_agent(&row, self.clock.now())
            .map_err(|e| e.to_string())
    }

    fn set_health(
        &self,
        agent_id: i64,
        health: AgentHealth,
        error: Option<&str>,
        diagnosis: Option<&str>,
    ) {
        let now = self.clock.now();
        let saved = self
            .store
            .lock()
            .map_err(|_| "the database handle was poisoned".to_string())
            .and_then(|s| {
                s.set_agent_health(agent_id, health, error, diagnosis, now)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = saved {
            tracing::warn!(agent_id, error = %e, "could not record the agent's sync state");
        }
    }
}

fn health_of(error: &GraphError) -> AgentHealth {
    match error {
        GraphError::Auth(_) | GraphError::Unauthorized { .. } => AgentHealth::ReauthRequired,
        GraphError::AccessDenied { .. }
        | GraphError::MailboxNotEnabled { .. }
        | GraphError::UnknownUser { .. } => AgentHealth::MailboxUnavailable,
        _ => AgentHealth::Error,
    }
}

/// An import's part of a plan: Exchange items new to Halo are created
/// there (series occurrences only when `recurring`), and unlinked copies
/// already on both sides are linked. Nothing else is touched.
pub fn for_import(plan: Plan, recurring: bool, details: &Details) -> Plan {
    let in_series = |id: &String| {
        details
            .events
            .get(id)
            .is_some_and(|identity| identity.series_master_id.is_some())
    };
    let actions = plan
        .actions
        .into_iter()
        .filter(|action| match action {
            Action::Match { .. } => true,
            Action::Create {
                to: Side::Halo,
                link: None,
                source: Source::Exchange(event),
                ..
            } => recurring || !in_series(&event.id),
            _ => false,
        })
        .collect();
    Plan {
        actions,
        conflicts: plan.conflicts,
        guard: None,
    }
}

/// A relink's part of a plan: unlinked copies already on both sides are
/// linked again (by halosync's markers, else by agent, start, end and
/// subject). Where two copies differ, the conflict policy decides which
/// one the other becomes, as in any match; nothing is created or deleted.
pub fn for_relink(plan: Plan) -> Plan {
    let actions = plan
        .actions
        .into_iter()
        .filter(|action| matches!(action, Action::Match { .. }))
        .collect();
    Plan {
        actions,
        conflicts: plan.conflicts,
        guard: None,
    }
}
