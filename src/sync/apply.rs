//! Carrying out a plan: each action is one write, then the link update that
//! records it.
//!
//! The writes go through [`Calendars`] (the two systems, for one mailbox)
//! and the link updates through [`Links`] (the database, or memory in
//! tests), so this file alone decides what a link becomes after each kind of
//! action. A failed write changes no link: the next run observes the same
//! difference and plans it again. One failure does not stop the others.

use std::future::Future;

use super::plan::{Action, GraphId, HaloId, Item, LinkId, Side, Source, Synced, Target};
use crate::model::Appointment;

/// The Graph `transactionId` for creating, in `mailbox`, the copy of Halo
/// appointment `halo_id` as it stood at `halo_version`. The same inputs
/// always give the same id, so a create replayed after a crash or a lost
/// answer returns the event the first attempt made; a later re-creation
/// (after an edit) has a new version and so a new id.
pub fn transaction_id(mailbox: &str, halo_id: HaloId, halo_version: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(
        format!(
            "halosync create\n{}\n{halo_id}\n{halo_version}",
            mailbox.trim().to_ascii_lowercase()
        )
        .as_bytes(),
    );
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    // UUID-shaped, as Graph's examples show transactionIds.
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Why a write did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// Throttled, unavailable, timed out: the next run retries.
    #[error("temporarily failed: {0}")]
    Transient(String),
    /// The target changed since it was observed (`If-Match` failed).
    #[error("changed since it was read")]
    Conflict,
    /// The target is gone; the next run confirms the deletion.
    #[error("no longer exists")]
    NotFound,
    /// Refused for a reason a retry will not fix (permissions, validation).
    #[error("refused: {0}")]
    Refused(String),
}

/// The two systems, as seen for one mailbox. Each write returns the item as
/// that system now holds it (its new version and its own rendering of the
/// content), which is what the link records: when the write comes back in a
/// later observation it matches, so it is not mistaken for a change.
pub trait Calendars {
    /// Creates a Halo appointment copying each of `origins` (in one request:
    /// an import creates thousands, and Halo's budget is per request);
    /// one result per origin, in order.
    fn create_in_halo(
        &mut self,
        origins: &[&Item<GraphId>],
    ) -> impl Future<Output = Vec<Result<Item<HaloId>, WriteError>>> + Send;
    /// Overwrites each update's target with its content (in one request,
    /// as [`Calendars::create_in_halo`]); one result per update, in order.
    fn update_in_halo(
        &mut self,
        updates: &[HaloUpdate<'_>],
    ) -> impl Future<Output = Vec<Result<Item<HaloId>, WriteError>>> + Send;
    fn delete_in_halo(
        &mut self,
        target: &Synced<HaloId>,
    ) -> impl Future<Output = Result<(), WriteError>> + Send;
    /// Creates `content` (copied from `origin`) as an Exchange event.
    fn create_in_exchange(
        &mut self,
        content: &Appointment,
        origin: &Item<HaloId>,
    ) -> impl Future<Output = Result<CreatedEvent, WriteError>> + Send;
    fn update_in_exchange(
        &mut self,
        target: &Synced<GraphId>,
        content: &Appointment,
    ) -> impl Future<Output = Result<Item<GraphId>, WriteError>> + Send;
    fn delete_in_exchange(
        &mut self,
        target: &Synced<GraphId>,
    ) -> impl Future<Output = Result<(), WriteError>> + Send;
}

/// A Halo appointment overwritten with what an Exchange event holds.
#[derive(Debug, Clone, Copy)]
pub struct HaloUpdate<'a> {
    pub target: &'a Synced<HaloId>,
    pub content: &'a Appointment,
    /// The event the content comes from.
    pub origin: &'a Item<GraphId>,
}

/// An Exchange event created from a Halo appointment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedEvent {
    /// The event in the agent's calendar; `None` when the appointment was
    /// created as a meeting in another calendar (owner override) and the
    /// agent's copy has not arrived yet: the link then waits for it.
    pub event: Option<Item<GraphId>>,
    /// The Halo appointment as it now stands, when creating the event also
    /// wrote to it (the Teams join link Exchange made), so the link records
    /// that write instead of mistaking it for an edit next run.
    pub halo: Option<Item<HaloId>>,
}

