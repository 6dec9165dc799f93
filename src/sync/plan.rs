//! The planner: links + what was observed on each side + policy → actions.
//!
//! A pure function, after vdirsyncer's three-way algorithm. For every link
//! it classifies each side as absent, unchanged, changed or deleted, then
//! picks one action from a fixed table; unlinked items are first matched to
//! each other (so an import never duplicates what is already on both sides)
//! and only then created on the other side.
//!
//! Two rules keep it safe:
//! - **Change = version moved AND fingerprint differs.** A version bump with
//!   the same content (including halosync's own write coming back) is
//!   recorded, never copied.
//! - **Only a confirmed deletion deletes.** An item that was simply not
//!   observed is assumed unchanged: the caller observes exactly what may
//!   have changed (a delta round, the `last_modified` cursor) and confirms
//!   every deletion by reading the item. Absence alone, an error, or an item
//!   leaving the window never deletes anything.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::config::{ConflictPolicy, DeleteGuard, DeletePolicy, EditDeletePolicy};
use crate::model::{Appointment, Fingerprint};

/// A Halo appointment id.
pub type HaloId = i64;
/// An Exchange event id (immutable when immutable ids are on).
pub type GraphId = String;
/// A row of the `links` table.
pub type LinkId = i64;

/// What a link remembers of one side from the last sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced<Id> {
    pub id: Id,
    /// Halo `last_modified` or Graph `changeKey`.
    pub version: String,
    pub fingerprint: Fingerprint,
}

/// One Halo appointment linked to one Exchange event. A side is `None` when
/// its copy was deleted without the deletion being carried across (the
/// delete policy forbade it), or before it was first created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub id: LinkId,
    pub halo: Option<Synced<HaloId>>,
    pub graph: Option<Synced<GraphId>>,
}

/// An item as read in this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item<Id> {
    pub id: Id,
    pub version: String,
    /// When it was last modified, for the `newest` conflict policy.
    pub modified: DateTime<Utc>,
    pub content: Appointment,
}

impl<Id: Clone> Item<Id> {
    /// The link state after this item is synced.
    pub fn synced(&self) -> Synced<Id> {
        Synced {
            id: self.id.clone(),
            version: self.version.clone(),
            fingerprint: self.content.fingerprint(),
        }
    }
}

/// What one run saw of an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen<Id> {
    Present(Item<Id>),
    /// Read back and confirmed gone (404, or a Halo row marked deleted).
    Deleted,
}

/// Everything observed for one mailbox (one agent) in this run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub links: Vec<Link>,
    pub halo: BTreeMap<HaloId, Seen<HaloId>>,
    pub graph: BTreeMap<GraphId, Seen<GraphId>>,
    /// Pairs named by halosync's markers: an Exchange event stamped with a
    /// Halo id, or a Halo appointment carrying an Exchange id. Unlinked
    /// items a marker pairs are matched before anything else, whatever
    /// their content (this is how a lost link, or a write whose link was
    /// never saved, is found again instead of duplicated).
    pub markers: BTreeSet<(HaloId, GraphId)>,
}

/// The planner's settings (from `[sync]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    pub conflict: ConflictPolicy,
    pub edit_delete: EditDeletePolicy,
    pub deletes: DeletePolicy,
    pub guard: DeleteGuard,
    /// Set by `--allow-deletes` to let a run past the mass-deletion guard.
    pub allow_mass_deletes: bool,
}

/// Which system an action writes to, or a change came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Side {
    Halo,
    Exchange,
}

/// Why an action was planned (shown by `--dry-run`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    New,
    Changed,
    /// Both sides changed; `winner` was chosen by the conflict policy.
    Conflict {
        winner: Side,
    },
    Deleted,
    /// Deleted on one side, edited on the other: the edit won.
    EditBeatsDelete,
    /// Deleted on one side, edited on the other: the deletion won.
    DeleteBeatsEdit,
    /// Same content on both sides after a version change: nothing to copy.
    Unchanged,
}

