//! `halosync status`: each agent's sync health and each job's last run,
//! read from the database (read-only, so it works beside the service).
//! Exits 3 when something needs a person.

use std::process::ExitCode;

use chrono::{DateTime, Utc};

use super::exit;
use crate::config::Config;
use crate::daemon::JobName;
use crate::store::{AgentStatus, RunOutcome, RunRecord, Store, StoreError, TokenState};

pub fn run(config: &Config) -> ExitCode {
    match report(config) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("halosync: {error}");
            ExitCode::from(exit::FAILURE)
        }
    }
}

fn report(config: &Config) -> Result<ExitCode, StoreError> {
    let store = Store::open_read_only(&config.store.path)?;
    let agents = store.agent_statuses()?;
    let unattributed = store.unattributed_pending_writes()?;
    let runs = JobName::ALL
        .into_iter()
        .map(|job| Ok((job, store.last_run(job.as_str())?)))
        .collect::<Result<Vec<_>, StoreError>>()?;

    print_agents(&agents);
    if unattributed > 0 {
        println!("\n{unattributed} pending write(s) not yet tied to an agent's appointment");
    }
    println!();
    print_runs(&runs);

    let agents_needing_action = agents.iter().filter(|a| a.needs_action()).count();
    let jobs_needing_action = runs
        .iter()
        .filter(|(_, run)| run.as_ref().is_some_and(needs_operator))
        .count();
    if agents_needing_action + jobs_needing_action == 0 {
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "\nneeds action: {agents_needing_action} agent(s), {jobs_needing_action} job(s); see the details above"
    );
    Ok(ExitCode::from(exit::OPERATOR))
}

fn print_agents(agents: &[AgentStatus]) {
    if agents.is_empty() {
        println!("no agents yet: the first pull lists them from Halo");
        return;
    }
    let rows: Vec<[String; 7]> = agents
        .iter()
        .map(|agent| {
            [
                format!("{} (#{})", agent.name, agent.agent_id),
                agent.mailbox.clone().unwrap_or_else(|| "-".into()),
                agent.connection.clone().unwrap_or_else(|| "-".into()),
                state(agent),
                agent.pending_writes.to_string(),
                agent.conflicts.to_string(),
                agent
                    .subscription_expires
                    .map_or_else(|| "none".into(), |at| format!("expires {}", time(at))),
            ]
        })
        .collect();
    print_table(
        [
            "agent",
            "mailbox",
            "connection",
            "state",
            "pending",
            "conflicts",
            "subscription",
        ],
        &rows,
    );
    for agent in agents
        .iter()
        .filter(|a| a.last_error.is_some() || a.needs_action())
    {
        println!("\n{} (#{}):", agent.name, agent.agent_id);
        if let Some(error) = &agent.last_error {
            println!("  last error: {error}");
        }
        if let Some(diagnosis) = &agent.diagnosis {
            println!("  what to do: {diagnosis}");
        } else if agent.sign_in == Some(TokenState::ReauthRequired) {
            println!(
                "  what to do: the stored sign-in was refused; sign in again for connection {}",
                agent.connection.as_deref().unwrap_or("-")
            );
        }
    }
}

fn state(agent: &AgentStatus) -> String {
    let mut state = agent.state.clone();
    if !agent.enabled && state != "disabled" {
        state.push_str(", not enabled");
    }
    match agent.sign_in {
        Some(TokenState::ReauthRequired) => state.push_str(", sign-in expired"),
        Some(TokenState::Revoked) => state.push_str(", disconnected"),
        Some(TokenState::Ok) | None => {}
    }
    state
}

fn print_runs(runs: &[(JobName, Option<RunRecord>)]) {
    let rows: Vec<[String; 4]> = runs
        .iter()
        .map(|(job, run)| match run {
            None => [job.to_string(), "never".into(), "-".into(), String::new()],
            Some(run) => [
                job.to_string(),
                time(run.started_at),
                run.outcome.as_str().into(),
                detail(run),
            ],
        })
        .collect();
    print_table(["job", "last run", "outcome", "detail"], &rows);
}

fn detail(run: &RunRecord) -> String {
    let took = run
        .finished_at
        .map(|end| (end - run.started_at).num_milliseconds() as f64 / 1000.0);
    let text = match run.outcome {
        RunOutcome::Running => "running now".to_owned(),
        RunOutcome::Ok => run
            .stats
            .as_ref()
            .and_then(|stats| stats.get("summary"))
            .and_then(|summary| summary.as_str())
            .unwrap_or_default()
            .to_owned(),
        RunOutcome::Failed | RunOutcome::Skipped => run.error.clone().unwrap_or_default(),
    };
    match took {
        Some(seconds) => format!("{text} (took {seconds:.1} s)"),
        None => text,
    }
}

/// Whether the run was stopped by something only a person can fix.
fn needs_operator(run: &RunRecord) -> bool {
    run.stats
        .as_ref()
        .and_then(|stats| stats.get("needs_operator"))
        .is_some_and(|flag| flag.as_bool() == Some(true))
}

fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

fn print_table<const N: usize>(header: [&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; N]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header);
    for row in rows {
        line(row.each_ref().map(String::as_str));
    }
}