/// Which side an appointment first appeared on, kept with a new link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Halo,
    Exchange,
    /// Already on both sides, matched by an import or sync.
    Matched,
}

/// Where links are kept.
pub trait Links {
    type Error: std::fmt::Display;
    /// Sets both sides of `link`, or creates a link when `None` (first seen
    /// on `origin`, which is ignored for an existing link); returns its id.
    fn save(
        &mut self,
        link: Option<LinkId>,
        halo: Option<Synced<HaloId>>,
        graph: Option<Synced<GraphId>>,
        origin: Origin,
    ) -> Result<LinkId, Self::Error>;
    fn remove(&mut self, link: LinkId) -> Result<(), Self::Error>;
}

/// What happened to each action of a plan.
#[derive(Debug, Default)]
pub struct Applied {
    pub done: Vec<Action>,
    pub failed: Vec<(Action, String)>,
}

/// Carries out `actions` in order against `sync`: the two calendars and
/// the link store of one mailbox (one value, so an engine can pair its
/// clients with its database and a test can keep everything in memory).
pub async fn apply<S: Calendars + Links + Send>(actions: Vec<Action>, sync: &mut S) -> Applied {
    apply_with(actions, sync, &mut |_, _| true).await
}

/// [`apply`], calling `progress(done, total)` after each action; when it
/// answers false (halosync is stopping) the rest is left undone, reported
/// as failed so that nothing counts it as carried out.
pub async fn apply_with<S: Calendars + Links + Send>(
    actions: Vec<Action>,
    sync: &mut S,
    progress: &mut (dyn FnMut(usize, usize) -> bool + Send),
) -> Applied {
    let total = actions.len();
    let mut applied = Applied::default();
    let mut actions = halo_updates_together(actions).into_iter().peekable();
    let mut done = 0;
    while let Some(action) = actions.next() {
        if let Some(kind) = HaloSave::of(&action) {
            // Consecutive saves of one kind in Halo go in one request.
            let mut batch = vec![action];
            while batch.len() < HALO_SAVE_BATCH
                && let Some(next) = actions.next_if(|a| HaloSave::of(a) == Some(kind))
            {
                batch.push(next);
            }
            done += batch.len();
            let results = match kind {
                HaloSave::Create => create_batch_in_halo(&batch, sync).await,
                HaloSave::Update => update_batch_in_halo(&batch, sync).await,
            };
            for (action, result) in results {
                match result {
                    Ok(()) => applied.done.push(action.clone()),
                    Err(error) => applied.failed.push((action.clone(), error)),
                }
            }
        } else {
            done += 1;
            match apply_one(&action, sync).await {
                Ok(()) => applied.done.push(action),
                Err(error) => applied.failed.push((action, error)),
            }
        }
        if !progress(done, total) {
            break;
        }
    }
    for action in actions {
        applied
            .failed
            .push((action, "not carried out: halosync is stopping".into()));
    }
    applied
}

/// Halo appointments saved per request: the Halo client's own batch.
const HALO_SAVE_BATCH: usize = crate::halo::SAVE_BATCH_SIZE;

/// The actions saved in Halo several to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HaloSave {
    Create,
    Update,
}

impl HaloSave {
    fn of(action: &Action) -> Option<Self> {
        if creates_in_halo(action).is_some() {
            Some(Self::Create)
        } else if updates_in_halo(action).is_some() {
            Some(Self::Update)
        } else {
            None
        }
    }
}

/// `actions` with every update of Halo moved up to the first, so they go in
/// as few requests as possible. Each action concerns its own link, so the
/// order between links does not matter.
fn halo_updates_together(actions: Vec<Action>) -> Vec<Action> {
    let Some(first) = actions.iter().position(|a| updates_in_halo(a).is_some()) else {
        return actions;
    };
    let (updates, others): (Vec<Action>, Vec<Action>) = actions
        .into_iter()
        .partition(|a| updates_in_halo(a).is_some());
    let mut ordered = others;
    ordered.splice(first..first, updates);
    ordered
}

