//! Stored OAuth refresh tokens: one sealed token per subject
//! (`connection:<name>` for a delegated connection, `agent:<id>` for a
//! technician's own), with the state the sign-in is in.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, db_time};
use crate::token_cipher::Sealed;

/// Where a stored sign-in stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    Ok,
    /// The identity platform refused the refresh token: someone must sign in again.
    ReauthRequired,
    /// Disconnected on purpose.
    Revoked,
}

impl TokenState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::ReauthRequired => "reauth_required",
            Self::Revoked => "revoked",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "ok" => Some(Self::Ok),
            "reauth_required" => Some(Self::ReauthRequired),
            "revoked" => Some(Self::Revoked),
            _ => None,
        }
    }
}

/// One row of `oauth_tokens`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    pub connection: String,
    /// The account that signed in (its UPN).
    pub account: Option<String>,
    pub sealed: Option<Sealed>,
    pub state: TokenState,
}

impl Store {
    /// Saves a (rotated) refresh token for `subject`, replacing the previous
    /// one in the same statement, and marks the sign-in usable.
    pub fn save_refresh_token(
        &self,
        subject: &str,
        connection: &str,
        account: Option<&str>,
        sealed: &Sealed,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.connection()
            .execute(
                "INSERT INTO oauth_tokens (subject, connection, account, nonce, ciphertext, updated_at, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'ok')
                 ON CONFLICT (subject) DO UPDATE SET
                     connection = excluded.connection,
                     account = COALESCE(excluded.account, oauth_tokens.account),
                     nonce = excluded.nonce,
                     ciphertext = excluded.ciphertext,
                     updated_at = excluded.updated_at,
                     state = 'ok'",
                params![
                    subject,
                    connection,
                    account,
                    sealed.nonce,
                    sealed.ciphertext,
                    db_time(now)
                ],
            )
            .map_err(|e| StoreError::sqlite("saving a refresh token", self.path(), e))?;
        Ok(())
    }

    /// The stored sign-in for `subject`, if any.
    pub fn refresh_token(&self, subject: &str) -> Result<Option<StoredToken>, StoreError> {
        let row = self
            .connection()
            .query_row(
                "SELECT connection, account, nonce, ciphertext, state FROM oauth_tokens WHERE subject = ?1",
                [subject],
                |row| {
                    let nonce: Option<Vec<u8>> = row.get(2)?;
                    let ciphertext: Option<Vec<u8>> = row.get(3)?;
                    let state: String = row.get(4)?;
                    Ok((row.get(0)?, row.get(1)?, nonce.zip(ciphertext), state))
                },
            )
            .optional()
            .map_err(|e| StoreError::sqlite("reading a refresh token", self.path(), e))?;
        Ok(row.map(|(connection, account, sealed, state)| StoredToken {
            connection,
            account,
            sealed: sealed.map(|(nonce, ciphertext)| Sealed { nonce, ciphertext }),
            // The CHECK constraint admits only the three known states.
            state: TokenState::parse(&state).unwrap_or(TokenState::ReauthRequired),
        }))
    }

    /// Records that `subject`'s sign-in needs attention; the sealed token is
    /// dropped when it can never work again.
    pub fn set_token_state(
        &self,
        subject: &str,
        state: TokenState,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let forget = state != TokenState::Ok;
        self.connection()
            .execute(
                "UPDATE oauth_tokens
                 SET state = ?2, updated_at = ?3,
                     nonce = CASE WHEN ?4 THEN NULL ELSE nonce END,
                     ciphertext = CASE WHEN ?4 THEN NULL ELSE ciphertext END
                 WHERE subject = ?1",
                params![subject, state.as_str(), db_time(now), forget],
            )
            .map_err(|e| StoreError::sqlite("updating a sign-in's state", self.path(), e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 1, 8, 0, 0)
            .single()
            .expect("valid date")
    }

    #[test]
    fn a_rotated_token_replaces_the_old_one_and_reauth_forgets_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path().join("t.db")).expect("open");
        let first = Sealed {
            nonce: vec![1; 24],
            ciphertext: vec![2; 40],
        };
        let second = Sealed {
            nonce: vec![3; 24],
            ciphertext: vec![4; 40],
        };
        assert_eq!(store.refresh_token("agent:7").expect("read"), None);
        store
            .save_refresh_token("agent:7", "main", Some("leah@contoso.com"), &first, now())
            .expect("save");
        store
            .save_refresh_token("agent:7", "main", None, &second, now())
            .expect("rotate");
        let stored = store.refresh_token("agent:7").expect("read").expect("row");
        assert_eq!(stored.sealed, Some(second));
        assert_eq!(stored.account.as_deref(), Some("leah@contoso.com"));
        assert_eq!(stored.state, TokenState::Ok);

        store
            .set_token_state("agent:7", TokenState::ReauthRequired, now())
            .expect("mark");
        let stored = store.refresh_token("agent:7").expect("read").expect("row");
        assert_eq!(stored.state, TokenState::ReauthRequired);
        assert_eq!(stored.sealed, None, "a refused token is not kept");
    }
}
