//! `halosync plan`: what a sync would do right now, per agent, and why —
//! read-only. It observes both systems over the sync window, plans with the
//! configured policies, prints every action, and changes nothing in Halo,
//! in Exchange or in the database.

use std::process::ExitCode;

use chrono::Duration;

use super::connections::{Session, agent_name, connection_client, served};
use super::exit;
use crate::config::Config;
use crate::graph::Window;
use crate::halo::Agent;
use crate::model::Appointment;
use crate::store::Store;
use crate::sync::graph_map::GraphMapping;
use crate::sync::halo_map::{AgentDirectory, HaloMapping};
use crate::sync::observe::Observer;
use crate::sync::plan::{Action, Plan, Policy, Reason, Side, plan};

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Only this agent (their e-mail address).
    #[arg(long, value_name = "EMAIL")]
    pub agent: Option<String>,
}

pub fn run(config: &Config, args: &PlanArgs) -> ExitCode {
    super::block_on(preview(config, args))
}

async fn preview(config: &Config, args: &PlanArgs) -> ExitCode {
    // A preview records nothing: the session's requests go to a log in memory.
    let session = match Session::open(config).await {
        Ok(session) => session,
        Err(code) => return code,
    };
    let wanted = args.agent.as_deref().map(|a| a.trim().to_ascii_lowercase());
    let agents: Vec<&Agent> = session
        .agents
        .iter()
        .filter(|agent| served(config, agent))
        .filter(|agent| wanted.is_none() || agent.mailbox() == wanted)
        .collect();
    if let Some(email) = &wanted
        && agents.is_empty()
    {
        eprintln!("halosync: {email} is not an enabled Halo agent served by this config");
        return ExitCode::from(exit::CONFIG);
    }
    let directory = AgentDirectory::new(
        session
            .agents
            .iter()
            .filter_map(|a| a.mailbox().map(|m| (a.id, m))),
    );
    let now = session.clock.now();
    let window = Window::new(
        now - Duration::days(i64::from(config.sync.window.days_past)),
        now + Duration::days(i64::from(config.sync.window.days_ahead)),
    );
    let policy = Policy {
        conflict: config.sync.conflict_policy,
        edit_delete: config.sync.edit_delete_policy,
        deletes: config.sync.delete_policy,
        guard: config.sync.delete_guard,
        allow_mass_deletes: false,
    };
    // Opened once, read-only: the links of every agent come from it.
    let store = if config.store.path.exists() {
        match Store::open_read_only(&config.store.path) {
            Ok(store) => Some(store),
            Err(e) => {
                eprintln!("halosync: {e}");
                return ExitCode::from(exit::FAILURE);
            }
        }
    } else {
        None
    };
    let preview = Preview {
        config,
        session: &session,
        store,
        directory,
        window,
        policy,
    };
    let mut all_ok = true;
    for agent in agents {
        all_ok &= preview.agent(agent).await;
    }
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::FAILURE)
    }
}

/// What every agent's preview shares.
struct Preview<'a> {
    config: &'a Config,
    session: &'a Session,
    /// `None` before the database exists: no links yet.
    store: Option<Store>,
    directory: AgentDirectory,
    window: Window,
    policy: Policy,
}

impl Preview<'_> {
    /// Prints one agent's plan; false if the agent could not be read.
    async fn agent(&self, agent: &Agent) -> bool {
        let (config, session) = (self.config, self.session);
        let mailbox = agent.mailbox().unwrap_or_default();
        println!("{} <{mailbox}>", agent_name(agent));
        let Some(connection) = config
            .connections
            .iter()
            .find(|c| c.agents.serves(&mailbox))
        else {
            println!("  skipped: no connection serves this agent");
            return false;
        };
        let graph = match connection_client(
            connection,
            &session.upstreams,
            session.tokens.as_ref(),
            Some(agent.id),
        ) {
            Ok(graph) => graph,
            Err(e) => {
                println!("  skipped: {e}");
                return false;
            }
        };
        let links = match self.store.as_ref().map(|s| s.links(&mailbox)) {
            None => Vec::new(),
            Some(Ok(links)) => links,
            Some(Err(e)) => {
                println!("  skipped: {e}");
                return false;
            }
        };
        let observer = Observer {
            halo: &session.halo,
            graph: &graph,
            halo_mapping: HaloMapping::from_config(&config.sync),
            graph_mapping: GraphMapping::from_config(&config.sync),
            agents: &self.directory,
        };
        let observation = match observer.full(agent.id, &mailbox, self.window, links).await {
            Ok(observation) => observation,
            Err(e) => {
                println!("  skipped: {e}");
                return false;
            }
        };
        for skipped in &observation.skipped {
            println!("  not synced: {skipped}");
        }
        print_plan(&plan(&observation.snapshot, &self.policy));
        true
    }
}

fn print_plan(plan: &Plan) {
    let writes: Vec<String> = plan.actions.iter().filter_map(describe).collect();
    if writes.is_empty() {
        println!("  nothing to do");
    }
    for line in &writes {
        println!("  {line}");
    }
    if plan.conflicts > 0 {
        println!("  conflicts resolved by policy: {}", plan.conflicts);
    }
    if let Some(guard) = plan.guard {
        println!(
            "  held back: {} deletions exceed the limit of {} (run with --allow-deletes once a sync command exists, or raise sync.max_deletes_per_run)",
            guard.would_delete, guard.limit
        );
    }
}

fn side(side: Side) -> &'static str {
    match side {
        Side::Halo => "Halo",
        Side::Exchange => "Exchange",
    }
}

fn summary(content: &Appointment) -> String {
    let subject = if content.subject.is_empty() {
        "(private)"
    } else {
        content.subject.as_str()
    };
    format!(
        "\"{subject}\" {} – {}",
        content.start.format("%Y-%m-%d %H:%M"),
        content.end.format("%H:%M UTC")
    )
}

fn why(reason: Reason) -> String {
    match reason {
        Reason::New => "new".into(),
        Reason::Changed => "changed".into(),
        Reason::Conflict { winner } => format!("both changed; {} wins", side(winner)),
        Reason::Deleted => "deleted on the other side".into(),
        Reason::EditBeatsDelete => "edited here, deleted there: the edit wins".into(),
        Reason::DeleteBeatsEdit => "deleted there, edited here: the deletion wins".into(),
        Reason::Unchanged => "unchanged".into(),
    }
}

/// One line per write (recording new versions writes nothing, so is not shown).
fn describe(action: &Action) -> Option<String> {
    Some(match action {
        Action::Create {
            to, source, reason, ..
        } => format!(
            "create in {}: {} ({})",
            side(*to),
            summary(source.content()),
            why(*reason)
        ),
        Action::Update {
            to, source, reason, ..
        } => format!(
            "update in {}: {} ({})",
            side(*to),
            summary(source.content()),
            why(*reason)
        ),
        Action::Delete { to, reason, .. } => format!("delete in {} ({})", side(*to), why(*reason)),
        Action::Match {
            halo, overwrite, ..
        } => match overwrite {
            None => format!("link: {} (already on both sides)", summary(&halo.content)),
            Some(to) => format!(
                "link and update in {}: {} (already on both sides, details differ)",
                side(*to),
                summary(&halo.content)
            ),
        },
        Action::Record { .. } | Action::Forget { .. } => return None,
    })
}
