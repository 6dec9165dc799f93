//! Latency, fault injection and rolling request budgets for the simulated
//! upstreams.
//!
//! Each simulated upstream owns one [`FaultPlan`] and wraps its router with
//! [`inject`], giving it the upstream's own error shape through an
//! [`ErrorBody`] function, so a fault looks exactly like the real service
//! failing.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a matching fault does to the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultAction {
    /// Answer with this status (and the upstream's error body for it).
    Status {
        status: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_seconds: Option<u64>,
    },
    /// Start a response and break the connection before the body completes.
    Drop,
    /// Hold the request this long before handling it normally: past the
    /// client's timeout, the client gives up while the upstream may still
    /// carry the request out.
    Slow { delay_ms: u64 },
    /// Carry the request out, then break the connection instead of
    /// answering: what a client sees when a response comes back after its
    /// timeout, without waiting that long.
    LoseAnswer,
    /// One of these, picked with the plan's random generator, so one rule
    /// or random setting can mix failure kinds reproducibly.
    AnyOf { actions: Vec<FaultAction> },
}

/// Fail the next `count` requests that match `method` and `path_contains`
/// (both optional; absent matches everything), after letting the first
/// `skip` of them through (to fail part-way through a run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRule {
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub path_contains: Option<String>,
    pub count: u32,
    #[serde(default)]
    pub skip: u32,
    pub action: FaultAction,
}

/// Fail a random fraction of requests, reproducibly from `seed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RandomFaults {
    /// Probability in `[0, 1]` that a request fails.
    pub rate: f64,
    pub seed: u64,
    pub action: FaultAction,
}

/// The fault settings a control request can replace.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSettings {
    /// Added to every request before it is handled.
    #[serde(default)]
    pub latency_ms: u64,
    #[serde(default)]
    pub rules: Vec<FaultRule>,
    #[serde(default)]
    pub random: Option<RandomFaults>,
}

/// Turns a status into the upstream's own error response for it.
pub type ErrorBody = fn(StatusCode) -> Response;

#[derive(Debug, Default)]
struct PlanState {
    settings: FaultSettings,
    rng: u64,
}

/// The live fault configuration of one simulated upstream.
#[derive(Debug, Default)]
pub struct FaultPlan {
    state: Mutex<PlanState>,
}

impl FaultPlan {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, PlanState> {
        // A panic elsewhere must not wedge the simulator: the state is plain data.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the settings (and reseeds the random faults).
    pub fn set(&self, settings: FaultSettings) {
        let mut state = self.lock();
        state.rng = settings.random.as_ref().map_or(0, |r| r.seed);
        state.settings = settings;
    }

    /// Adds rules to the existing ones.
    pub fn add_rules(&self, rules: impl IntoIterator<Item = FaultRule>) {
        self.lock().settings.rules.extend(rules);
    }

    pub fn clear(&self) {
        *self.lock() = PlanState::default();
    }

    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.lock().settings.latency_ms)
    }

    /// Decides whether this request fails, consuming one use of the first
    /// matching rule.
    pub fn next_fault(&self, method: &str, path: &str) -> Option<FaultAction> {
        let mut state = self.lock();
        let matching = state.settings.rules.iter_mut().find(|rule| {
            rule.count > 0
                && rule
                    .method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(method))
                && rule
                    .path_contains
                    .as_deref()
                    .is_none_or(|p| path.contains(p))
        });
        if let Some(rule) = matching {
            if rule.skip > 0 {
                rule.skip -= 1;
                return None;
            }
            rule.count -= 1;
            let action = rule.action.clone();
            state.settings.rules.retain(|r| r.count > 0);
            return pick(action, &mut state.rng);
        }
        let random = state.settings.random.clone()?;
        let draw = splitmix64(&mut state.rng);
        // 53 random bits give a uniform float in [0, 1).
        let unit = (draw >> 11) as f64 / (1u64 << 53) as f64;
        if unit < random.rate {
            pick(random.action, &mut state.rng)
        } else {
            None
        }
    }
}

