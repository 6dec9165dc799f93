//! Query parameters as Halo's (ASP.NET) model binding reads them: names are
//! case-insensitive, and a value that does not bind is a 400.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use serde::Serialize;
use serde_json::{Value, json};

use super::appointment::HaloDateTime;
use super::errors::HaloError;

/// The page size Halo uses when `pageinate` is given without `page_size`.
const DEFAULT_PAGE_SIZE: usize = 50;

#[derive(Debug, Clone, Default)]
pub(super) struct Params(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = HaloError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(raw) = Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| HaloError::Validation(rejection.body_text()))?;
        Ok(Params(
            raw.into_iter()
                .map(|(key, value)| (key.to_ascii_lowercase(), value))
                .collect(),
        ))
    }
}

fn not_valid(name: &str, value: &str) -> HaloError {
    HaloError::Validation(format!("The value '{value}' is not valid for {name}."))
}

impl Params {
    /// A non-empty value.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn flag(&self, name: &str) -> Result<Option<bool>, HaloError> {
        self.text(name)
            .map(|value| match value.to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => Err(not_valid(name, value)),
            })
            .transpose()
    }

    pub fn int(&self, name: &str) -> Result<Option<i64>, HaloError> {
        self.text(name)
            .map(|value| value.trim().parse().map_err(|_| not_valid(name, value)))
            .transpose()
    }

    pub fn date(&self, name: &str) -> Result<Option<HaloDateTime>, HaloError> {
        self.text(name)
            .map(|value| HaloDateTime::parse(value).ok_or_else(|| not_valid(name, value)))
            .transpose()
    }

    /// A comma-separated id list; `0` entries and blanks mean "all", which is
    /// an empty result.
    pub fn ids(&self, name: &str) -> Result<Vec<i64>, HaloError> {
        let Some(value) = self.text(name) else {
            return Ok(Vec::new());
        };
        let mut ids = Vec::new();
        for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let id: i64 = part.parse().map_err(|_| not_valid(name, value))?;
            if id == 0 {
                return Ok(Vec::new());
            }
            ids.push(id);
        }
        Ok(ids)
    }

    /// `pageinate`/`page_size`/`page_no`: `None` when not paging.
    pub fn page(&self) -> Result<Option<Page>, HaloError> {
        if !self.flag("pageinate")?.unwrap_or(false) {
            return Ok(None);
        }
        let size = self.int("page_size")?.unwrap_or(DEFAULT_PAGE_SIZE as i64);
        let number = self.int("page_no")?.unwrap_or(1);
        Ok(Some(Page {
            size: usize::try_from(size)
                .ok()
                .filter(|s| *s > 0)
                .unwrap_or(DEFAULT_PAGE_SIZE),
            number: usize::try_from(number).ok().filter(|n| *n > 0).unwrap_or(1),
        }))
    }
}

/// One requested page (1-based).
#[derive(Debug, Clone, Copy)]
pub(super) struct Page {
    pub size: usize,
    pub number: usize,
}

impl Page {
    /// Halo's paged envelope: `{page_no, page_size, record_count, <key>}`.
    pub fn envelope<T: Serialize>(self, key: &str, all: Vec<T>) -> Value {
        self.envelope_rendered(key, &all, |row| json!(row))
    }

    /// [`Self::envelope`], rendering only the rows of the page: a listing
    /// of 100,000 appointments renders 100 a request, not all of them.
    pub fn envelope_rendered<T>(self, key: &str, all: &[T], render: impl Fn(&T) -> Value) -> Value {
        let rows: Vec<Value> = all
            .iter()
            .skip(self.size.saturating_mul(self.number - 1))
            .take(self.size)
            .map(render)
            .collect();
        let mut body = json!({
            "page_no": self.number,
            "page_size": self.size,
            "record_count": all.len(),
        });
        body[key] = Value::Array(rows);
        body
    }
}