/// The Halo overwrite `action` makes, if it is an update of Halo from
/// Exchange.
fn updates_in_halo(action: &Action) -> Option<HaloUpdate<'_>> {
    match action {
        Action::Update {
            target: Target::Halo(target),
            source: Source::Exchange(from),
            ..
        } => Some(HaloUpdate {
            target,
            content: &from.content,
            origin: from,
        }),
        _ => None,
    }
}

/// Writes the updates of `batch` (all updates of Halo) in one request, then
/// records each one that was made.
async fn update_batch_in_halo<'a, S: Calendars + Links + Send>(
    batch: &'a [Action],
    sync: &mut S,
) -> Vec<(&'a Action, Result<(), String>)> {
    let updates: Vec<HaloUpdate<'_>> = batch.iter().filter_map(updates_in_halo).collect();
    let written = sync.update_in_halo(&updates).await;
    record_halo_batch(batch, written, sync, |action| {
        match (action, updates_in_halo(action)) {
            (Action::Update { link, .. }, Some(update)) => {
                Some((Some(*link), update.origin.synced(), Origin::Matched))
            }
            _ => None,
        }
    })
}

/// Records each action of `batch` whose Halo write (`written`: one result
/// per action, in order) was made. `linking` says, for an action, the link
/// to save, the Exchange side it pairs with and where the pair came from.
fn record_halo_batch<'a, S: Links>(
    batch: &'a [Action],
    written: Vec<Result<Item<HaloId>, WriteError>>,
    sync: &mut S,
    linking: impl Fn(&Action) -> Option<(Option<LinkId>, Synced<GraphId>, Origin)>,
) -> Vec<(&'a Action, Result<(), String>)> {
    let mut written = written.into_iter();
    batch
        .iter()
        .map(|action| {
            let Some((link, graph, origin)) = linking(action) else {
                return (action, Err("not a write of this batch".to_owned()));
            };
            let result = match written.next() {
                Some(Ok(halo)) => sync
                    .save(link, Some(halo.synced()), Some(graph), origin)
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Some(Err(error)) => Err(error.to_string()),
                None => Err("Halo answered for fewer appointments than were sent".to_owned()),
            };
            (action, result)
        })
        .collect()
}

/// The Exchange event a create in Halo copies, if `action` is one.
fn creates_in_halo(action: &Action) -> Option<&Item<GraphId>> {
    match action {
        Action::Create {
            to: Side::Halo,
            source: Source::Exchange(from),
            ..
        } => Some(from),
        _ => None,
    }
}

/// Creates the copies of `batch` (all creates in Halo) in one write, then
/// links each one that was made.
async fn create_batch_in_halo<'a, S: Calendars + Links + Send>(
    batch: &'a [Action],
    sync: &mut S,
) -> Vec<(&'a Action, Result<(), String>)> {
    let origins: Vec<&Item<GraphId>> = batch.iter().filter_map(creates_in_halo).collect();
    let created = sync.create_in_halo(&origins).await;
    record_halo_batch(batch, created, sync, |action| {
        match (action, creates_in_halo(action)) {
            (Action::Create { link, .. }, Some(origin)) => {
                Some((*link, origin.synced(), Origin::Exchange))
            }
            _ => None,
        }
    })
}

