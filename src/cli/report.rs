//! How a run is shown: one line per write and why, per agent, and a
//! summary table at the end.

use crate::model::Appointment;
use crate::sync::plan::{Action, Plan, Reason, Side, Target};
use crate::sync::run::{AgentOutcome, AgentRun};

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

/// The end of an Exchange id: enough to tell events apart in a listing.
fn tail(id: &str) -> &str {
    let start = id.char_indices().rev().nth(11).map_or(0, |(at, _)| at);
    &id[start..]
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
pub(super) fn describe(action: &Action) -> Option<String> {
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
        Action::Delete {
            to, target, reason, ..
        } => {
            let what = match target {
                Target::Halo(t) => format!("appointment {}", t.id),
                Target::Exchange(t) => format!("event …{}", tail(&t.id)),
            };
            format!("delete in {}: {what} ({})", side(*to), why(*reason))
        }
        Action::Match {
            halo,
            graph,
            overwrite,
        } => match overwrite {
            None => format!("link: {} (already on both sides)", summary(&halo.content)),
            // Shown as the copy it becomes.
            Some(to) => format!(
                "link and update in {}: {} (already on both sides, details differ)",
                side(*to),
                summary(if *to == Side::Halo {
                    &graph.content
                } else {
                    &halo.content
                })
            ),
        },
        Action::Record { .. } | Action::Forget { .. } => return None,
    })
}

/// What a run did (or would do) in one mailbox, counted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Tally {
    pub created_halo: usize,
    pub created_exchange: usize,
    pub updated_halo: usize,
    pub updated_exchange: usize,
    pub deleted_halo: usize,
    pub deleted_exchange: usize,
    pub linked: usize,
    pub failed: usize,
    pub conflicts: usize,
    pub held_back: usize,
}

impl Tally {
    fn count(&mut self, action: &Action) {
        let slot = match action {
            Action::Create { to: Side::Halo, .. } => &mut self.created_halo,
            Action::Create {
                to: Side::Exchange, ..
            } => &mut self.created_exchange,
            Action::Update { to: Side::Halo, .. } => &mut self.updated_halo,
            Action::Update {
                to: Side::Exchange, ..
            } => &mut self.updated_exchange,
            Action::Delete { to: Side::Halo, .. } => &mut self.deleted_halo,
            Action::Delete {
                to: Side::Exchange, ..
            } => &mut self.deleted_exchange,
            Action::Match { .. } => &mut self.linked,
            Action::Record { .. } | Action::Forget { .. } => return,
        };
        *slot += 1;
    }

    fn of_plan(plan: &Plan, done: impl Iterator<Item = Action>) -> Self {
        let mut tally = Tally {
            conflicts: plan.conflicts,
            held_back: plan.guard.map_or(0, |g| g.would_delete),
            ..Tally::default()
        };
        for action in done {
            tally.count(&action);
        }
        tally
    }
}

/// Prints one agent's run; returns its tally (None when it was skipped).
pub(super) fn print_agent(header: &str, run: &AgentRun, dry_run: bool) -> Option<Tally> {
    println!("{header}");
    for item in &run.unsynced {
        println!("  not synced: {item}");
    }
    let tally = match &run.outcome {
        AgentOutcome::Skipped { reason, diagnosis } => {
            println!("  skipped: {reason}");
            if let Some(diagnosis) = diagnosis {
                println!("  what to do: {diagnosis}");
            }
            return None;
        }
        AgentOutcome::Planned { plan } => {
            let lines: Vec<String> = plan.actions.iter().filter_map(describe).collect();
            for line in &lines {
                println!("  would {line}");
            }
            if lines.is_empty() {
                println!("  nothing to do");
            }
            Tally::of_plan(plan, plan.actions.iter().cloned())
        }
        AgentOutcome::Applied {
            plan,
            applied,
            replayed,
        } => {
            if !replayed.is_empty() {
                println!(
                    "  finished {} write(s) interrupted last time",
                    replayed.len()
                );
            }
            let done: Vec<String> = applied.done.iter().filter_map(describe).collect();
            for line in &done {
                println!("  {line}");
            }
            for (action, error) in &applied.failed {
                if let Some(line) = describe(action) {
                    println!("  FAILED {line}: {error}");
                }
            }
            if done.is_empty() && applied.failed.is_empty() {
                println!("  nothing to do");
            }
            let mut tally = Tally::of_plan(plan, applied.done.iter().cloned());
            tally.failed = applied.failed.len();
            tally
        }
    };
    if tally.conflicts > 0 {
        println!("  conflicts resolved by policy: {}", tally.conflicts);
    }
    if let AgentOutcome::Planned { plan } | AgentOutcome::Applied { plan, .. } = &run.outcome
        && let Some(guard) = plan.guard
    {
        println!(
            "  held back: {} deletions exceed this mailbox's limit of {}; nothing was deleted. \
Check why so much disappeared, then run `halosync sync --once --allow-deletes --agent {}`{}",
            guard.would_delete,
            guard.limit,
            run.mailbox,
            if dry_run { "" } else { " to let them through" }
        );
    }
    Some(tally)
}

/// The table at the end of a run.
pub(super) fn print_summary(rows: &[(String, Option<Tally>)], dry_run: bool) {
    if rows.is_empty() {
        return;
    }
    let width = rows.iter().map(|(m, _)| m.len()).max().unwrap_or(0).max(7);
    println!();
    if dry_run {
        println!("Summary (dry run: nothing was changed)");
    } else {
        println!("Summary");
    }
    println!(
        "{:<width$}  {:>15}  {:>15}  {:>15}  {:>6}  {:>9}  {:>6}  {:>9}",
        "mailbox",
        "created H / E",
        "updated H / E",
        "deleted H / E",
        "linked",
        "conflicts",
        "failed",
        "held back",
    );
    for (mailbox, tally) in rows {
        match tally {
            None => println!("{mailbox:<width$}  skipped (see above)"),
            Some(t) => println!(
                "{mailbox:<width$}  {:>15}  {:>15}  {:>15}  {:>6}  {:>9}  {:>6}  {:>9}",
                format!("{} / {}", t.created_halo, t.created_exchange),
                format!("{} / {}", t.updated_halo, t.updated_exchange),
                format!("{} / {}", t.deleted_halo, t.deleted_exchange),
                t.linked,
                t.conflicts,
                t.failed,
                t.held_back,
            ),
        }
    }
}