/// One step of a plan. Each carries what the write needs and what the link
/// becomes once it succeeded; a failed write leaves its link untouched so
/// the next run plans it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create `source`'s content on the other side (`to`), linking the two.
    Create {
        to: Side,
        link: Option<LinkId>,
        source: Source,
        reason: Reason,
    },
    /// Overwrite the target side's item with `source`'s content.
    Update {
        to: Side,
        link: LinkId,
        /// The target item's id and the version it had (for `If-Match`).
        target: Target,
        source: Source,
        reason: Reason,
    },
    /// Delete the target side's item and drop the link.
    Delete {
        to: Side,
        link: LinkId,
        target: Target,
        reason: Reason,
    },
    /// Record new link state without writing anywhere.
    Record {
        link: Option<LinkId>,
        halo: Option<Synced<HaloId>>,
        graph: Option<Synced<GraphId>>,
        reason: Reason,
    },
    /// Link two unlinked items that are the same appointment (same start,
    /// end and subject). If the rest differs, `overwrite` names the side
    /// that becomes a copy of the other.
    Match {
        halo: Item<HaloId>,
        graph: Item<GraphId>,
        overwrite: Option<Side>,
    },
    /// Drop the link: neither side has the item any more.
    Forget { link: LinkId },
}

/// The item whose content an action copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Halo(Item<HaloId>),
    Exchange(Item<GraphId>),
}

impl Source {
    pub fn content(&self) -> &Appointment {
        match self {
            Self::Halo(item) => &item.content,
            Self::Exchange(item) => &item.content,
        }
    }
}

/// The item an action writes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Halo(Synced<HaloId>),
    Exchange(Synced<GraphId>),
}

/// Deletions held back by the mass-deletion guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardTripped {
    pub would_delete: usize,
    pub limit: usize,
}

/// A plan for one mailbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub conflicts: usize,
    pub guard: Option<GuardTripped>,
}

/// How one side of a link stands in this run.
enum State<'a, Id> {
    /// The link has no copy on this side.
    Absent,
    /// Not observed, or observed with the same content.
    Unchanged(Option<&'a Item<Id>>),
    Changed(&'a Item<Id>),
    Deleted,
}

fn classify<'a, Id: Ord + Clone>(
    synced: Option<&Synced<Id>>,
    observed: &'a BTreeMap<Id, Seen<Id>>,
) -> State<'a, Id> {
    let Some(synced) = synced else {
        return State::Absent;
    };
    match observed.get(&synced.id) {
        None => State::Unchanged(None),
        Some(Seen::Deleted) => State::Deleted,
        Some(Seen::Present(item)) => {
            if item.version != synced.version && item.content.fingerprint() != synced.fingerprint {
                State::Changed(item)
            } else {
                State::Unchanged(Some(item))
            }
        }
    }
}

fn current<Id: Ord + Clone>(
    synced: Option<&Synced<Id>>,
    observed: &BTreeMap<Id, Seen<Id>>,
) -> Option<Synced<Id>> {
    let synced = synced?;
    match observed.get(&synced.id) {
        Some(Seen::Present(item)) => Some(item.synced()),
        Some(Seen::Deleted) => None,
        None => Some(synced.clone()),
    }
}

fn may_delete(policy: &Policy, to: Side) -> bool {
    matches!(
        (policy.deletes, to),
        (DeletePolicy::Both, _)
            | (DeletePolicy::HaloToExchange, Side::Exchange)
            | (DeletePolicy::ExchangeToHalo, Side::Halo)
    )
}

/// Plans one mailbox.
pub fn plan(snapshot: &Snapshot, policy: &Policy) -> Plan {
    let mut plan = Plan::default();
    let mut linked_halo = BTreeSet::new();
    let mut linked_graph = BTreeSet::new();
    for link in &adopt_marked(snapshot) {
        if let Some(h) = &link.halo {
            linked_halo.insert(h.id);
        }
        if let Some(g) = &link.graph {
            linked_graph.insert(g.id.clone());
        }
        plan_link(link, snapshot, policy, &mut plan);
    }
    plan_unlinked(snapshot, &linked_halo, &linked_graph, policy, &mut plan);
    guard_deletions(&mut plan, snapshot.links.len(), policy);
    plan
}

