//! Saving and deleting appointments: the rules shared by the API, the
//! control API's "act as a person" and seeding.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::appointment::{Appointment, AppointmentAgent, HaloDateTime};
use super::errors::HaloError;
use super::{Actor, StoredAppointment, World};

/// The `id` of a request item: absent, null or 0 means "create".
fn requested_id(item: &Map<String, Value>, index: usize) -> Result<i32, HaloError> {
    match item.get("id") {
        None | Some(Value::Null) => Ok(0),
        Some(value) => value
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| {
                HaloError::unbindable(format!(
                    "Could not convert {value} to System.Int32. Path '[{index}].id'."
                ))
            }),
    }
}

impl World {
    /// A live (not deleted) appointment.
    pub(super) fn live(&self, id: i32) -> Option<&Appointment> {
        self.appointments
            .get(&id)
            .filter(|stored| !stored.deleted)
            .map(|stored| &stored.appointment)
    }

    fn allocate_id(&mut self) -> i32 {
        while self.appointments.contains_key(&self.next_id) {
            self.next_id += 1;
        }
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn agent_ref(&self, id: i32) -> Result<AppointmentAgent, HaloError> {
        let agent = self
            .agents
            .get(&id)
            .ok_or_else(|| HaloError::Validation(format!("Agent with id {id} does not exist.")))?;
        Ok(AppointmentAgent {
            id,
            name: agent.name.clone(),
            email: agent.email.clone(),
        })
    }

    /// Keeps `agent_id` and `agents` consistent (whichever the change named
    /// wins), fills agent names from the agent records, and validates.
    fn complete(
        &self,
        appointment: &mut Appointment,
        changes: &Map<String, Value>,
        creating: bool,
    ) -> Result<(), HaloError> {
        match (
            changes.contains_key("agent_id"),
            changes.contains_key("agents"),
        ) {
            (true, false) => {
                appointment.agents = match appointment.agent_id {
                    0 => Vec::new(),
                    id => vec![self.agent_ref(id)?],
                };
            }
            (false, true) => {
                appointment.agent_id = appointment.agents.first().map_or(0, |a| a.id);
            }
            _ => {}
        }
        appointment.agent_name = match appointment.agent_id {
            0 => String::new(),
            id => self.agent_ref(id)?.name,
        };
        appointment.agents = appointment
            .agents
            .iter()
            .map(|agent| self.agent_ref(agent.id))
            .collect::<Result<_, _>>()?;
        if creating && (appointment.start_date.is_empty() || appointment.end_date.is_empty()) {
            return Err(HaloError::Validation(
                "Please enter a start date and an end date for the appointment.".into(),
            ));
        }
        if appointment.end_date < appointment.start_date {
            return Err(HaloError::Validation(
                "The end date of the appointment must be after its start date.".into(),
            ));
        }
        Ok(())
    }

    /// Creates (items without an id) and partially updates (items with one)
    /// in one go: either every item is saved or none is.
    pub(super) fn save(
        &mut self,
        items: Vec<Map<String, Value>>,
        now: DateTime<Utc>,
        actor: Actor,
    ) -> Result<Vec<Appointment>, HaloError> {
        let mut staged = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let id = requested_id(item, index)?;
            let base = if id > 0 {
                self.live(id)
                    .cloned()
                    .ok_or_else(|| HaloError::NotFound(format!("Appointment {id} not found.")))?
            } else {
                Appointment::default()
            };
            let mut merged = base
                .merged(item)
                .map_err(|error| HaloError::unbindable(format!("{error} Path '[{index}]'.")))?;
            self.complete(&mut merged, item, id <= 0)?;
            staged.push((id, merged));
        }
        let rekey = self.rekey_on_update && actor == Actor::Api;
        let stamp = HaloDateTime::from_utc(now);
        let mut saved = Vec::with_capacity(staged.len());
        for (id, mut appointment) in staged {
            appointment.last_modified = stamp;
            appointment.id = if id > 0 && !rekey {
                id
            } else {
                if id > 0 {
                    self.mark_deleted(id, stamp);
                }
                self.allocate_id()
            };
            self.appointments.insert(
                appointment.id,
                StoredAppointment {
                    appointment: appointment.clone(),
                    deleted: false,
                },
            );
            saved.push(appointment);
        }
        Ok(saved)
    }

    fn mark_deleted(&mut self, id: i32, stamp: HaloDateTime) {
        if let Some(stored) = self.appointments.get_mut(&id) {
            stored.deleted = true;
            stored.appointment.last_modified = stamp;
        }
    }

    /// Soft delete: the row stays visible with `includedeleted`.
    pub(super) fn delete(&mut self, id: i32, now: DateTime<Utc>) -> Result<(), HaloError> {
        if self.live(id).is_none() {
            return Err(HaloError::NotFound(format!("Appointment {id} not found.")));
        }
        self.mark_deleted(id, HaloDateTime::from_utc(now));
        Ok(())
    }

    /// Stores a seeded appointment under its own id (or a new one), keeping a
    /// given `last_modified`.
    pub(super) fn seed_appointment(
        &mut self,
        fields: &Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<i32, HaloError> {
        let mut appointment = Appointment::default()
            .merged(fields)
            .map_err(|error| HaloError::unbindable(error.to_string()))?;
        self.complete(&mut appointment, fields, true)?;
        appointment.last_modified = match fields.get("last_modified").and_then(Value::as_str) {
            Some(text) => HaloDateTime::parse(text).ok_or_else(|| {
                HaloError::Validation(format!("last_modified '{text}' is not a date-time"))
            })?,
            None => HaloDateTime::from_utc(now),
        };
        appointment.id = match requested_id(fields, 0)? {
            id if id > 0 => id,
            _ => self.allocate_id(),
        };
        self.appointments.insert(
            appointment.id,
            StoredAppointment {
                appointment: appointment.clone(),
                deleted: false,
            },
        );
        Ok(appointment.id)
    }
}
