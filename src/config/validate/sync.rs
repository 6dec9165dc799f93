//! `[sync]` and its schedules.

use super::*;

impl Checker<'_, '_> {
    fn schedule(
        &mut self,
        key: KeyPath,
        value: Option<Field<String>>,
        default: &str,
    ) -> CronSchedule {
        let expression = self
            .field(&key, value)
            .unwrap_or_else(|| default.to_string());
        match CronSchedule::parse(expression.trim()) {
            Ok(schedule) => schedule,
            Err(why) => {
                self.error(
                    key,
                    format!("`{expression}` is not a valid cron expression ({why}); expected six fields in UTC, \"sec min hour day-of-month month day-of-week\", e.g. \"{default}\""),
                );
                // Only reached with an error recorded, so this value is never used.
                CronSchedule::parse(default)
                    .unwrap_or_else(|_| unreachable!("built-in schedules are valid"))
            }
        }
    }

    pub(super) fn sync(&mut self, raw: RawSync) -> SyncConfig {
        let base = path(&["sync"]);
        let schedule_key = key_in(&base, "schedule");
        let s: RawSchedule = raw.schedule.unwrap_or_default();
        let schedule = Schedules {
            pull: self.schedule(key_in(&schedule_key, "pull"), s.pull, "0 */5 * * * *"),
            push: self.schedule(key_in(&schedule_key, "push"), s.push, "30 * * * * *"),
            reconcile: self.schedule(
                key_in(&schedule_key, "reconcile"),
                s.reconcile,
                "0 7 * * * *",
            ),
            renew_subscriptions: self.schedule(
                key_in(&schedule_key, "renew_subscriptions"),
                s.renew_subscriptions,
                "0 17 3 * * *",
            ),
            prune: self.schedule(key_in(&schedule_key, "prune"), s.prune, "0 41 3 * * *"),
        };
        let window = SyncWindow {
            days_past: self.number(
                key_in(&base, "window_days_past"),
                raw.window_days_past,
                30,
                0..=1825,
                "days",
            ),
            days_ahead: self.number(
                key_in(&base, "window_days_ahead"),
                raw.window_days_ahead,
                180,
                1..=1825,
                "days",
            ),
        };
        let conflict_policy = self.choice(
            key_in(&base, "conflict_policy"),
            raw.conflict_policy,
            ConflictPolicy::Newest,
            &[
                ("newest", ConflictPolicy::Newest),
                ("halo", ConflictPolicy::Halo),
                ("exchange", ConflictPolicy::Exchange),
            ],
        );
        let edit_delete_policy = self.choice(
            key_in(&base, "edit_delete_policy"),
            raw.edit_delete_policy,
            EditDeletePolicy::EditWins,
            &[
                ("edit_wins", EditDeletePolicy::EditWins),
                ("delete_wins", EditDeletePolicy::DeleteWins),
            ],
        );
        let delete_policy = self.choice(
            key_in(&base, "delete_policy"),
            raw.delete_policy,
            DeletePolicy::Both,
            &[
                ("both", DeletePolicy::Both),
                ("halo_to_exchange", DeletePolicy::HaloToExchange),
                ("exchange_to_halo", DeletePolicy::ExchangeToHalo),
                ("never", DeletePolicy::Never),
            ],
        );
        let max_per_run = self.number(
            key_in(&base, "max_deletes_per_run"),
            raw.max_deletes_per_run,
            10,
            0..=1_000_000,
            "deletions",
        );
        let max_fraction = match self.field(
            &key_in(&base, "max_delete_fraction"),
            raw.max_delete_fraction,
        ) {
            None => 0.2,
            Some(f) if f > 0.0 && f <= 1.0 => f,
            Some(f) => {
                self.error(
                    key_in(&base, "max_delete_fraction"),
                    format!(
                        "{f} is out of range; expected a fraction above 0 and at most 1 (e.g. 0.2)"
                    ),
                );
                0.2
            }
        };
        let mut teams = Vec::new();
        let teams_key = key_in(&base, "teams_appointment_type_ids");
        let team_ids = self
            .field(&teams_key, raw.teams_appointment_type_ids)
            .unwrap_or_default();
        for (i, id) in team_ids.into_iter().enumerate() {
            if id <= 0 {
                let mut key = teams_key.clone();
                key.push(Seg::Index(i));
                self.error(
                    key,
                    format!("{id} is not a Halo appointment type id (a positive number)"),
                );
            } else {
                teams.push(id);
            }
        }
        let attendees = self.choice(
            key_in(&base, "attendees"),
            raw.attendees,
            AttendeeMode::Agents,
            &[
                ("none", AttendeeMode::None),
                ("agents", AttendeeMode::Agents),
                ("all", AttendeeMode::All),
            ],
        );
        let include_agents = self.emails(key_in(&base, "include_agents"), raw.include_agents);
        let exclude_agents = self.emails(key_in(&base, "exclude_agents"), raw.exclude_agents);
        if let Some(both) = include_agents.iter().find(|e| exclude_agents.contains(e)) {
            self.error(
                key_in(&base, "exclude_agents"),
                format!("`{both}` is both included and excluded"),
            );
        }
        SyncConfig {
            schedule,
            window,
            conflict_policy,
            edit_delete_policy,
            delete_policy,
            delete_guard: DeleteGuard {
                max_per_run,
                max_fraction,
            },
            import_as_private: self.flag(
                key_in(&base, "import_as_private"),
                raw.import_as_private,
                false,
            ),
            sync_location: self.flag(key_in(&base, "sync_location"), raw.sync_location, true),
            teams_appointment_type_ids: teams,
            attendees,
            include_agents,
            exclude_agents,
        }
    }
}