/// Resolves [`FaultAction::AnyOf`] (nested ones too) to one concrete action;
/// an empty choice is no fault.
fn pick(mut action: FaultAction, rng: &mut u64) -> Option<FaultAction> {
    while let FaultAction::AnyOf { mut actions } = action {
        if actions.is_empty() {
            return None;
        }
        let index = splitmix64(rng) % actions.len() as u64;
        action = actions.swap_remove(usize::try_from(index).unwrap_or(0));
    }
    Some(action)
}

/// SplitMix64: a tiny, well-studied generator; reproducible from its seed,
/// which is all a fault schedule needs.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Axum middleware: applies latency, then any matching fault, then the handler.
///
/// Use with `axum::middleware::from_fn_with_state((plan, error_body), inject)`.
pub async fn inject(
    State((plan, error_body)): State<(Arc<FaultPlan>, ErrorBody)>,
    request: Request,
    next: Next,
) -> Response {
    let latency = plan.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let fault = plan.next_fault(request.method().as_str(), request.uri().path());
    match fault {
        None => next.run(request).await,
        Some(FaultAction::Status {
            status,
            retry_after_seconds,
        }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = error_body(status);
            if let Some(seconds) = retry_after_seconds {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            response
        }
        Some(FaultAction::Drop) => dropped_connection(),
        Some(FaultAction::Slow { delay_ms }) => {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            next.run(request).await
        }
        Some(FaultAction::LoseAnswer) => {
            // The answer is thrown away: the change is made all the same.
            drop(next.run(request).await);
            dropped_connection()
        }
        // `next_fault` resolves every choice.
        Some(FaultAction::AnyOf { .. }) => next.run(request).await,
    }
}

/// A response whose body fails after the headers, so the client sees the
/// connection break mid-response.
fn dropped_connection() -> Response {
    let broken = futures_util::stream::once(async {
        Err::<axum::body::Bytes, _>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "simulated dropped connection",
        ))
    });
    (
        StatusCode::OK,
        [(header::CONTENT_LENGTH, HeaderValue::from_static("1024"))],
        Body::from_stream(broken),
    )
        .into_response()
}

/// A rolling-window request budget, as Halo (300 per 5 minutes) and Graph
/// (10,000 per 10 minutes per app and mailbox) enforce them.
#[derive(Debug, Clone)]
pub struct RollingWindow {
    limit: usize,
    window: chrono::Duration,
    hits: VecDeque<DateTime<Utc>>,
}

impl RollingWindow {
    pub fn new(limit: usize, window: chrono::Duration) -> Self {
        Self {
            limit,
            window,
            hits: VecDeque::new(),
        }
    }

