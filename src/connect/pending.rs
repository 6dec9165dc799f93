//! Sign-ins that were started and not yet completed, keyed by their OAuth
//! `state`.
//!
//! Kept in memory, not in SQLite: a sign-in takes a minute, the PKCE
//! verifier then never touches the disk, and a restart in between makes the
//! callback find no entry and show "this sign-in expired; start again" —
//! the same clean failure a persisted but expired entry would give. Each
//! state is 256 random bits, used once, valid for [`STATE_LIFETIME`] and
//! bound to what it was started for (the agent, or the admin connection).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Duration, Utc};
use secrecy::SecretString;
use sha2::{Digest, Sha256};

use super::ConnectError;
use super::oauth::{challenge, random_token};
use crate::clock::SharedClock;

/// How long a started sign-in may take.
pub const STATE_LIFETIME: Duration = Duration::minutes(10);
/// More open sign-ins than this are refused: the start page is public, and
/// memory must not grow with every visitor.
pub const MAX_PENDING: usize = 1000;

/// What a sign-in is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    /// Option 2: the account behind a delegated connection.
    Admin { connection: String },
    /// Option 3: an agent connecting their own calendar.
    Connect {
        agent_id: i64,
        mailbox: String,
        connection: String,
    },
    /// Option 3: an agent proving who they are to disconnect.
    Disconnect {
        agent_id: i64,
        mailbox: String,
        connection: String,
    },
}

struct Pending {
    purpose: Purpose,
    verifier: SecretString,
    started: DateTime<Utc>,
}

/// A started sign-in: what goes into the authorize URL.
pub struct Started {
    pub state: String,
    pub challenge: String,
}

/// Open sign-ins. Deliberately not `Debug` (it holds PKCE verifiers).
pub struct PendingSignIns {
    clock: SharedClock,
    /// Keyed by the SHA-256 of the state, so the map never holds a state
    /// that could be replayed.
    open: Mutex<HashMap<[u8; 32], Pending>>,
}

fn key(state: &str) -> [u8; 32] {
    Sha256::digest(state.as_bytes()).into()
}

impl PendingSignIns {
    pub fn new(clock: SharedClock) -> Self {
        Self {
            clock,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Starts a sign-in for `purpose`.
    pub fn start(&self, purpose: Purpose) -> Result<Started, ConnectError> {
        let state = random_token()?;
        let verifier = SecretString::from(random_token()?);
        let challenge = challenge(&verifier);
        let now = self.clock.now();
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.retain(|_, p| now - p.started < STATE_LIFETIME);
        if open.len() >= MAX_PENDING {
            return Err(ConnectError::Busy);
        }
        open.insert(
            key(&state),
            Pending {
                purpose,
                verifier,
                started: now,
            },
        );
        Ok(Started { state, challenge })
    }

    /// Takes the sign-in `state` belongs to: once only, and only while it
    /// is fresh.
    pub fn take(&self, state: &str) -> Option<(Purpose, SecretString)> {
        let now = self.clock.now();
        let pending = self
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key(state))?;
        (now - pending.started < STATE_LIFETIME).then_some((pending.purpose, pending.verifier))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::sync::Arc;

    #[test]
    fn a_state_is_single_use_bound_and_short_lived() {
        let clock = Arc::new(ManualClock::at(
            DateTime::parse_from_rfc3339("2026-11-01T08:00:00Z")
                .expect("time")
                .with_timezone(&Utc),
        ));
        let pending = PendingSignIns::new(clock.clone());
        let purpose = Purpose::Connect {
            agent_id: 7,
            mailbox: "leah@contoso.com".into(),
            connection: "staff".into(),
        };
        let first = pending.start(purpose.clone()).expect("start");
        let second = pending.start(purpose.clone()).expect("start");
        assert_ne!(first.state, second.state);
        assert!(first.state.len() >= 43, "256 bits, base64url");
        assert!(pending.take("guessed").is_none());
        let (taken, _) = pending.take(&first.state).expect("fresh");
        assert_eq!(taken, purpose);
        assert!(pending.take(&first.state).is_none(), "single use");
        clock.advance(STATE_LIFETIME);
        assert!(pending.take(&second.state).is_none(), "expired");
    }
}
