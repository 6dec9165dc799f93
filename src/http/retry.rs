//! When a failed request is tried again, and how long to wait first.
//!
//! What may be retried depends on whether the upstream processed the request:
//! - a 429 and a failed connect mean it did not, so any request is retried;
//! - a 503/504, a timeout or a connection broken mid-way may have been
//!   processed, so only requests the caller declares [`Idempotency::Idempotent`]
//!   are retried (GET/DELETE; a Halo POST that is safe to replay; a Graph POST
//!   carrying a `transactionId`).

use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use reqwest::StatusCode;

use super::TransportKind;

/// Whether replaying a request that may have been processed is harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    Idempotent,
    NotIdempotent,
}

/// How many times to try and how long to wait in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first one included.
    pub max_attempts: u32,
    /// The backoff ceiling before the first retry; it doubles for each one.
    pub base_delay: Duration,
    /// The backoff ceiling never grows past this.
    pub max_delay: Duration,
    /// A `Retry-After` longer than this is not waited for: the reply goes
    /// back to the caller, who can reschedule the work instead of holding a
    /// task for that long.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(300),
        }
    }
}

/// Why an attempt is worth repeating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transient {
    /// Refused before processing (429, connect failure).
    Unprocessed,
    /// Possibly processed (503, 504, timeout, broken connection).
    MaybeProcessed,
}

impl Transient {
    pub(crate) fn of_status(status: StatusCode) -> Option<Self> {
        match status {
            StatusCode::TOO_MANY_REQUESTS => Some(Self::Unprocessed),
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => {
                Some(Self::MaybeProcessed)
            }
            _ => None,
        }
    }

    pub(crate) fn of_transport(kind: TransportKind) -> Self {
        match kind {
            TransportKind::Connect => Self::Unprocessed,
            TransportKind::Timeout | TransportKind::Other => Self::MaybeProcessed,
        }
    }

    pub(crate) fn allows(self, idempotency: Idempotency) -> bool {
        self == Self::Unprocessed || idempotency == Idempotency::Idempotent
    }
}

impl RetryPolicy {
    /// The exponential backoff before retry number `retry` (1-based), with
    /// full jitter: `jitter` (in `[0, 1]`) picks a point between zero and the
    /// ceiling, so clients that failed together do not retry together.
    pub fn backoff(&self, retry: u32, jitter: f64) -> Duration {
        let doublings = retry.saturating_sub(1).min(31);
        let ceiling = self
            .base_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay);
        ceiling.mul_f64(jitter.clamp(0.0, 1.0))
    }

    /// The wait before retry number `retry`: the server's `Retry-After` when
    /// it gave a positive one, else the jittered backoff. `None` means the
    /// server asked for a longer pause than this policy waits.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Option<Duration> {
        match retry_after {
            Some(wait) if wait > self.max_retry_after => None,
            Some(wait) => Some(wait),
            None => Some(self.backoff(retry, fastrand::f64())),
        }
    }
}

/// Reads a `Retry-After` value: delay-seconds or an HTTP date (relative to
/// `now`). Zero, a date in the past and anything unreadable give `None`, which
/// means "use the backoff".
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return (seconds > 0).then(|| Duration::from_secs(seconds));
    }
    let at: DateTime<Utc> = httpdate::parse_http_date(value)
        .ok()
        .map(SystemTime::into)?;
    (at - now).to_std().ok().filter(|wait| !wait.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2015, 10, 21, 7, 28, 0)
            .single()
            .expect("valid date")
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        assert_eq!(parse_retry_after("2", now()), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after(" 120 ", now()),
            Some(Duration::from_secs(120))
        );
        // IMF-fixdate, RFC 850 and asctime all name the same instant.
        for date in [
            "Wed, 21 Oct 2015 07:28:30 GMT",
            "Wednesday, 21-Oct-15 07:28:30 GMT",
            "Wed Oct 21 07:28:30 2015",
        ] {
            assert_eq!(
                parse_retry_after(date, now()),
                Some(Duration::from_secs(30)),
                "{date}"
            );
        }
    }

    #[test]
    fn retry_after_zero_past_or_garbage_falls_back_to_backoff() {
        for value in [
            "0",
            "-5",
            "soon",
            "",
            "Wed, 21 Oct 2015 07:27:00 GMT",
            "Wed, 21 Oct 2015 07:28:00 GMT",
        ] {
            assert_eq!(parse_retry_after(value, now()), None, "{value:?}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_scales_within_it() {
        let policy = RetryPolicy::default();
        let ceilings: Vec<u64> = (1..=9)
            .map(|retry| policy.backoff(retry, 1.0).as_secs())
            .collect();
        assert_eq!(ceilings, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(policy.backoff(4, 0.0), Duration::ZERO);
        assert_eq!(policy.backoff(4, 0.5), Duration::from_secs(4));
        assert_eq!(policy.backoff(u32::MAX, 1.0), Duration::from_secs(60));
        assert_eq!(
            policy.backoff(2, 7.0),
            Duration::from_secs(2),
            "jitter is clamped"
        );
        for _ in 0..200 {
            let wait = policy.delay(3, None).expect("no Retry-After means backoff");
            assert!(wait <= Duration::from_secs(4), "{wait:?}");
        }
    }

    #[test]
    fn a_retry_after_is_honoured_up_to_the_policy_limit() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(2))),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(300))),
            Some(Duration::from_secs(300))
        );
        assert_eq!(policy.delay(1, Some(Duration::from_secs(301))), None);
    }

    #[test]
    fn only_unprocessed_failures_replay_a_non_idempotent_request() {
        use Idempotency::*;
        let throttled = Transient::of_status(StatusCode::TOO_MANY_REQUESTS).expect("429");
        assert!(throttled.allows(NotIdempotent));
        for status in [StatusCode::SERVICE_UNAVAILABLE, StatusCode::GATEWAY_TIMEOUT] {
            let transient = Transient::of_status(status).expect("transient");
            assert!(transient.allows(Idempotent), "{status}");
            assert!(!transient.allows(NotIdempotent), "{status}");
        }
        for status in [
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::BAD_REQUEST,
            StatusCode::UNAUTHORIZED,
            StatusCode::OK,
        ] {
            assert_eq!(Transient::of_status(status), None, "{status}");
        }
        assert!(Transient::of_transport(TransportKind::Connect).allows(NotIdempotent));
        assert!(!Transient::of_transport(TransportKind::Timeout).allows(NotIdempotent));
        assert!(!Transient::of_transport(TransportKind::Other).allows(NotIdempotent));
        assert!(Transient::of_transport(TransportKind::Other).allows(Idempotent));
    }
}
