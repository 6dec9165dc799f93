//! Appointment operations: windowed, paged listing (newest change first,
//! optionally stopping at a cursor), get, batched save with re-keying, and
//! delete.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::Value;

use super::{Appointment, HaloClient, HaloError, json, time};
use crate::http::{Reply, RequestContext};

/// Rows per page; some Halo endpoints cap pages at 100.
pub const PAGE_SIZE: usize = 100;
/// Appointments per save request: Halo's request budget, not its payload
/// limit, is what is scarce.
pub const SAVE_BATCH_SIZE: usize = 25;

/// Which appointments to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppointmentQuery {
    /// Appointments overlapping `[start, end)`.
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Empty means every agent.
    pub agents: Vec<i64>,
    /// List soft-deleted appointments too.
    pub include_deleted: bool,
    /// An incremental read: stop at the first row last modified before this.
    /// Rows modified exactly at the cursor are returned again, since another
    /// change can share its timestamp.
    pub modified_since: Option<DateTime<Utc>>,
}

/// What a listing returned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppointmentListing {
    /// Newest `last_modified` first, each id once.
    pub appointments: Vec<Appointment>,
    /// Whether the read stopped at `modified_since` rather than at the end.
    pub reached_cursor: bool,
    pub pages: u32,
    /// Halo's own time when the first page was served (its `Date` header):
    /// every later change is stamped after it, whatever the local clock says.
    pub server_time: Option<DateTime<Utc>>,
}

/// One saved appointment, as Halo returned it.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedAppointment {
    /// The id sent (`None` for a create).
    pub sent_id: Option<i64>,
    pub appointment: Appointment,
}

impl SavedAppointment {
    /// `(old, new)` when Halo saved an update under a new id: the caller's
    /// mapping must follow it (the old id is gone).
    pub fn rekeyed(&self) -> Option<(i64, i64)> {
        match (self.sent_id, self.appointment.id) {
            (Some(old), Some(new)) if old != new => Some((old, new)),
            _ => None,
        }
    }
}

/// A batched save that stopped part-way: the batches before the failing one
/// were saved and must be recorded, or retrying would create duplicates.
#[derive(Debug, thiserror::Error)]
#[error("{error} ({} appointment(s) were saved before this failure)", saved.len())]
pub struct SaveFailure {
    pub saved: Vec<SavedAppointment>,
    #[source]
    pub error: HaloError,
}

impl HaloClient {
    /// Lists appointments in a window, page by page, newest change first.
    pub async fn appointments(
        &self,
        query: &AppointmentQuery,
    ) -> Result<AppointmentListing, HaloError> {
        let mut params = vec![
            ("start_date", time::format(query.start)),
            ("end_date", time::format(query.end)),
            ("showall", "true".to_owned()),
            ("order", "last_modified".to_owned()),
            ("orderdesc", "true".to_owned()),
            ("pageinate", "true".to_owned()),
            ("page_size", PAGE_SIZE.to_string()),
        ];
        if !query.agents.is_empty() {
            let ids: Vec<String> = query.agents.iter().map(i64::to_string).collect();
            params.push(("agents", ids.join(",")));
        }
        if query.include_deleted {
            params.push(("includedeleted", "true".to_owned()));
        }
        let mut listing = AppointmentListing::default();
        let mut seen = HashSet::new();
        let mut first_ids: HashMap<i64, u32> = HashMap::new();
        let context = match query.agents.as_slice() {
            [agent] => RequestContext::idempotent().for_agent(*agent),
            _ => RequestContext::idempotent(),
        };
        let mut page_no: u32 = 1;
        loop {
            let mut page_params = params.clone();
            page_params.push(("page_no", page_no.to_string()));
            let reply = self
                .get("api/Appointment", &page_params, context.clone())
                .await?;
            let (rows, reported_size) = page_rows(&reply)?;
            listing.pages = page_no;
            if page_no == 1 {
                listing.server_time = server_time(&reply.headers);
            }
            if let Some(first_id) = rows.first().and_then(|a| a.id)
                && let Some(previous) = first_ids.insert(first_id, page_no)
            {
                return Err(HaloError::RepeatedPage {
                    path: reply.path.clone(),
                    page: page_no,
                    previous,
                    first_id,
                });
            }
            // Halo may cap the page size below the one asked for.
            let full = rows.len() >= reported_size.unwrap_or(PAGE_SIZE).clamp(1, PAGE_SIZE);
            for row in rows {
                let older = query
                    .modified_since
                    .zip(row.last_modified)
                    .is_some_and(|(cursor, modified)| modified < cursor);
                if older {
                    listing.reached_cursor = true;
                    return Ok(listing);
                }
                // A row edited during the listing moves to the front and can
                // show up twice.
                if row.id.is_none_or(|id| seen.insert(id)) {
                    listing.appointments.push(row);
                }
            }
            if !full {
                return Ok(listing);
            }
            page_no += 1;
        }
    }