    /// Counts a request at `now`, or says how long until the oldest request
    /// in the window leaves it (at least one second, as `Retry-After` is whole
    /// seconds).
    pub fn try_acquire(&mut self, now: DateTime<Utc>) -> Result<(), Duration> {
        while self
            .hits
            .front()
            .is_some_and(|oldest| *oldest + self.window <= now)
        {
            self.hits.pop_front();
        }
        if self.hits.len() < self.limit {
            self.hits.push_back(now);
            return Ok(());
        }
        let wait = self
            .hits
            .front()
            .map_or(self.window, |oldest| *oldest + self.window - now);
        let millis = wait.num_milliseconds().max(0).unsigned_abs();
        Err(Duration::from_secs(millis.div_ceil(1000).max(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn status(status: u16) -> FaultAction {
        FaultAction::Status {
            status,
            retry_after_seconds: None,
        }
    }

    #[test]
    fn a_rule_fails_exactly_its_count_of_matching_requests() {
        let plan = FaultPlan::new();
        plan.add_rules([FaultRule {
            method: Some("POST".into()),
            path_contains: Some("/events".into()),
            count: 2,
            skip: 0,
            action: status(503),
        }]);
        assert_eq!(plan.next_fault("GET", "/v1.0/users/a/events"), None);
        assert_eq!(plan.next_fault("post", "/v1.0/users/a/calendar"), None);
        assert_eq!(
            plan.next_fault("POST", "/v1.0/users/a/events"),
            Some(status(503))
        );
        assert_eq!(
            plan.next_fault("POST", "/v1.0/users/b/events"),
            Some(status(503))
        );
        assert_eq!(plan.next_fault("POST", "/v1.0/users/a/events"), None);
    }

    #[test]
    fn a_rule_can_let_its_first_matches_through() {
        let plan = FaultPlan::new();
        plan.add_rules([FaultRule {
            method: None,
            path_contains: None,
            count: 1,
            skip: 2,
            action: status(500),
        }]);
        let failed: Vec<bool> = (0..4)
            .map(|_| plan.next_fault("POST", "/api/Appointment").is_some())
            .collect();
        assert_eq!(failed, [false, false, true, false]);
    }

    #[test]
    fn random_faults_are_reproducible_from_the_seed_and_near_the_rate() {
        let settings = FaultSettings {
            random: Some(RandomFaults {
                rate: 0.25,
                seed: 42,
                action: FaultAction::Drop,
            }),
            ..FaultSettings::default()
        };
        let run = || {
            let plan = FaultPlan::new();
            plan.set(settings.clone());
            (0..4000)
                .map(|_| plan.next_fault("GET", "/x").is_some())
                .collect::<Vec<_>>()
        };
        let first = run();
        assert_eq!(first, run());
        let failed = first.iter().filter(|f| **f).count();
        assert!((850..1150).contains(&failed), "{failed} of 4000 failed");
    }

    #[test]
    fn any_of_picks_each_of_its_actions_reproducibly() {
        let choices = vec![status(429), status(503), FaultAction::Slow { delay_ms: 5 }];
        let settings = FaultSettings {
            random: Some(RandomFaults {
                rate: 1.0,
                seed: 7,
                action: FaultAction::AnyOf {
                    actions: choices.clone(),
                },
            }),
            ..FaultSettings::default()
        };
        let run = || {
            let plan = FaultPlan::new();
            plan.set(settings.clone());
            (0..300)
                .map(|_| plan.next_fault("GET", "/x"))
                .collect::<Vec<_>>()
        };
        let picked = run();
        assert_eq!(picked, run());
        for choice in &choices {
            let times = picked.iter().filter(|p| p.as_ref() == Some(choice)).count();
            assert!(
                (60..140).contains(&times),
                "{choice:?} picked {times} of 300"
            );
        }
    }

    #[test]
    fn an_empty_choice_fails_nothing() {
        let plan = FaultPlan::new();
        plan.add_rules([FaultRule {
            method: None,
            path_contains: None,
            count: 1,
            skip: 0,
            action: FaultAction::AnyOf { actions: vec![] },
        }]);
        assert_eq!(plan.next_fault("GET", "/x"), None);
    }

    #[test]
    fn fault_actions_read_as_the_control_api_documents_them() {
        let action: FaultAction = serde_json::from_value(serde_json::json!(
            {"kind": "any_of", "actions": [{"kind": "slow", "delay_ms": 1500}, {"kind": "drop"},
                                         {"kind": "lose_answer"}]}
        ))
        .expect("valid action");
        assert_eq!(
            action,
            FaultAction::AnyOf {
                actions: vec![
                    FaultAction::Slow { delay_ms: 1500 },
                    FaultAction::Drop,
                    FaultAction::LoseAnswer
                ]
            }
        );
    }

    #[test]
    fn rolling_window_refuses_over_the_limit_until_the_oldest_hit_ages_out() {
        let t0 = Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .expect("valid date");
        let mut window = RollingWindow::new(3, chrono::Duration::minutes(5));
        for s in 0..3 {
            assert!(
                window
                    .try_acquire(t0 + chrono::Duration::seconds(s))
                    .is_ok()
            );
        }
        let refused = window.try_acquire(t0 + chrono::Duration::seconds(10));
        assert_eq!(refused, Err(Duration::from_secs(290)));
        assert!(
            window
                .try_acquire(t0 + chrono::Duration::seconds(300))
                .is_ok()
        );
        assert!(
            window
                .try_acquire(t0 + chrono::Duration::seconds(300))
                .is_err()
        );
    }
}
