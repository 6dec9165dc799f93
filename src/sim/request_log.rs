//! Counts the requests a simulated upstream served, per route template, for
//! `GET /_sim/state`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

/// Totals by `"METHOD /route/{template}"`.
#[derive(Debug, Default)]
pub struct RequestLog {
    by_route: Mutex<BTreeMap<String, u64>>,
}

impl RequestLog {
    pub fn record(&self, method: &str, route: &str) {
        let mut by_route = self.by_route.lock().unwrap_or_else(PoisonError::into_inner);
        *by_route.entry(format!("{method} {route}")).or_default() += 1;
    }

    pub fn total(&self) -> u64 {
        self.snapshot().values().sum()
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.by_route
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn clear(&self) {
        self.by_route
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// Route-layer middleware: records the matched route template (so it must be
/// added with `Router::route_layer`, where the template is known). Faulted
/// requests are counted too, as long as this layer wraps the fault layer.
pub async fn count(State(log): State<Arc<RequestLog>>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || request.uri().path().to_owned(),
        |p| p.as_str().to_owned(),
    );
    log.record(request.method().as_str(), &route);
    next.run(request).await
}