async fn apply_one<S: Calendars + Links + Send>(
    action: &Action,
    sync: &mut S,
) -> Result<(), String> {
    let saved = |r: Result<LinkId, S::Error>| r.map(|_| ()).map_err(|e| e.to_string());
    match action {
        Action::Create {
            to, link, source, ..
        } => {
            let (halo, graph) = create(*to, source, sync).await?;
            let origin = match to {
                Side::Exchange => Origin::Halo,
                Side::Halo => Origin::Exchange,
            };
            saved(sync.save(*link, Some(halo), graph, origin))
        }
        Action::Update {
            link,
            target,
            source,
            ..
        } => {
            let (halo, graph) = match (target, source) {
                (Target::Exchange(target), Source::Halo(from)) => {
                    let written = sync
                        .update_in_exchange(target, &from.content)
                        .await
                        .map_err(|e| e.to_string())?;
                    (from.synced(), written.synced())
                }
                (Target::Halo(target), Source::Exchange(from)) => {
                    let update = HaloUpdate {
                        target,
                        content: &from.content,
                        origin: from,
                    };
                    let written = update_one_in_halo(sync, update).await?;
                    (written.synced(), from.synced())
                }
                _ => return Err("an update must copy from one side to the other".into()),
            };
            saved(sync.save(Some(*link), Some(halo), Some(graph), Origin::Matched))
        }
        Action::Delete { link, target, .. } => {
            match target {
                Target::Halo(target) => sync.delete_in_halo(target).await,
                Target::Exchange(target) => sync.delete_in_exchange(target).await,
            }
            .or_else(|e| match e {
                // Already gone is what a delete wants.
                WriteError::NotFound => Ok(()),
                other => Err(other),
            })
            .map_err(|e| e.to_string())?;
            sync.remove(*link).map_err(|e| e.to_string())
        }
        Action::Record {
            link, halo, graph, ..
        } => saved(sync.save(*link, halo.clone(), graph.clone(), Origin::Matched)),
        Action::Match {
            halo,
            graph,
            overwrite,
        } => {
            let (halo_state, graph_state) = match overwrite {
                None => (halo.synced(), graph.synced()),
                Some(Side::Exchange) => {
                    let written = sync
                        .update_in_exchange(&graph.synced(), &halo.content)
                        .await
                        .map_err(|e| e.to_string())?;
                    (halo.synced(), written.synced())
                }
                Some(Side::Halo) => {
                    let target = halo.synced();
                    let update = HaloUpdate {
                        target: &target,
                        content: &graph.content,
                        origin: graph,
                    };
                    let written = update_one_in_halo(sync, update).await?;
                    (written.synced(), graph.synced())
                }
            };
            saved(sync.save(None, Some(halo_state), Some(graph_state), Origin::Matched))
        }
        Action::Forget { link } => sync.remove(*link).map_err(|e| e.to_string()),
    }
}

async fn update_one_in_halo<C: Calendars + Send>(
    sync: &mut C,
    update: HaloUpdate<'_>,
) -> Result<Item<HaloId>, String> {
    match sync.update_in_halo(&[update]).await.into_iter().next() {
        Some(written) => written.map_err(|e| e.to_string()),
        None => Err("Halo answered for no appointment".to_owned()),
    }
}

async fn create<C: Calendars + Send>(
    to: Side,
    source: &Source,
    sync: &mut C,
) -> Result<(Synced<HaloId>, Option<Synced<GraphId>>), String> {
    match (to, source) {
        (Side::Exchange, Source::Halo(from)) => {
            let created = sync
                .create_in_exchange(&from.content, from)
                .await
                .map_err(|e| e.to_string())?;
            let halo = created.halo.as_ref().unwrap_or(from).synced();
            Ok((halo, created.event.as_ref().map(Item::synced)))
        }
        _ => Err("a create must copy from one side to the other".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_ids_are_stable_per_mailbox_item_and_version() {
        let id = transaction_id("Leah@contoso.com", 41, "2026-11-29T05:00:00");
        assert_eq!(
            id,
            transaction_id("leah@contoso.com ", 41, "2026-11-29T05:00:00")
        );
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
        assert_ne!(
            id,
            transaction_id("leah@contoso.com", 42, "2026-11-29T05:00:00")
        );
        assert_ne!(
            id,
            transaction_id("leah@contoso.com", 41, "2026-11-29T06:00:00")
        );
        assert_ne!(
            id,
            transaction_id("amir@contoso.com", 41, "2026-11-29T05:00:00")
        );
    }
}
