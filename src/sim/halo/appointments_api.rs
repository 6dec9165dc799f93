//! `/api/Appointment`: list, get, save (array POST) and soft delete.

use std::cmp::Ordering;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Map, Value};

use super::appointment::Appointment;
use super::auth::Caller;
use super::errors::HaloError;
use super::params::Params;
use super::{Actor, HaloSim};

fn not_found(id: &str) -> HaloError {
    HaloError::NotFound(format!("Appointment {id} not found."))
}

/// Orders by `order` (`last_modified`, `start_date`, `end_date`, `id` or
/// `subject`; default `start_date`), ties broken by id.
fn compare(order: &str, a: &Appointment, b: &Appointment) -> Ordering {
    let primary = match order {
        "last_modified" => a.last_modified.cmp(&b.last_modified),
        "end_date" => a.end_date.cmp(&b.end_date),
        "id" => Ordering::Equal,
        "subject" => a.subject.to_lowercase().cmp(&b.subject.to_lowercase()),
        _ => a.start_date.cmp(&b.start_date),
    };
    primary.then(a.id.cmp(&b.id))
}

/// `GET /api/Appointment`: list rows in the window for the agents, bare or
/// in the paged envelope.
pub(super) async fn list(
    State(sim): State<HaloSim>,
    _caller: Caller,
    params: Params,
) -> Result<Json<Value>, HaloError> {
    let from = params.date("start_date")?;
    let to = params.date("end_date")?;
    let agents = params.ids("agents")?;
    let include_deleted = params.flag("includedeleted")?.unwrap_or(false);
    // Accepted for fidelity; the API agent is an administrator (see module docs).
    params.flag("showall")?;
    let order = params
        .text("order")
        .unwrap_or("start_date")
        .to_ascii_lowercase();
    let descending = params.flag("orderdesc")?.unwrap_or(false);
    let page = params.page()?;

    let world = sim.world();
    let mut rows: Vec<&Appointment> = world
        .appointments
        .values()
        .filter(|stored| include_deleted || !stored.deleted)
        .map(|stored| &stored.appointment)
        .filter(|a| from.is_none_or(|from| a.end_date > from))
        .filter(|a| to.is_none_or(|to| a.start_date < to))
        .filter(|a| {
            agents.is_empty()
                || agents.contains(&i64::from(a.agent_id))
                || a.agents.iter().any(|x| agents.contains(&i64::from(x.id)))
        })
        .collect();
    rows.sort_by(|a, b| {
        let ordering = compare(&order, a, b);
        if descending {
            ordering.reverse()
        } else {
            ordering
        }
    });
    Ok(Json(match page {
        Some(page) => page.envelope_rendered("appointments", &rows, |a| a.to_list_json()),
        None => Value::Array(rows.iter().map(|a| a.to_list_json()).collect()),
    }))
}

/// `GET /api/Appointment/{id}[?includedetails=true]`.
pub(super) async fn by_id(
    State(sim): State<HaloSim>,
    _caller: Caller,
    Path(id): Path<String>,
    params: Params,
) -> Result<Json<Value>, HaloError> {
    let details = params.flag("includedetails")?.unwrap_or(false);
    let number: i32 = id.parse().map_err(|_| not_found(&id))?;
    let world = sim.world();
    let appointment = world.live(number).ok_or_else(|| not_found(&id))?;
    Ok(Json(if details {
        appointment.to_json()
    } else {
        appointment.to_list_json()
    }))
}

/// `POST /api/Appointment` with an array: items without an id are created,
/// items with one are partially updated; the saved appointments come back
/// as an array (with a new id for an update when re-keying is switched on).
pub(super) async fn save(
    State(sim): State<HaloSim>,
    _caller: Caller,
    body: Bytes,
) -> Result<Json<Vec<Value>>, HaloError> {
    let parsed: Value =
        serde_json::from_slice(&body).map_err(|error| HaloError::UnreadableBody {
            class: "Newtonsoft.Json.JsonReaderException",
            message: error.to_string(),
        })?;
    let Value::Array(items) = parsed else {
        return Err(HaloError::unbindable(
            "Cannot deserialize the current JSON object into type \
             'System.Collections.Generic.List`1[Appointment]' because the type requires a JSON array \
             (e.g. [1,2,3]) to deserialize correctly.",
        ));
    };
    let items = items
        .into_iter()
        .enumerate()
        .map(|(index, item)| match item {
            Value::Object(fields) => Ok(fields),
            other => Err(HaloError::unbindable(format!(
                "Error converting value {other} to type 'Appointment'. Path '[{index}]'."
            ))),
        })
        .collect::<Result<Vec<Map<String, Value>>, _>>()?;
    let now = sim.now();
    let saved = sim.world().save(items, now, Actor::Api)?;
    Ok(Json(saved.iter().map(Appointment::to_json).collect()))
}

/// `DELETE /api/Appointment/{id}[?ignoreexchangedelete=true]`: a soft delete.
/// `ignoreexchangedelete` is accepted; the simulated Halo has no Exchange
/// integration of its own to tell.
pub(super) async fn delete(
    State(sim): State<HaloSim>,
    _caller: Caller,
    Path(id): Path<String>,
    params: Params,
) -> Result<StatusCode, HaloError> {
    params.flag("ignoreexchangedelete")?;
    let number: i32 = id.parse().map_err(|_| not_found(&id))?;
    let now = sim.now();
    sim.world().delete(number, now)?;
    Ok(StatusCode::OK)
}