/// The links, each whose copy on one side is gone (or was never made)
/// adopting the unlinked item a marker names as a copy of its other side:
/// the write that made the copy happened, but its link was never saved
/// (a crash, a lost answer). Without this the copy would be made again.
///
/// The adopted side is recorded with no version, so the link is saved with
/// it whatever else happens to the pair.
fn adopt_marked(snapshot: &Snapshot) -> Vec<Link> {
    let mut linked_halo: BTreeSet<HaloId> = snapshot
        .links
        .iter()
        .filter_map(|l| l.halo.as_ref().map(|h| h.id))
        .collect();
    let mut linked_graph: BTreeSet<GraphId> = snapshot
        .links
        .iter()
        .filter_map(|l| l.graph.as_ref().map(|g| g.id.clone()))
        .collect();
    let mut links = snapshot.links.clone();
    for link in &mut links {
        let halo_gone = link
            .halo
            .as_ref()
            .is_none_or(|h| snapshot.halo.get(&h.id) == Some(&Seen::Deleted));
        if halo_gone && let Some(graph) = &link.graph {
            let orphan = snapshot
                .markers
                .iter()
                .filter(|(h, g)| g == &graph.id && !linked_halo.contains(h))
                .find_map(|(h, _)| match snapshot.halo.get(h) {
                    Some(Seen::Present(item)) => Some(item),
                    _ => None,
                });
            if let Some(item) = orphan {
                linked_halo.insert(item.id);
                link.halo = adopted(item);
            }
        }
        let graph_gone = link
            .graph
            .as_ref()
            .is_none_or(|g| snapshot.graph.get(&g.id) == Some(&Seen::Deleted));
        if graph_gone && let Some(halo) = &link.halo {
            let orphan = snapshot
                .markers
                .iter()
                .filter(|(h, g)| *h == halo.id && !linked_graph.contains(g))
                .find_map(|(_, g)| match snapshot.graph.get(g) {
                    Some(Seen::Present(item)) => Some(item),
                    _ => None,
                });
            if let Some(item) = orphan {
                linked_graph.insert(item.id.clone());
                link.graph = adopted(item);
            }
        }
    }
    links
}

/// An adopted copy's link state: its content, and no version.
fn adopted<Id: Clone>(item: &Item<Id>) -> Option<Synced<Id>> {
    Some(Synced {
        id: item.id.clone(),
        version: String::new(),
        fingerprint: item.content.fingerprint(),
    })
}

