//! Certificate credentials: a client assertion (an RS256-signed JWT) sent
//! instead of a client secret, as the identity platform documents for
//! confidential clients.
//!
//! The configured PEM holds the private key and its certificate; the
//! certificate's SHA-256 thumbprint (`x5t#S256`) tells Entra ID which of the
//! app's registered certificates to check the signature with.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sha2::{Digest, Sha256};

/// The OAuth `client_assertion_type` for a JWT assertion.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long an assertion is valid: long enough for one token request.
const LIFETIME_SECONDS: i64 = 600;

/// A loaded client certificate. Deliberately not `Debug`: it holds a private key.
pub struct ClientCertificate {
    key: RsaKeyPair,
    thumbprint: String,
}

impl ClientCertificate {
    /// Reads the private key (PKCS#8 or PKCS#1 RSA) and the first
    /// certificate from one PEM text.
    pub fn from_pem(pem: &SecretString) -> Result<Self, String> {
        let bytes = pem.expose_secret().as_bytes();
        let certificate = CertificateDer::from_pem_slice(bytes).map_err(|_| {
            "the PEM has no certificate: put the certificate uploaded to the app registration \
             after the private key in the same file"
                .to_string()
        })?;
        let key = match PrivateKeyDer::from_pem_slice(bytes) {
            Ok(PrivateKeyDer::Pkcs8(der)) => RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()),
            Ok(PrivateKeyDer::Pkcs1(der)) => RsaKeyPair::from_der(der.secret_pkcs1_der()),
            Ok(_) => return Err("the private key must be an RSA key".into()),
            Err(_) => return Err("the PEM has no private key".into()),
        }
        .map_err(|e| format!("the private key was refused: {e}"))?;
        Ok(Self {
            key,
            thumbprint: URL_SAFE_NO_PAD.encode(Sha256::digest(certificate.as_ref())),
        })
    }

    /// The certificate's SHA-256 thumbprint, base64url (`x5t#S256`).
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// A signed assertion for one token request to `token_url`.
    pub fn assertion(
        &self,
        client_id: &str,
        token_url: &str,
        now: DateTime<Utc>,
    ) -> Result<SecretString, String> {
        let header = json!({"alg": "RS256", "typ": "JWT", "x5t#S256": self.thumbprint});
        let claims = json!({
            "aud": token_url,
            "iss": client_id,
            "sub": client_id,
            "jti": uuid::Uuid::new_v4().to_string(),
            "iat": now.timestamp(),
            "nbf": now.timestamp(),
            "exp": now.timestamp() + LIFETIME_SECONDS,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| "signing the client assertion failed".to_string())?;
        Ok(SecretString::from(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(name),
        )
        .expect("fixture")
    }

    fn pem() -> SecretString {
        SecretString::from(fixture("client-cert-test-key.pem") + &fixture("client-cert-test.pem"))
    }

    #[test]
    fn an_assertion_carries_the_thumbprint_and_the_documented_claims() {
        let certificate = ClientCertificate::from_pem(&pem()).expect("loads");
        let now = Utc
            .with_ymd_and_hms(2026, 11, 29, 6, 0, 0)
            .single()
            .expect("date");
        let token_url = "https://login.microsoftonline.com/contoso/oauth2/v2.0/token";
        let jwt = certificate
            .assertion("app-1", token_url, now)
            .expect("signs");
        let parts: Vec<&str> = jwt.expose_secret().split('.').collect();
        assert_eq!(parts.len(), 3);
        let decode = |part: &str| -> serde_json::Value {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64")).expect("json")
        };
        let header = decode(parts[0]);
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["x5t#S256"], certificate.thumbprint());
        let claims = decode(parts[1]);
        assert_eq!(claims["aud"], token_url);
        assert_eq!(
            (claims["iss"].clone(), claims["sub"].clone()),
            ("app-1".into(), "app-1".into())
        );
        assert_eq!(claims["exp"].as_i64(), Some(now.timestamp() + 600));
        assert_eq!(
            URL_SAFE_NO_PAD.decode(parts[2]).expect("sig").len(),
            256,
            "RSA-2048"
        );
    }

    #[test]
    fn a_pem_without_a_certificate_or_key_is_refused_with_the_fix() {
        let key_only = SecretString::from(fixture("client-cert-test-key.pem"));
        let error = ClientCertificate::from_pem(&key_only)
            .err()
            .expect("refused");
        assert!(error.contains("no certificate"), "{error}");
        let cert_only = SecretString::from(fixture("client-cert-test.pem"));
        let error = ClientCertificate::from_pem(&cert_only)
            .err()
            .expect("refused");
        assert!(error.contains("no private key"), "{error}");
    }
}
