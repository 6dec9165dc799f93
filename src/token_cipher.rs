//! Encryption of OAuth refresh tokens at rest.
//!
//! A refresh token is as good as a password for a technician's calendar for
//! 90 days, so the database only ever holds it sealed with
//! XChaCha20-Poly1305 under a key that lives outside the database (the
//! `[store].token_key` secret, a systemd credential in production). The
//! token's subject is bound in as associated data, so a sealed token copied
//! to another row does not open.

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// Length of the random nonce stored beside each ciphertext.
pub const NONCE_LEN: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum CipherError {
    #[error(
        "a stored token could not be decrypted: the token key changed or the row was tampered with; \
         restore the previous [store].token_key or have the account sign in again"
    )]
    Open,
    #[error("a stored token has a {0}-byte nonce; expected {NONCE_LEN}")]
    BadNonce(usize),
    #[error("a decrypted token is not UTF-8 text")]
    NotText,
    #[error("encrypting a token failed")]
    Seal,
}

/// A token sealed for storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// Seals and opens tokens with the configured key. Deliberately not `Debug`.
pub struct TokenCipher {
    aead: XChaCha20Poly1305,
}

impl TokenCipher {
    /// Derives the 256-bit key from the configured key material (already
    /// checked to be at least 32 characters of random data).
    pub fn new(key: &SecretString) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"halosync token key v1\0");
        hasher.update(key.expose_secret().as_bytes());
        let derived = hasher.finalize();
        Self {
            aead: XChaCha20Poly1305::new(&derived),
        }
    }

    pub fn seal(&self, token: &SecretString, subject: &str) -> Result<Sealed, CipherError> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = self
            .aead
            .encrypt(
                &nonce,
                Payload {
                    msg: token.expose_secret().as_bytes(),
                    aad: subject.as_bytes(),
                },
            )
            .map_err(|_| CipherError::Seal)?;
        Ok(Sealed {
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    pub fn open(&self, sealed: &Sealed, subject: &str) -> Result<SecretString, CipherError> {
        if sealed.nonce.len() != NONCE_LEN {
            return Err(CipherError::BadNonce(sealed.nonce.len()));
        }
        let plaintext = self
            .aead
            .decrypt(
                XNonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: subject.as_bytes(),
                },
            )
            .map_err(|_| CipherError::Open)?;
        String::from_utf8(plaintext)
            .map(SecretString::from)
            .map_err(|_| CipherError::NotText)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher(key: &str) -> TokenCipher {
        TokenCipher::new(&SecretString::from(key.to_string()))
    }

    #[test]
    fn a_sealed_token_opens_only_with_its_key_and_subject() {
        let key = "0123456789abcdef0123456789abcdef";
        let token = SecretString::from("refresh-token-value".to_string());
        let sealed = cipher(key).seal(&token, "agent:7").expect("seal");
        assert!(
            !sealed.ciphertext.windows(7).any(|w| w == b"refresh"),
            "the ciphertext must not contain the token"
        );
        let opened = cipher(key).open(&sealed, "agent:7").expect("open");
        assert_eq!(opened.expose_secret(), "refresh-token-value");
        assert!(matches!(
            cipher(key).open(&sealed, "agent:8"),
            Err(CipherError::Open)
        ));
        assert!(matches!(
            cipher("another key of thirty-two bytes!!").open(&sealed, "agent:7"),
            Err(CipherError::Open)
        ));
        let mut tampered = sealed.clone();
        tampered.ciphertext[0] ^= 1;
        assert!(matches!(
            cipher(key).open(&tampered, "agent:7"),
            Err(CipherError::Open)
        ));
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce() {
        let c = cipher("0123456789abcdef0123456789abcdef");
        let token = SecretString::from("t".to_string());
        let a = c.seal(&token, "s").expect("seal");
        let b = c.seal(&token, "s").expect("seal");
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
        assert!(matches!(
            c.open(
                &Sealed {
                    nonce: vec![0; 12],
                    ciphertext: a.ciphertext
                },
                "s"
            ),
            Err(CipherError::BadNonce(12))
        ));
    }
}