fn plan_link(link: &Link, snapshot: &Snapshot, policy: &Policy, plan: &mut Plan) {
    let halo = classify(link.halo.as_ref(), &snapshot.halo);
    let graph = classify(link.graph.as_ref(), &snapshot.graph);
    let id = link.id;
    // A write goes to the item as it is now: an observed item's current
    // version (for If-Match), else what the link remembers.
    let halo_now = current(link.halo.as_ref(), &snapshot.halo);
    let graph_now = current(link.graph.as_ref(), &snapshot.graph);
    let halo_target = || halo_now.clone().map(Target::Halo);
    let graph_target = || graph_now.clone().map(Target::Exchange);
    let copy = |to: Side, source: Source, reason: Reason| -> Action {
        let target = match to {
            Side::Halo => halo_target(),
            Side::Exchange => graph_target(),
        };
        let already = |fingerprint: &Fingerprint| *fingerprint == source.content().fingerprint();
        match target {
            // The target already holds this content (an adopted copy, the
            // same edit made on both sides unseen): record, do not write.
            Some(Target::Halo(now)) if already(&now.fingerprint) => Action::Record {
                link: Some(id),
                halo: Some(now),
                graph: graph_now.clone(),
                reason: Reason::Unchanged,
            },
            Some(Target::Exchange(now)) if already(&now.fingerprint) => Action::Record {
                link: Some(id),
                halo: halo_now.clone(),
                graph: Some(now),
                reason: Reason::Unchanged,
            },
            Some(target) => Action::Update {
                to,
                link: id,
                target,
                source,
                reason,
            },
            None => Action::Create {
                to,
                link: Some(id),
                source,
                reason,
            },
        }
    };
    // Deleting `to`'s copy, or (when the policy keeps it) letting the link
    // forget the deleted side so nothing is brought back unasked.
    let delete = |to: Side, reason: Reason| -> Action {
        let target = match to {
            Side::Halo => halo_target(),
            Side::Exchange => graph_target(),
        };
        match target {
            Some(target) if may_delete(policy, to) => Action::Delete {
                to,
                link: id,
                target,
                reason,
            },
            _ => Action::Record {
                link: Some(id),
                halo: if to == Side::Halo {
                    link.halo.clone()
                } else {
                    None
                },
                graph: if to == Side::Exchange {
                    link.graph.clone()
                } else {
                    None
                },
                reason,
            },
        }
    };
    let action = match (halo, graph) {
        (State::Unchanged(h), State::Unchanged(g)) => noise(link, h, g),
        (State::Absent, State::Unchanged(_)) | (State::Unchanged(_), State::Absent) => None,
        (State::Changed(h), State::Unchanged(_) | State::Absent) => Some(copy(
            Side::Exchange,
            Source::Halo(h.clone()),
            Reason::Changed,
        )),
        (State::Unchanged(_) | State::Absent, State::Changed(g)) => Some(copy(
            Side::Halo,
            Source::Exchange(g.clone()),
            Reason::Changed,
        )),
        (State::Changed(h), State::Changed(g)) => {
            if h.content.fingerprint() == g.content.fingerprint() {
                Some(Action::Record {
                    link: Some(id),
                    halo: Some(h.synced()),
                    graph: Some(g.synced()),
                    reason: Reason::Unchanged,
                })
            } else {
                plan.conflicts += 1;
                let winner = winner(policy.conflict, h, g);
                let reason = Reason::Conflict { winner };
                Some(match winner {
                    Side::Halo => copy(Side::Exchange, Source::Halo(h.clone()), reason),
                    Side::Exchange => copy(Side::Halo, Source::Exchange(g.clone()), reason),
                })
            }
        }
        (State::Deleted, State::Unchanged(_)) => Some(delete(Side::Exchange, Reason::Deleted)),
        (State::Unchanged(_), State::Deleted) => Some(delete(Side::Halo, Reason::Deleted)),
        (State::Deleted, State::Changed(g)) => Some(match policy.edit_delete {
            EditDeletePolicy::EditWins => Action::Create {
                to: Side::Halo,
                link: Some(id),
                source: Source::Exchange(g.clone()),
                reason: Reason::EditBeatsDelete,
            },
            EditDeletePolicy::DeleteWins => delete(Side::Exchange, Reason::DeleteBeatsEdit),
        }),
        (State::Changed(h), State::Deleted) => Some(match policy.edit_delete {
            EditDeletePolicy::EditWins => Action::Create {
                to: Side::Exchange,
                link: Some(id),
                source: Source::Halo(h.clone()),
                reason: Reason::EditBeatsDelete,
            },
            EditDeletePolicy::DeleteWins => delete(Side::Halo, Reason::DeleteBeatsEdit),
        }),
        (State::Deleted | State::Absent, State::Deleted | State::Absent) => {
            Some(Action::Forget { link: id })
        }
    };
    plan.actions.extend(action);
}

/// A version moved without a content change (or halosync's own write came
/// back): remember the new versions so the next run compares against them.
fn noise(
    link: &Link,
    halo: Option<&Item<HaloId>>,
    graph: Option<&Item<GraphId>>,
) -> Option<Action> {
    let halo_moved = halo.filter(|h| link.halo.as_ref().is_some_and(|s| s.version != h.version));
    let graph_moved = graph.filter(|g| link.graph.as_ref().is_some_and(|s| s.version != g.version));
    if halo_moved.is_none() && graph_moved.is_none() {
        return None;
    }
    Some(Action::Record {
        link: Some(link.id),
        halo: halo_moved.map(Item::synced).or_else(|| link.halo.clone()),
        graph: graph_moved.map(Item::synced).or_else(|| link.graph.clone()),
        reason: Reason::Unchanged,
    })
}

fn winner(policy: ConflictPolicy, halo: &Item<HaloId>, graph: &Item<GraphId>) -> Side {
    match policy {
        ConflictPolicy::Halo => Side::Halo,
        ConflictPolicy::Exchange => Side::Exchange,
        // A tie goes to Halo, the service desk's record.
        ConflictPolicy::Newest if graph.modified > halo.modified => Side::Exchange,
        ConflictPolicy::Newest => Side::Halo,
    }
}

/// The matching key of an unlinked item: same start, end and subject.
fn match_key(content: &Appointment) -> (DateTime<Utc>, DateTime<Utc>, String) {
    let canonical = content.canonical();
    (
        canonical.start,
        canonical.end,
        canonical.subject.to_lowercase(),
    )
}

