//! A state-machine test of the planner and applier, in the style of
//! vdirsyncer's `SyncMachine`: random creations, edits, no-op version bumps,
//! deletions and syncs (some with injected write failures) on two in-memory
//! calendars, checking after every clean sync that
//! - both sides agree, item for item (per the conflict policy);
//! - no item is duplicated and every item is linked exactly once;
//! - nothing was deleted except the partner of an item a person deleted;
//! - a second sync right after finds nothing to do (no ping-pong).
//!
//! Syncs can also "crash" between a write and the saving of its link (the
//! write happened, the link is lost): the copies halosync made carry a
//! marker naming their origin, as in Exchange and Halo, so the next sync
//! pairs them again instead of duplicating them.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test should fail loudly

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeZone, Utc};
use halosync::config::{ConflictPolicy, DeleteGuard, DeletePolicy, EditDeletePolicy};
use halosync::model::Appointment;
use halosync::sync::apply::{
    Calendars, CreatedEvent, HaloUpdate, Links, Origin, WriteError, apply,
};
use halosync::sync::plan::{
    Action, GraphId, HaloId, Item, Link, LinkId, Policy, Seen, Snapshot, Synced, plan,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Stored {
    version: u64,
    modified: i64,
    content: Appointment,
    /// The appointment a person made, which every copy the engine makes of
    /// it shares: no side may ever hold two copies of one.
    logical: u64,
    /// On a copy the engine made: its origin's id on the other side
    /// (Exchange's extended property, Halo's `entryid`).
    marker: Option<String>,
}

/// Two calendars and the links between them, all in memory.
#[derive(Debug, Default)]
struct World {
    halo: BTreeMap<HaloId, Stored>,
    graph: BTreeMap<GraphId, Stored>,
    links: BTreeMap<LinkId, Link>,
    /// Items a person deleted: the only partners the engine may delete.
    deleted_by_person_halo: BTreeSet<HaloId>,
    deleted_by_person_graph: BTreeSet<GraphId>,
    clock: i64,
    next_id: i64,
    version: u64,
    /// Writes of the current sync that fail, by position.
    failing_writes: BTreeSet<usize>,
    writes: usize,
    /// Link saves of the current sync that are lost (a crash right after
    /// the write), by position.
    lost_saves: BTreeSet<usize>,
    saves: usize,
    illegal_deletions: Vec<String>,
}

fn when(tick: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + tick, 0)
        .single()
        .expect("valid time")
}

/// Few distinct values, so edits often collide and a version bump often
/// changes nothing; the subject names the appointment a person made, so
/// matching pairs exactly the copies of one appointment (ambiguous matches
/// between look-alikes are the planner's unit tests' business).
fn content(seed: u8, logical: u64) -> Appointment {
    Appointment {
        start: when(3600 * i64::from(seed % 4)),
        end: when(3600 * i64::from(seed % 4) + 1800),
        subject: format!("Visit {} #{logical}", seed % 5),
        body: format!("note {}", seed % 3),
        ..Appointment::default()
    }
}

impl World {
    fn tick(&mut self) -> i64 {
        self.clock += 1;
        self.clock
    }

    fn new_version(&mut self) -> u64 {
        self.version += 1;
        self.version
    }

    fn stored(&mut self, content: Appointment, logical: u64) -> Stored {
        Stored {
            version: self.new_version(),
            modified: self.tick(),
            content,
            logical,
            marker: None,
        }
    }

    fn new_logical(&mut self) -> u64 {
        self.version += 1;
        self.version
    }

    fn nth_halo(&self, n: usize) -> Option<HaloId> {
        self.halo.keys().nth(n % self.halo.len().max(1)).copied()
    }

    fn nth_graph(&self, n: usize) -> Option<GraphId> {
        self.graph.keys().nth(n % self.graph.len().max(1)).cloned()
    }

    fn write(&mut self) -> Result<(), WriteError> {
        let n = self.writes;
        self.writes += 1;
        if self.failing_writes.contains(&n) {
            Err(WriteError::Transient("injected".into()))
        } else {
            Ok(())
        }
    }

