//! One run over several agents, each through the Exchange connection that
//! serves it: what `sync`, `import`, `relink` and the daemon's jobs share.
//! How a run is shown (printed, or counted in metrics) is the caller's
//! [`Reporter`].

use std::collections::HashMap;
use std::sync::Mutex;

use super::halo_map::AgentDirectory;
use super::observe::{ReadAhead, SharedHalo};
use super::run::{AgentOutcome, AgentRun, Engine, IncrementalStart, RunOptions};
use crate::config::{Config, ConnectionKind};
use crate::graph::FirstDeltaPage;
use crate::halo::Agent;
use crate::session::{Session, connection_client, served};
use crate::store::Store;

/// How one agent's part of a run ended.
#[derive(Debug)]
pub enum AgentResult {
    Ran(AgentRun),
    /// Not run at all: no connection serves the agent, or its client could
    /// not be built (a sign-in missing, a certificate unreadable).
    NotRun {
        reason: String,
        operator: bool,
    },
}

/// Told about each agent as the run goes.
pub trait Reporter: Send {
    fn started(&mut self, agent: &Agent, n: usize, of: usize);
    /// `done` of the agent's `total` writes are carried out; false stops
    /// the run after the write in flight.
    fn progress(&mut self, done: usize, total: usize) -> bool;
    fn finished(&mut self, agent: &Agent, result: &AgentResult);
}

/// What a whole run comes to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// An administrator must act: a sign-in, a mailbox's access, the guard.
    pub needs_operator: bool,
    /// Something failed that a later run may get through.
    pub failed: bool,
}

/// Runs `agents` (served agents of `session`) one after the other.
pub async fn run_agents(
    config: &Config,
    session: &Session,
    store: &Mutex<Store>,
    options: RunOptions,
    agents: &[&Agent],
    reporter: &mut dyn Reporter,
) -> Verdict {
    let directory = AgentDirectory::new(
        session
            .agents
            .iter()
            .filter_map(|a| a.mailbox().map(|m| (a.id, m))),
    );
    let engine = Engine::new(
        &config.sync,
        &session.halo,
        store,
        session.clock.as_ref(),
        &directory,
        session
            .agents
            .iter()
            .filter(|agent| served(config, agent))
            .filter_map(Agent::mailbox)
            .collect(),
    )
    .with_owner_overrides(&config.connections);
    let starts = engine.incremental_starts(agents, options);
    let shared_halo = SharedHalo::new(
        starts
            .iter()
            .map(|start| (start.agent_id, start.halo_cursor)),
        engine.window,
    );
    let mut first_delta_pages = read_delta_pages_ahead(config, session, &starts).await;
    let mut verdict = Verdict::default();
    for (n, agent) in agents.iter().enumerate() {
        if n > 0 && !reporter.progress(0, 0) {
            // Stopping: the agents not reached are synced next run.
            verdict.failed = true;
            break;
        }
        reporter.started(agent, n + 1, agents.len());
        let mailbox = agent.mailbox().unwrap_or_default();
        let Some(connection) = config
            .connections
            .iter()
            .find(|c| c.agents.serves(&mailbox))
        else {
            let result = AgentResult::NotRun {
                reason: "no [[exchange.connection]] serves this agent".into(),
                operator: false,
            };
            verdict.failed = true;
            reporter.finished(agent, &result);
            continue;
        };
        let graph = match connection_client(
            connection,
            &session.upstreams,
            session.tokens.as_ref(),
            Some(agent.id),
        ) {
            Ok(graph) => graph,
            Err(e) => {
                let result = AgentResult::NotRun {
                    reason: e.to_string(),
                    operator: true,
                };
                verdict.needs_operator = true;
                reporter.finished(agent, &result);
                continue;
            }
        };
        let run = engine
            .agent(
                agent,
                &connection.name,
                &graph,
                options,
                ReadAhead {
                    halo: shared_halo.listing_of(agent.id),
                    first_delta_page: first_delta_pages.remove(&mailbox).as_ref(),
                },
                &mut |done, total| reporter.progress(done, total),
            )
            .await;
        match &run.outcome {
            AgentOutcome::Skipped { diagnosis, .. } => {
                // A diagnosis names something an administrator must fix.
                verdict.needs_operator |= diagnosis.is_some();
                verdict.failed |= diagnosis.is_none();
            }
            AgentOutcome::Planned { plan } => verdict.needs_operator |= plan.guard.is_some(),
            AgentOutcome::Applied { plan, applied, .. } => {
                verdict.needs_operator |= plan.guard.is_some();
                verdict.failed |= !applied.failed.is_empty();
            }
        }
        reporter.finished(agent, &AgentResult::Ran(run));
    }
    verdict
}

/// The first page of every incremental agent's delta round, read through
/// `$batch` by each connection whose one sign-in reads every mailbox it
/// serves (a per-agent connection has a token per mailbox, so nothing to
/// share): with nothing changed, that page is the whole round, so 20
/// mailboxes cost one request. By mailbox; a connection with a single such
/// mailbox is left to its own round.
async fn read_delta_pages_ahead(
    config: &Config,
    session: &Session,
    starts: &[IncrementalStart],
) -> HashMap<String, FirstDeltaPage> {
    let mut pages = HashMap::new();
    for connection in &config.connections {
        if connection.kind == ConnectionKind::PerAgent {
            continue;
        }
        let links: Vec<(String, String)> = starts
            .iter()
            .filter(|start| {
                config
                    .connections
                    .iter()
                    .find(|c| c.agents.serves(&start.mailbox))
                    .is_some_and(|serving| serving.name == connection.name)
            })
            .filter_map(|start| Some((start.mailbox.clone(), start.delta_link.clone()?)))
            .collect();
        if links.len() < 2 {
            continue;
        }
        match connection_client(
            connection,
            &session.upstreams,
            session.tokens.as_ref(),
            None,
        ) {
            Ok(graph) => pages.extend(graph.first_delta_pages(&links).await),
            // Each agent's run builds its own client and reports why.
            Err(error) => {
                tracing::debug!(connection = %connection.name, %error, "delta pages not read ahead")
            }
        }
    }
    pages
}