fn plan_unlinked(
    snapshot: &Snapshot,
    linked_halo: &BTreeSet<HaloId>,
    linked_graph: &BTreeSet<GraphId>,
    policy: &Policy,
    plan: &mut Plan,
) {
    let unlinked_halo: BTreeMap<HaloId, &Item<HaloId>> = present(&snapshot.halo)
        .filter(|item| !linked_halo.contains(&item.id))
        .map(|item| (item.id, item))
        .collect();
    let mut unlinked_graph: BTreeMap<&GraphId, &Item<GraphId>> = present(&snapshot.graph)
        .filter(|item| !linked_graph.contains(&item.id))
        .map(|item| (&item.id, item))
        .collect();
    let mut paired_halo = BTreeSet::new();
    for (halo_id, graph_id) in &snapshot.markers {
        let Some(halo) = unlinked_halo.get(halo_id) else {
            continue;
        };
        if paired_halo.contains(halo_id) {
            continue;
        }
        if let Some(graph) = unlinked_graph.remove(graph_id) {
            paired_halo.insert(*halo_id);
            push_match(halo, graph, policy, plan);
        }
    }
    let mut new_graph: BTreeMap<_, Vec<&Item<GraphId>>> = BTreeMap::new();
    for item in unlinked_graph.into_values() {
        new_graph
            .entry(match_key(&item.content))
            .or_default()
            .push(item);
    }
    for halo in unlinked_halo
        .into_values()
        .filter(|h| !paired_halo.contains(&h.id))
    {
        let partner = new_graph
            .get_mut(&match_key(&halo.content))
            .and_then(|candidates| (!candidates.is_empty()).then(|| candidates.remove(0)));
        match partner {
            Some(graph) => push_match(halo, graph, policy, plan),
            None => plan.actions.push(Action::Create {
                to: Side::Exchange,
                link: None,
                source: Source::Halo(halo.clone()),
                reason: Reason::New,
            }),
        }
    }
    for graph in new_graph.into_values().flatten() {
        plan.actions.push(Action::Create {
            to: Side::Halo,
            link: None,
            source: Source::Exchange(graph.clone()),
            reason: Reason::New,
        });
    }
}

/// Links two unlinked copies of one appointment; where the rest of their
/// content differs, the conflict policy decides which copy the other becomes.
fn push_match(halo: &Item<HaloId>, graph: &Item<GraphId>, policy: &Policy, plan: &mut Plan) {
    let overwrite = (halo.content.fingerprint() != graph.content.fingerprint()).then(|| {
        plan.conflicts += 1;
        match winner(policy.conflict, halo, graph) {
            Side::Halo => Side::Exchange,
            Side::Exchange => Side::Halo,
        }
    });
    plan.actions.push(Action::Match {
        halo: halo.clone(),
        graph: graph.clone(),
        overwrite,
    });
}

fn present<Id>(observed: &BTreeMap<Id, Seen<Id>>) -> impl Iterator<Item = &Item<Id>> {
    observed.values().filter_map(|seen| match seen {
        Seen::Present(item) => Some(item),
        Seen::Deleted => None,
    })
}