    fn item<Id: Clone>(id: &Id, stored: &Stored) -> Item<Id> {
        Item {
            id: id.clone(),
            version: stored.version.to_string(),
            modified: when(stored.modified),
            content: stored.content.clone(),
        }
    }

    /// Observes everything: each present item, and each linked item that is
    /// gone (a confirmed deletion).
    fn snapshot(&self) -> Snapshot {
        let mut snapshot = Snapshot {
            links: self.links.values().cloned().collect(),
            ..Snapshot::default()
        };
        for (id, stored) in &self.halo {
            snapshot
                .halo
                .insert(*id, Seen::Present(Self::item(id, stored)));
        }
        for (id, stored) in &self.graph {
            snapshot
                .graph
                .insert(id.clone(), Seen::Present(Self::item(id, stored)));
        }
        for (id, stored) in &self.halo {
            if let Some(graph) = &stored.marker {
                snapshot.markers.insert((*id, graph.clone()));
            }
        }
        for (id, stored) in &self.graph {
            if let Some(halo) = stored.marker.as_ref().and_then(|m| m.parse().ok()) {
                snapshot.markers.insert((halo, id.clone()));
            }
        }
        for link in self.links.values() {
            if let Some(h) = &link.halo
                && !self.halo.contains_key(&h.id)
            {
                snapshot.halo.insert(h.id, Seen::Deleted);
            }
            if let Some(g) = &link.graph
                && !self.graph.contains_key(&g.id)
            {
                snapshot.graph.insert(g.id.clone(), Seen::Deleted);
            }
        }
        snapshot
    }

    /// Whether a person deleted the partner of Halo appointment `id` (or of
    /// event `id`): the one its link names, or the one its marker names (a
    /// copy whose link was lost is still that item's copy).
    fn partner_deleted_by_person(&self, side_halo: bool, id: &str) -> bool {
        if side_halo {
            let Ok(halo_id) = id.parse::<HaloId>() else {
                return false;
            };
            let linked = self
                .link_of_halo(halo_id)
                .and_then(|l| l.graph.as_ref())
                .is_some_and(|g| self.deleted_by_person_graph.contains(&g.id));
            let marked = self
                .halo
                .get(&halo_id)
                .and_then(|s| s.marker.as_ref())
                .is_some_and(|g| self.deleted_by_person_graph.contains(g));
            linked || marked
        } else {
            let linked = self
                .link_of_graph(&id.to_string())
                .and_then(|l| l.halo.as_ref())
                .is_some_and(|h| self.deleted_by_person_halo.contains(&h.id));
            let marked = self
                .graph
                .get(id)
                .and_then(|s| s.marker.as_ref())
                .and_then(|h| h.parse::<HaloId>().ok())
                .is_some_and(|h| self.deleted_by_person_halo.contains(&h));
            linked || marked
        }
    }

    /// Whether an unlinked item has a partner its marker (or the partner's)
    /// names: the engine pairs those whatever their content.
    fn marked_halo(&self, id: HaloId) -> bool {
        self.halo.get(&id).is_some_and(|s| s.marker.is_some())
            || self
                .graph
                .values()
                .any(|g| g.marker.as_deref() == Some(id.to_string().as_str()))
    }

    fn marked_graph(&self, id: &GraphId) -> bool {
        self.graph.get(id).is_some_and(|s| s.marker.is_some())
            || self
                .halo
                .values()
                .any(|h| h.marker.as_deref() == Some(id.as_str()))
    }

    fn link_of_halo(&self, id: HaloId) -> Option<&Link> {
        self.links
            .values()
            .find(|l| l.halo.as_ref().is_some_and(|h| h.id == id))
    }

    fn link_of_graph(&self, id: &GraphId) -> Option<&Link> {
        self.links
            .values()
            .find(|l| l.graph.as_ref().is_some_and(|g| &g.id == id))
    }
}

