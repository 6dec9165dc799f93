//! `halosync demo`: a real sync against the built-in simulator, with
//! nothing to set up. It starts the simulator in this process, seeds two
//! technicians' Halo appointments and Outlook calendars (dates relative to
//! today), then runs what an administrator would: an import, a two-way
//! sync, a round of changes made by people on both sides and the sync that
//! carries them, and a last sync that finds nothing to do.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use super::exit;
use super::sync::{Mode, Pass, run_once};
use crate::clock::{Clock, SystemClock};
use crate::config::{self, Environment};
use crate::sim::server::RunningSimulator;
use crate::sync::run::RunOptions;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Keep the demo's database here instead of a temporary directory
    /// (to look at it afterwards with `sqlite3`).
    #[arg(long, value_name = "DIR")]
    pub keep_in: Option<PathBuf>,
}

const SECRET_VAR: &str = "HALOSYNC_DEMO_SECRET";
const LEAH: &str = "leah@contoso.com";
const TEAMS_TYPE: i64 = 7;

pub fn run(args: &DemoArgs) -> ExitCode {
    super::block_on(demo(args))
}

async fn demo(args: &DemoArgs) -> ExitCode {
    let (dir, temporary) = match &args.keep_in {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!("halosync-demo-{}", uuid::Uuid::new_v4())),
            true,
        ),
    };
    let code = match stage(&dir).await {
        Ok(code) => code,
        Err(message) => {
            eprintln!("halosync demo: {message}");
            ExitCode::from(exit::FAILURE)
        }
    };
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!("\nThe demo's database is in {}", dir.display());
    }
    code
}

async fn stage(dir: &Path) -> Result<ExitCode, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let sim = RunningSimulator::start_local()
        .await
        .map_err(|e| format!("cannot start the simulator: {e}"))?;
    let simulator = &sim.simulator;
    let now = SystemClock.now();
    simulator.seed_json(seed(now).to_string().as_bytes())?;
    let config_path = dir.join("halosync.toml");
    let text = format!(
        "{}\n[sync]\nteams_appointment_type_ids = [{TEAMS_TYPE}]\n",
        simulator
            .config_snippet()
            .replace("HALOSYNC_SIM_SECRET", SECRET_VAR)
    );
    let env = Environment::fixed([(SECRET_VAR, "demo")]);
    let config = config::load_str(&config_path, &text, None, &env)
        .map_err(|e| e.to_string())?
        .config;

    println!(
        "halosync demo: a simulated HaloITSM and Exchange Online at {}\n\
         Two technicians, Leah and Amir. Leah's Outlook holds an audit, a stand-up \
         (also in Halo), a private dentist visit and a weekly series; Halo holds a \
         printer repair, a Teams onboarding call and Amir's laptop handover.\n",
        simulator.base_url()
    );
    let step = |title: &str| println!("\n=== {title}\n");
    let options = |mode| RunOptions {
        mode,
        pass: Pass::Incremental,
        dry_run: false,
        allow_deletes: false,
    };

    step("1. halosync import --recurring: existing Outlook appointments into Halo");
    let code = run_once(&config, None, options(Mode::Import { recurring: true })).await;
    if code != ExitCode::SUCCESS {
        return Ok(code);
    }
    step("2. halosync sync --once: Halo's appointments out to Outlook");
    let code = run_once(&config, None, options(Mode::Sync)).await;
    if code != ExitCode::SUCCESS {
        return Ok(code);
    }

    step(
        "3. People change things: Leah moves the audit in Outlook, a dispatcher renames the printer repair in Halo, Leah deletes the stand-up",
    );
    let state = simulator.state_json();
    let event_id = |subject: &str| -> Result<Value, String> {
        state["events"][LEAH]
            .as_array()
            .and_then(|events| events.iter().find(|e| e["subject"] == subject))
            .map(|e| e["id"].clone())
            .ok_or_else(|| format!("the demo lost the event {subject:?}"))
    };
    let appointment_id = |subject: &str| -> Result<Value, String> {
        state["appointments"]
            .as_array()
            .and_then(|rows| rows.iter().find(|a| a["subject"] == subject))
            .map(|a| a["id"].clone())
            .ok_or_else(|| format!("the demo lost the appointment {subject:?}"))
    };
    let later = now + Duration::days(1);
    simulator
        .act_json(
            json!({"op": "update_event", "mailbox": LEAH, "id": event_id("Server room audit")?,
        "patch": {"start": graph_time(at(later, 11)), "end": graph_time(at(later, 12))}}),
        )
        .await?;
    simulator
        .act_json(
            json!({"op": "update_appointment", "id": appointment_id("Printer repair, 3rd floor")?,
        "changes": {"subject": "Printer repair, 3rd floor (toner too)"}}),
        )
        .await?;
    simulator
        .act_json(json!({"op": "delete_event", "mailbox": LEAH, "id": event_id("Team stand-up")?}))
        .await?;
    println!("(made through the simulator's control API, as a person would in Outlook and Halo)");

    step("4. halosync sync --once: each change carried across, once");
    let code = run_once(&config, None, options(Mode::Sync)).await;
    if code != ExitCode::SUCCESS {
        return Ok(code);
    }
    step("5. halosync sync --once: halosync's own writes coming back are not changes");
    Ok(run_once(&config, None, options(Mode::Sync)).await)
}

fn at(day: DateTime<Utc>, hour: u32) -> String {
    format!("{}T{hour:02}:00:00", day.format("%Y-%m-%d"))
}

fn graph_time(at: String) -> Value {
    json!({"dateTime": at, "timeZone": "UTC"})
}

/// The demo's people and calendars, in the days after `now`.
fn seed(now: DateTime<Utc>) -> Value {
    let day = |n: i64| now + Duration::days(n);
    let event = |subject: &str, d: DateTime<Utc>, from: u32, to: u32| json!({"subject": subject, "start": graph_time(at(d, from)), "end": graph_time(at(d, to))});
    let appointment = |subject: &str, agent: i64, d: DateTime<Utc>, from: u32, to: u32| {
        json!({"subject": subject, "agent_id": agent,
               "start_date": at(d, from), "end_date": at(d, to)})
    };
    let mut dentist = event("Dentist", day(3), 15, 16);
    dentist["sensitivity"] = json!("private");
    let mut weekly = event("Weekly 1:1", day(2), 16, 17);
    weekly["recurrence"] = json!({
        "pattern": {"type": "weekly", "interval": 1,
                    "daysOfWeek": [day(2).format("%A").to_string().to_lowercase()]},
        "range": {"type": "numbered", "startDate": day(2).format("%Y-%m-%d").to_string(),
                  "numberOfOccurrences": 3}
    });
    let mut onboarding = appointment("Onboarding call", 2, day(4), 10, 11);
    onboarding["appointment_type_id"] = json!(TEAMS_TYPE);
    onboarding["agents"] = json!([{"id": 2}, {"id": 3}]);
    json!({
        "agents": [{"id": 2, "name": "Leah Ward", "email": LEAH},
                   {"id": 3, "name": "Amir Haddad", "email": "amir@contoso.com"}],
        "mailboxes": [{"upn": LEAH}, {"upn": "amir@contoso.com"}],
        "events": {LEAH: [event("Server room audit", day(1), 9, 10),
                          event("Team stand-up", day(2), 9, 10), dentist, weekly]},
        "appointments": [
            appointment("Printer repair, 3rd floor", 2, day(2), 13, 14),
            appointment("Team stand-up", 2, day(2), 9, 10),
            onboarding,
            appointment("Laptop handover", 3, day(4), 14, 15)
        ]
    })
}