/// Holds back every deletion of a run that would delete more than
/// max(N, P% of the links) in this mailbox.
fn guard_deletions(plan: &mut Plan, links: usize, policy: &Policy) {
    let deletions = plan
        .actions
        .iter()
        .filter(|a| matches!(a, Action::Delete { .. }))
        .count();
    let by_fraction = (links as f64 * policy.guard.max_fraction).floor() as usize;
    let limit = (policy.guard.max_per_run as usize).max(by_fraction);
    if deletions > limit && !policy.allow_mass_deletes {
        plan.actions.retain(|a| !matches!(a, Action::Delete { .. }));
        plan.guard = Some(GuardTripped {
            would_delete: deletions,
            limit,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(minute: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + minute * 60, 0)
            .single()
            .expect("valid time")
    }

    fn content(subject: &str) -> Appointment {
        Appointment {
            start: at(60),
            end: at(90),
            subject: subject.into(),
            ..Appointment::default()
        }
    }

    fn halo(id: HaloId, version: &str, subject: &str, modified: i64) -> Item<HaloId> {
        Item {
            id,
            version: version.into(),
            modified: at(modified),
            content: content(subject),
        }
    }

    fn graph(id: &str, version: &str, subject: &str, modified: i64) -> Item<GraphId> {
        Item {
            id: id.into(),
            version: version.into(),
            modified: at(modified),
            content: content(subject),
        }
    }

    fn policy() -> Policy {
        Policy {
            conflict: ConflictPolicy::Newest,
            edit_delete: EditDeletePolicy::EditWins,
            deletes: DeletePolicy::Both,
            guard: DeleteGuard {
                max_per_run: 10,
                max_fraction: 0.2,
            },
            allow_mass_deletes: false,
        }
    }

    /// One link synced at `subject` (halo version h1, graph version g1).
    fn linked(subject: &str) -> Snapshot {
        Snapshot {
            links: vec![Link {
                id: 7,
                halo: Some(halo(1, "h1", subject, 0).synced()),
                graph: Some(graph("E1", "g1", subject, 0).synced()),
            }],
            ..Snapshot::default()
        }
    }

    fn observe_halo(snapshot: &mut Snapshot, item: Item<HaloId>) {
        snapshot.halo.insert(item.id, Seen::Present(item));
    }

    fn observe_graph(snapshot: &mut Snapshot, item: Item<GraphId>) {
        snapshot.graph.insert(item.id.clone(), Seen::Present(item));
    }

    #[test]
    fn a_version_bump_without_a_content_change_is_only_recorded() {
        let mut snapshot = linked("Audit");
        observe_graph(&mut snapshot, graph("E1", "g2", "Audit", 5));
        let plan = plan(&snapshot, &policy());
        assert_eq!(plan.actions.len(), 1);
        let Action::Record {
            graph: Some(g),
            reason,
            ..
        } = &plan.actions[0]
        else {
            panic!("expected a record, got {:?}", plan.actions);
        };
        assert_eq!((g.version.as_str(), *reason), ("g2", Reason::Unchanged));
    }

    #[test]
    fn nothing_observed_plans_nothing_and_absence_never_deletes() {
        assert!(plan(&linked("Audit"), &policy()).actions.is_empty());
        // Observing only the other side, unchanged, is not evidence of a deletion.
        let mut snapshot = linked("Audit");
        observe_halo(&mut snapshot, halo(1, "h1", "Audit", 0));
        assert!(plan(&snapshot, &policy()).actions.is_empty());
    }

    #[test]
    fn a_change_on_one_side_updates_the_other_at_its_current_version() {
        let mut snapshot = linked("Audit");
        observe_halo(&mut snapshot, halo(1, "h2", "Audit (moved)", 5));
        observe_graph(&mut snapshot, graph("E1", "g9", "Audit", 1));
        let plan = plan(&snapshot, &policy());
        let [
            Action::Update {
                to,
                target: Target::Exchange(target),
                source,
                reason,
                ..
            },
        ] = plan.actions.as_slice()
        else {
            panic!("expected one update, got {:?}", plan.actions);
        };
        assert_eq!(*to, Side::Exchange);
        assert_eq!(
            target.version, "g9",
            "If-Match carries the version just observed"
        );
        assert_eq!(source.content().subject, "Audit (moved)");
        assert_eq!(*reason, Reason::Changed);
    }

    #[test]
    fn conflicts_follow_the_policy_and_a_tie_goes_to_halo() {
        let cases = [
            (ConflictPolicy::Newest, 5, 9, Side::Exchange),
            (ConflictPolicy::Newest, 9, 5, Side::Halo),
            (ConflictPolicy::Newest, 5, 5, Side::Halo),
            (ConflictPolicy::Halo, 1, 9, Side::Halo),
            (ConflictPolicy::Exchange, 9, 1, Side::Exchange),
        ];
        for (conflict, halo_modified, graph_modified, winner) in cases {
            let mut snapshot = linked("Audit");
            observe_halo(&mut snapshot, halo(1, "h2", "Halo edit", halo_modified));
            observe_graph(
                &mut snapshot,
                graph("E1", "g2", "Outlook edit", graph_modified),
            );
            let plan = plan(
                &snapshot,
                &Policy {
                    conflict,
                    ..policy()
                },
            );
            assert_eq!(plan.conflicts, 1);
            let [Action::Update { reason, to, .. }] = plan.actions.as_slice() else {
                panic!("expected one update, got {:?}", plan.actions);
            };
            assert_eq!(
                *reason,
                Reason::Conflict { winner },
                "{conflict:?} {halo_modified} {graph_modified}"
            );
            assert_ne!(*to, winner, "the loser is overwritten");
        }
        let mut same = linked("Audit");
        observe_halo(&mut same, halo(1, "h2", "Both made this", 3));
        observe_graph(&mut same, graph("E1", "g2", "Both made this", 4));
        let plan = plan(&same, &policy());
        assert_eq!(
            plan.conflicts, 0,
            "the same edit on both sides is no conflict"
        );
        assert!(matches!(plan.actions.as_slice(), [Action::Record { .. }]));
    }

    #[test]
    fn a_confirmed_deletion_is_carried_across_only_where_the_policy_allows() {
        let deleted_in_exchange = || {
            let mut snapshot = linked("Audit");
            snapshot.graph.insert("E1".into(), Seen::Deleted);
            snapshot
        };
        let both = plan(&deleted_in_exchange(), &policy());
        assert!(matches!(
            both.actions.as_slice(),
            [Action::Delete {
                to: Side::Halo,
                reason: Reason::Deleted,
                ..
            }]
        ));
        let one_way = Policy {
            deletes: DeletePolicy::HaloToExchange,
            ..policy()
        };
        let kept = plan(&deleted_in_exchange(), &one_way);
        let [
            Action::Record {
                halo: Some(h),
                graph: None,
                ..
            },
        ] = kept.actions.as_slice()
        else {
            panic!(
                "expected the link to forget the Exchange side, got {:?}",
                kept.actions
            );
        };
        assert_eq!(h.id, 1);

        // Later, an edit of the kept Halo appointment brings the event back.
        let mut later = Snapshot {
            links: vec![Link {
                id: 7,
                halo: Some(halo(1, "h1", "Audit", 0).synced()),
                graph: None,
            }],
            ..Snapshot::default()
        };
        observe_halo(&mut later, halo(1, "h2", "Audit, again", 8));
        assert!(matches!(
            plan(&later, &one_way).actions.as_slice(),
            [Action::Create {
                to: Side::Exchange,
                link: Some(7),
                ..
            }]
        ));
    }

    #[test]
    fn markers_pair_unlinked_copies_before_content_does() {
        // Halo 1 carries Exchange id E9 (different subject: edited while
        // the link was lost); E8 has Halo 1's exact key but no marker.
        let mut snapshot = Snapshot::default();
        observe_halo(&mut snapshot, halo(1, "h1", "Audit", 0));
        observe_graph(&mut snapshot, graph("E8", "g1", "Audit", 0));
        observe_graph(&mut snapshot, graph("E9", "g1", "Audit (moved)", 5));
        snapshot.markers.insert((1, "E9".into()));
        // A marker naming an item that is not there pairs nothing.
        snapshot.markers.insert((2, "E8".into()));
        let plan = plan(&snapshot, &policy());
        let matched: Vec<_> = plan
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Match {
                    halo,
                    graph,
                    overwrite,
                } => Some((halo.id, graph.id.as_str(), *overwrite)),
                _ => None,
            })
            .collect();
        assert_eq!(matched, vec![(1, "E9", Some(Side::Halo))]);
        assert!(
            plan.actions.iter().any(|a| matches!(
                a,
                Action::Create { to: Side::Halo, source: Source::Exchange(g), .. } if g.id == "E8"
            )),
            "the unmarked event is new to Halo: {:?}",
            plan.actions
        );
    }

    #[test]
    fn a_copy_whose_link_was_lost_is_adopted_not_made_again() {
        // Halo 1 was deleted and E1 edited; the copy halosync then made in
        // Halo (2, marked with E1) was written but its link never saved.
        let mut snapshot = linked("Audit");
        snapshot.halo.insert(1, Seen::Deleted);
        observe_graph(&mut snapshot, graph("E1", "g2", "Audit (edited)", 3));
        observe_halo(&mut snapshot, halo(2, "h9", "Audit (edited)", 4));
        snapshot.markers.insert((2, "E1".into()));
        let plan = plan(&snapshot, &policy());
        assert!(
            !plan
                .actions
                .iter()
                .any(|a| matches!(a, Action::Create { .. })),
            "{:?}",
            plan.actions
        );
        assert!(
            matches!(
                plan.actions.as_slice(),
                [Action::Record { link: Some(7), halo: Some(h), graph: Some(g), .. }]
                    if h.id == 2 && g.version == "g2"
            ),
            "{:?}",
            plan.actions
        );
    }

    #[test]
    fn edit_against_delete_follows_its_own_policy() {
        let snapshot = || {
            let mut snapshot = linked("Audit");
            snapshot.halo.insert(1, Seen::Deleted);
            observe_graph(&mut snapshot, graph("E1", "g2", "Audit (edited)", 3));
            snapshot
        };
        assert!(matches!(
            plan(&snapshot(), &policy()).actions.as_slice(),
            [Action::Create {
                to: Side::Halo,
                reason: Reason::EditBeatsDelete,
                ..
            }]
        ));
        let delete_wins = Policy {
            edit_delete: EditDeletePolicy::DeleteWins,
            ..policy()
        };
        assert!(matches!(
            plan(&snapshot(), &delete_wins).actions.as_slice(),
            [Action::Delete {
                to: Side::Exchange,
                reason: Reason::DeleteBeatsEdit,
                ..
            }]
        ));
    }

    #[test]
    fn the_mass_deletion_guard_holds_back_every_deletion_of_the_mailbox() {
        let mut snapshot = Snapshot::default();
        for i in 0..20 {
            let event = format!("E{i}");
            snapshot.links.push(Link {
                id: i,
                halo: Some(halo(i, "h1", "x", 0).synced()),
                graph: Some(graph(&event, "g1", "x", 0).synced()),
            });
            if i < 11 {
                snapshot.graph.insert(event, Seen::Deleted);
            }
        }
        // 11 deletions against a limit of max(10, 20% of 20 = 4) = 10.
        let held = plan(&snapshot, &policy());
        assert_eq!(
            held.guard,
            Some(GuardTripped {
                would_delete: 11,
                limit: 10
            })
        );
        assert!(
            !held
                .actions
                .iter()
                .any(|a| matches!(a, Action::Delete { .. }))
        );
        let allowed = plan(
            &snapshot,
            &Policy {
                allow_mass_deletes: true,
                ..policy()
            },
        );
        assert_eq!(allowed.guard, None);
        assert_eq!(
            allowed
                .actions
                .iter()
                .filter(|a| matches!(a, Action::Delete { .. }))
                .count(),
            11
        );
    }

    #[test]
    fn unlinked_look_alikes_are_matched_before_anything_is_created() {
        let mut snapshot = Snapshot::default();
        for id in 1..=3 {
            observe_halo(&mut snapshot, halo(id, "h1", "Stand-up", 0));
        }
        observe_graph(&mut snapshot, graph("E1", "g1", "stand-up", 0));
        observe_graph(&mut snapshot, graph("E2", "g1", "Stand-up", 0));
        let plan = plan(&snapshot, &policy());
        let matches = plan
            .actions
            .iter()
            .filter(|a| matches!(a, Action::Match { .. }))
            .count();
        // The subject's case differs: the copies are linked and made alike
        // (a tie, so Halo's spelling wins).
        assert!(plan.actions.iter().any(|a| matches!(
            a,
            Action::Match {
                overwrite: Some(Side::Exchange),
                ..
            }
        )));
        let creates: Vec<_> = plan
            .actions
            .iter()
            .filter(|a| {
                matches!(
                    a,
                    Action::Create {
                        to: Side::Exchange,
                        link: None,
                        ..
                    }
                )
            })
            .collect();
        assert_eq!(matches, 2, "{:?}", plan.actions);
        assert_eq!(
            creates.len(),
            1,
            "only the third Halo appointment is new: {:?}",
            plan.actions
        );
    }

    #[test]
    fn a_match_that_differs_beyond_the_key_is_resolved_by_the_conflict_policy() {
        let mut snapshot = Snapshot::default();
        let mut outlook = graph("E1", "g1", "Audit", 9);
        outlook.content.body = "Agenda from Outlook".into();
        observe_halo(&mut snapshot, halo(1, "h1", "Audit", 2));
        observe_graph(&mut snapshot, outlook);
        let plan = plan(&snapshot, &policy());
        assert_eq!(plan.conflicts, 1);
        assert!(
            matches!(
                plan.actions.as_slice(),
                [Action::Match {
                    overwrite: Some(Side::Halo),
                    ..
                }]
            ),
            "the newer Exchange copy wins: {:?}",
            plan.actions
        );
    }
}