    /// One appointment with its details (note, type, agents, ...).
    pub async fn appointment(&self, id: i64) -> Result<Appointment, HaloError> {
        let reply = self
            .get(
                &format!("api/Appointment/{id}"),
                &[("includedetails", "true".to_owned())],
                RequestContext::idempotent(),
            )
            .await?;
        json(&reply)
    }

    /// Creates (items without an id) and partially updates (items with one)
    /// through the array POST, [`SAVE_BATCH_SIZE`] at a time. The results
    /// come back in the order sent; see [`SavedAppointment::rekeyed`].
    pub async fn save_appointments(
        &self,
        items: &[Appointment],
    ) -> Result<Vec<SavedAppointment>, SaveFailure> {
        let mut saved = Vec::with_capacity(items.len());
        for batch in items.chunks(SAVE_BATCH_SIZE) {
            match self.save_batch(batch).await {
                Ok(results) => saved.extend(results),
                Err(error) => return Err(SaveFailure { saved, error }),
            }
        }
        Ok(saved)
    }

    async fn save_batch(&self, batch: &[Appointment]) -> Result<Vec<SavedAppointment>, HaloError> {
        let body = serde_json::to_value(batch)
            .map_err(|e| HaloError::Request(format!("appointments to JSON: {e}")))?;
        // Not replayed after a possibly processed failure: a replayed create
        // duplicates, and on tenants that re-key updates a replayed update
        // names an id that no longer exists.
        let reply = self
            .call(
                Method::POST,
                "api/Appointment",
                &[],
                Some(&body),
                RequestContext::not_idempotent(),
            )
            .await?;
        let returned = saved_rows(&reply)?;
        if returned.len() != batch.len() {
            return Err(HaloError::SaveCountMismatch {
                method: reply.method.clone(),
                path: reply.path.clone(),
                sent: batch.len(),
                returned: returned.len(),
            });
        }
        Ok(batch
            .iter()
            .zip(returned)
            .map(|(sent, appointment)| SavedAppointment {
                sent_id: sent.id,
                appointment,
            })
            .collect())
    }

    /// Deletes an appointment. `ignore_exchange_delete` tells Halo not to
    /// delete the Exchange copy itself: set it when halosync is the Exchange
    /// side.
    pub async fn delete_appointment(
        &self,
        id: i64,
        ignore_exchange_delete: bool,
    ) -> Result<(), HaloError> {
        self.call(
            Method::DELETE,
            &format!("api/Appointment/{id}"),
            &[("ignoreexchangedelete", ignore_exchange_delete.to_string())],
            None,
            RequestContext::idempotent(),
        )
        .await?;
        Ok(())
    }
}

/// A list page: a bare array or `{appointments|results: [...]}`, with the
/// envelope's `page_size` when it has one.
fn page_rows(reply: &Reply) -> Result<(Vec<Appointment>, Option<usize>), HaloError> {
    let value: Value = json(reply)?;
    let reported = value
        .get("page_size")
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok());
    Ok((
        super::rows_in(reply, value, &["appointments", "results"])?,
        reported,
    ))
}

/// A save response: an array, `{appointments: [...]}`, or one object.
fn saved_rows(reply: &Reply) -> Result<Vec<Appointment>, HaloError> {
    let value: Value = json(reply)?;
    match value {
        Value::Object(ref map) if map.contains_key("id") => Ok(vec![
            serde_json::from_value(value).map_err(|e| HaloError::decode(reply, e))?,
        ]),
        other => super::rows_in(reply, other, &["appointments"]),
    }
}

/// The time a reply's `Date` header gives (RFC 7231's IMF-fixdate).
fn server_time(headers: &reqwest::header::HeaderMap) -> Option<DateTime<Utc>> {
    let text = headers.get(reqwest::header::DATE)?.to_str().ok()?;
    DateTime::parse_from_rfc2822(text)
        .ok()
        .map(|at| at.with_timezone(&Utc))
}
