//! Access tokens minted by the simulated identity platform and checked by the
//! simulated Graph.
//!
//! They are JWT-shaped (`header.claims.signature`, HMAC-SHA256) so the
//! identity side and the Graph side share nothing but the [`TokenAuthority`]:
//! Graph can verify a token, its audience (cloud), its expiry and who it was
//! issued to without looking anything up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// What an access token says about its bearer, named as in Entra ID tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The resource the token is for: a cloud's Graph root, such as
    /// `https://graph.microsoft.com`, or `halo` for the Halo API.
    pub aud: String,
    /// Tenant id (or name) the token was issued in.
    pub tid: String,
    /// The client (application) id.
    pub appid: String,
    /// The signed-in user, for delegated tokens; absent for app-only tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upn: Option<String>,
    /// Delegated scopes, space separated (delegated tokens only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scp: Option<String>,
    /// Application roles (app-only tokens only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Issued-at and expiry, unix seconds.
    pub iat: i64,
    pub exp: i64,
    /// The authority generation the token was minted in; a reset of the
    /// simulator invalidates every earlier token.
    pub epoch: u64,
}

/// Why a bearer token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the access token is malformed")]
    Malformed,
    #[error("the access token signature is invalid")]
    BadSignature,
    #[error("the access token has expired")]
    Expired,
    #[error("the access token was revoked")]
    Revoked,
}

/// Mints and verifies simulator access tokens.
pub struct TokenAuthority {
    key: [u8; 32],
    epoch: AtomicU64,
    /// Every token minted, so a test can search halosync's output for them.
    issued: Mutex<Vec<String>>,
}

impl std::fmt::Debug for TokenAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The signing key is what makes a token trustworthy: never printed.
        f.debug_struct("TokenAuthority")
            .field("key", &"[REDACTED]")
            .field("epoch", &self.epoch())
            .field("issued", &self.lock_issued().len())
            .finish()
    }
}

impl TokenAuthority {
    /// An authority with a fresh random key.
    pub fn new() -> Self {
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        Self {
            key,
            epoch: AtomicU64::new(0),
            issued: Mutex::new(Vec::new()),
        }
    }

    fn lock_issued(&self) -> MutexGuard<'_, Vec<String>> {
        // A list of strings cannot be left inconsistent by a panic.
        self.issued.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every token minted so far, revoked or not.
    pub fn issued(&self) -> Vec<String> {
        self.lock_issued().clone()
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Invalidates every token minted so far.
    pub fn revoke_all(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        match HmacSha256::new_from_slice(&self.key) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
        }
    }

    /// Signs `claims` (whose `epoch` is overwritten with the current one).
    /// Like Entra ID's `uti` claim, a random token id makes every token
    /// unique, even two minted in the same second for the same caller.
    pub fn mint(&self, mut claims: Claims) -> String {
        #[derive(Serialize)]
        struct Wire<'a> {
            #[serde(flatten)]
            claims: &'a Claims,
            uti: String,
        }
        claims.epoch = self.epoch();
        let wire = Wire {
            claims: &claims,
            uti: uuid::Uuid::new_v4().simple().to_string(),
        };
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        // Serializing a struct of strings and integers cannot fail.
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&wire).unwrap_or_default());
        let signing_input = format!("{header}.{body}");
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        let token = format!("{signing_input}.{signature}");
        self.lock_issued().push(token.clone());
        token
    }

    /// Checks the signature, epoch and expiry of `token` at `now`.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(body), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac();
        mac.update(header.as_bytes());
        mac.update(b".");
        mac.update(body.as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| TokenError::BadSignature)?;
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(body)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or(TokenError::Malformed)?;
        if claims.epoch != self.epoch() {
            return Err(TokenError::Revoked);
        }
        if now.timestamp() >= claims.exp {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

impl Default for TokenAuthority {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn claims(now: DateTime<Utc>) -> Claims {
        Claims {
            aud: "https://graph.microsoft.com".into(),
            tid: "contoso".into(),
            appid: "app-1".into(),
            upn: None,
            scp: None,
            roles: vec!["Calendars.ReadWrite".into()],
            iat: now.timestamp(),
            exp: now.timestamp() + 3600,
            epoch: 99,
        }
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0)
            .single()
            .expect("valid date")
    }

    #[test]
    fn a_minted_token_verifies_until_it_expires() {
        let authority = TokenAuthority::new();
        let token = authority.mint(claims(t0()));
        let verified = authority.verify(&token, t0()).expect("valid token");
        assert_eq!(verified.appid, "app-1");
        assert_eq!(
            verified.epoch, 0,
            "epoch is the authority's, not the caller's"
        );
        assert_eq!(
            authority.verify(&token, t0() + chrono::Duration::seconds(3600)),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn tampering_another_key_and_revocation_are_refused() {
        let authority = TokenAuthority::new();
        let token = authority.mint(claims(t0()));
        let (signing_input, _) = token.rsplit_once('.').expect("three parts");
        let forged_claims = Claims {
            appid: "intruder".into(),
            ..claims(t0())
        };
        let forged_body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged_claims).expect("json"));
        let (header, _) = signing_input.split_once('.').expect("header");
        let (_, signature) = token.rsplit_once('.').expect("signature");
        let forged = format!("{header}.{forged_body}.{signature}");
        assert_eq!(
            authority.verify(&forged, t0()),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            TokenAuthority::new().verify(&token, t0()),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            authority.verify("not-a-token", t0()),
            Err(TokenError::Malformed)
        );
        authority.revoke_all();
        assert_eq!(authority.verify(&token, t0()), Err(TokenError::Revoked));
    }

    #[test]
    fn every_minted_token_is_listed() {
        let authority = TokenAuthority::new();
        let a = authority.mint(claims(t0()));
        let b = authority.mint(claims(t0()));
        assert_eq!(authority.issued(), [a, b]);
        assert!(!format!("{authority:?}").contains(&authority.issued()[0]));
    }

    #[test]
    fn two_tokens_for_the_same_claims_differ() {
        let authority = TokenAuthority::new();
        let a = authority.mint(claims(t0()));
        let b = authority.mint(claims(t0()));
        assert_ne!(a, b);
        assert_eq!(authority.verify(&a, t0()), authority.verify(&b, t0()));
    }

    #[test]
    fn debug_output_hides_the_signing_key() {
        let authority = TokenAuthority::new();
        let debug = format!("{authority:?}");
        assert!(debug.contains("[REDACTED]"), "{debug}");
        let key_bytes = format!("{:?}", authority.key);
        assert!(!debug.contains(&key_bytes[1..20]), "{debug}");
    }
}