impl Calendars for World {
    async fn create_in_halo(
        &mut self,
        origins: &[&Item<GraphId>],
    ) -> Vec<Result<Item<HaloId>, WriteError>> {
        // One request: it fails, or makes them all.
        if let Err(error) = self.write() {
            return vec![Err(error); origins.len()];
        }
        origins
            .iter()
            .map(|origin| {
                self.next_id += 1;
                let id = self.next_id;
                let logical = self.graph.get(&origin.id).map_or(0, |o| o.logical);
                let mut stored = self.stored(origin.content.clone(), logical);
                stored.marker = Some(origin.id.clone());
                let item = Self::item(&id, &stored);
                self.halo.insert(id, stored);
                Ok(item)
            })
            .collect()
    }

    async fn update_in_halo(
        &mut self,
        updates: &[HaloUpdate<'_>],
    ) -> Vec<Result<Item<HaloId>, WriteError>> {
        // One request: it fails, or saves each (a vanished target alone fails).
        if let Err(error) = self.write() {
            return vec![Err(error); updates.len()];
        }
        updates
            .iter()
            .map(|update| {
                let Some((logical, marker)) = self
                    .halo
                    .get(&update.target.id)
                    .map(|s| (s.logical, s.marker.clone()))
                else {
                    return Err(WriteError::NotFound);
                };
                let mut stored = self.stored(update.content.clone(), logical);
                stored.marker = marker;
                let item = Self::item(&update.target.id, &stored);
                self.halo.insert(update.target.id, stored);
                Ok(item)
            })
            .collect()
    }

    async fn delete_in_halo(&mut self, target: &Synced<HaloId>) -> Result<(), WriteError> {
        self.write()?;
        if !self.partner_deleted_by_person(true, &target.id.to_string()) {
            self.illegal_deletions.push(format!("halo {}", target.id));
        }
        self.halo.remove(&target.id);
        Ok(())
    }

    async fn create_in_exchange(
        &mut self,
        content: &Appointment,
        origin: &Item<HaloId>,
    ) -> Result<CreatedEvent, WriteError> {
        self.write()?;
        self.next_id += 1;
        let id = format!("AAMk{}", self.next_id);
        let logical = self.halo.get(&origin.id).map_or(0, |o| o.logical);
        let mut stored = self.stored(content.clone(), logical);
        stored.marker = Some(origin.id.to_string());
        let event = Self::item(&id, &stored);
        self.graph.insert(id, stored);
        Ok(CreatedEvent {
            event: Some(event),
            halo: None,
        })
    }

    async fn update_in_exchange(
        &mut self,
        target: &Synced<GraphId>,
        content: &Appointment,
    ) -> Result<Item<GraphId>, WriteError> {
        self.write()?;
        match self.graph.get(&target.id) {
            None => return Err(WriteError::NotFound),
            // If-Match: the event must still be the version that was observed.
            Some(current) if current.version.to_string() != target.version => {
                return Err(WriteError::Conflict);
            }
            Some(_) => {}
        }
        let (logical, marker) = self
            .graph
            .get(&target.id)
            .map_or((0, None), |s| (s.logical, s.marker.clone()));
        let mut stored = self.stored(content.clone(), logical);
        stored.marker = marker;
        let item = Self::item(&target.id, &stored);
        self.graph.insert(target.id.clone(), stored);
        Ok(item)
    }

    async fn delete_in_exchange(&mut self, target: &Synced<GraphId>) -> Result<(), WriteError> {
        self.write()?;
        if !self.partner_deleted_by_person(false, &target.id) {
            self.illegal_deletions.push(format!("graph {}", target.id));
        }
        self.graph.remove(&target.id);
        Ok(())
    }
}

impl Links for World {
    type Error = String;

    fn save(
        &mut self,
        link: Option<LinkId>,
        halo: Option<Synced<HaloId>>,
        graph: Option<Synced<GraphId>>,
        _origin: Origin,
    ) -> Result<LinkId, String> {
        let n = self.saves;
        self.saves += 1;
        if self.lost_saves.contains(&n) {
            return Err("crashed before the link was saved".into());
        }
        let id = link.unwrap_or_else(|| {
            self.next_id += 1;
            self.next_id
        });
        self.links.insert(id, Link { id, halo, graph });
        Ok(id)
    }

    fn remove(&mut self, link: LinkId) -> Result<(), String> {
        self.links.remove(&link);
        Ok(())
    }
}

#[derive(Debug, Clone)]
enum Op {
    CreateHalo(u8),
    CreateGraph(u8),
    /// The same appointment entered on both sides before any sync.
    CreateBoth(u8),
    EditHalo(usize, u8),
    EditGraph(usize, u8),
    /// A version bump that changes nothing synced.
    TouchHalo(usize),
    TouchGraph(usize),
    DeleteHalo(usize),
    DeleteGraph(usize),
    /// A sync where the writes at these positions fail, and the link saves
    /// at those positions are lost after their write.
    Sync(BTreeSet<usize>, BTreeSet<usize>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        any::<u8>().prop_map(Op::CreateHalo),
        any::<u8>().prop_map(Op::CreateGraph),
        any::<u8>().prop_map(Op::CreateBoth),
        (any::<usize>(), any::<u8>()).prop_map(|(i, s)| Op::EditHalo(i, s)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, s)| Op::EditGraph(i, s)),
        any::<usize>().prop_map(Op::TouchHalo),
        any::<usize>().prop_map(Op::TouchGraph),
        any::<usize>().prop_map(Op::DeleteHalo),
        any::<usize>().prop_map(Op::DeleteGraph),
        (
            prop::collection::btree_set(0usize..12, 0..4),
            prop::collection::btree_set(0usize..12, 0..3)
        )
            .prop_map(|(failing, lost)| Op::Sync(failing, lost)),
    ]
}

fn policy(conflict: ConflictPolicy, edit_delete: EditDeletePolicy) -> Policy {
    Policy {
        conflict,
        edit_delete,
        deletes: DeletePolicy::Both,
        guard: DeleteGuard {
            max_per_run: 1_000_000,
            max_fraction: 1.0,
        },
        allow_mass_deletes: false,
    }
}

fn create_halo(world: &mut World, seed: u8, logical: u64) {
    world.next_id += 1;
    let id = world.next_id;
    let stored = world.stored(content(seed, logical), logical);
    world.halo.insert(id, stored);
}

fn create_graph(world: &mut World, seed: u8, logical: u64) {
    world.next_id += 1;
    let id = format!("AAMk{}", world.next_id);
    let stored = world.stored(content(seed, logical), logical);
    world.graph.insert(id, stored);
}

fn run(world: &mut World, op: Op, policy: &Policy, runtime: &tokio::runtime::Runtime) {
    match op {
        Op::CreateHalo(seed) => {
            let logical = world.new_logical();
            create_halo(world, seed, logical);
        }
        Op::CreateGraph(seed) => {
            let logical = world.new_logical();
            create_graph(world, seed, logical);
        }
        Op::CreateBoth(seed) => {
            let logical = world.new_logical();
            create_halo(world, seed, logical);
            create_graph(world, seed, logical);
        }
        Op::EditHalo(n, seed) => {
            if let Some(id) = world.nth_halo(n) {
                let mut logical = world.halo[&id].logical;
                // Editing one half of an appointment entered on both sides
                // before they were ever linked makes them two appointments:
                // no one could tell them apart any more.
                // (Unless a marker still pairs them.)
                if world.link_of_halo(id).is_none() && !world.marked_halo(id) {
                    logical = world.new_logical();
                }
                let mut stored = world.stored(content(seed, logical), logical);
                stored.marker = world.halo[&id].marker.clone();
                world.halo.insert(id, stored);
            }
        }
        Op::EditGraph(n, seed) => {
            if let Some(id) = world.nth_graph(n) {
                let mut logical = world.graph[&id].logical;
                if world.link_of_graph(&id).is_none() && !world.marked_graph(&id) {
                    logical = world.new_logical();
                }
                let mut stored = world.stored(content(seed, logical), logical);
                stored.marker = world.graph[&id].marker.clone();
                world.graph.insert(id, stored);
            }
        }
        Op::TouchHalo(n) => {
            if let Some(id) = world.nth_halo(n) {
                let version = world.new_version();
                if let Some(item) = world.halo.get_mut(&id) {
                    item.version = version;
                }
            }
        }
        Op::TouchGraph(n) => {
            if let Some(id) = world.nth_graph(n) {
                let version = world.new_version();
                if let Some(item) = world.graph.get_mut(&id) {
                    item.version = version;
                }
            }
        }
        Op::DeleteHalo(n) => {
            if let Some(id) = world.nth_halo(n) {
                world.halo.remove(&id);
                world.deleted_by_person_halo.insert(id);
            }
        }
        Op::DeleteGraph(n) => {
            if let Some(id) = world.nth_graph(n) {
                world.graph.remove(&id);
                world.deleted_by_person_graph.insert(id);
            }
        }
        Op::Sync(failing, lost) => sync(world, failing, lost, policy, runtime),
    }
}

fn sync(
    world: &mut World,
    failing: BTreeSet<usize>,
    lost: BTreeSet<usize>,
    policy: &Policy,
    runtime: &tokio::runtime::Runtime,
) {
    world.failing_writes = failing;
    world.lost_saves = lost;
    world.writes = 0;
    world.saves = 0;
    let planned = plan(&world.snapshot(), policy);
    runtime.block_on(apply(planned.actions, world));
    world.failing_writes.clear();
    world.lost_saves.clear();
}

fn assert_converged(world: &World, policy: &Policy) {
    assert!(
        world.illegal_deletions.is_empty(),
        "deleted without cause: {:?}",
        world.illegal_deletions
    );
    // Every item linked exactly once, every link whole, both copies alike.
    for id in world.halo.keys() {
        let n = world
            .links
            .values()
            .filter(|l| l.halo.as_ref().is_some_and(|h| h.id == *id))
            .count();
        assert_eq!(n, 1, "halo item {id} is in {n} links");
    }
    for id in world.graph.keys() {
        let n = world
            .links
            .values()
            .filter(|l| l.graph.as_ref().is_some_and(|g| g.id == *id))
            .count();
        assert_eq!(n, 1, "event {id} is in {n} links");
    }
    for link in world.links.values() {
        let (Some(h), Some(g)) = (&link.halo, &link.graph) else {
            panic!("link {} is not whole after a clean sync: {link:?}", link.id);
        };
        let halo = world
            .halo
            .get(&h.id)
            .unwrap_or_else(|| panic!("link {} names a missing appointment", link.id));
        let graph = world
            .graph
            .get(&g.id)
            .unwrap_or_else(|| panic!("link {} names a missing event", link.id));
        assert_eq!(
            halo.content.fingerprint(),
            graph.content.fingerprint(),
            "link {} disagrees",
            link.id
        );
    }
    assert_eq!(
        world.halo.len(),
        world.graph.len(),
        "as many appointments as events"
    );
    for (side, logicals) in [
        (
            "Halo",
            world.halo.values().map(|s| s.logical).collect::<Vec<_>>(),
        ),
        (
            "Exchange",
            world.graph.values().map(|s| s.logical).collect::<Vec<_>>(),
        ),
    ] {
        let unique: BTreeSet<_> = logicals.iter().collect();
        assert_eq!(
            unique.len(),
            logicals.len(),
            "{side} holds two copies of one appointment"
        );
    }
    // Nothing left to do: a second look plans no writes (no ping-pong).
    let again = plan(&world.snapshot(), policy);
    let writes: Vec<_> = again
        .actions
        .iter()
        .filter(|a| !matches!(a, Action::Record { .. }))
        .collect();
    assert!(
        writes.is_empty(),
        "a settled world plans writes: {writes:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn random_edits_deletes_failing_writes_and_crashes_always_converge(
        ops in prop::collection::vec(op(), 1..40),
        conflict in prop_oneof![Just(ConflictPolicy::Newest), Just(ConflictPolicy::Halo), Just(ConflictPolicy::Exchange)],
        edit_delete in prop_oneof![Just(EditDeletePolicy::EditWins), Just(EditDeletePolicy::DeleteWins)],
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let policy = policy(conflict, edit_delete);
        let mut world = World::default();
        for op in ops {
            let clean = matches!(&op, Op::Sync(failing, lost) if failing.is_empty() && lost.is_empty());
            run(&mut world, op, &policy, &runtime);
            if clean {
                assert_converged(&world, &policy);
            }
        }
        sync(&mut world, BTreeSet::new(), BTreeSet::new(), &policy, &runtime);
        assert_converged(&world, &policy);
    }
}
