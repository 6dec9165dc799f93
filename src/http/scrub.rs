//! The path and query of a request as the request log and error messages may
//! show it: values that carry secrets or tokens are removed, paging and delta
//! tokens are shortened to a recognisable prefix.

use url::Url;

/// Query keys whose values are credentials (compared case-insensitively).
const SECRET_KEYS: &[&str] = &[
    "client_secret",
    "client_assertion",
    "code",
    "refresh_token",
    "access_token",
    "id_token",
    "token",
    "validationtoken",
    "password",
    "clientstate",
];

/// Opaque continuation tokens: not secret, but long; a prefix is enough to
/// tell two apart.
const CONTINUATION_KEYS: &[&str] = &["$skiptoken", "$deltatoken", "%24skiptoken", "%24deltatoken"];

/// How much of a continuation token is kept.
const CONTINUATION_PREFIX: usize = 8;

pub const REDACTED: &str = "[redacted]";

/// `url`'s path and query, scrubbed.
pub fn scrub_path(url: &Url) -> String {
    let mut scrubbed = url.path().to_owned();
    let Some(query) = url.query() else {
        return scrubbed;
    };
    scrubbed.push('?');
    for (index, pair) in query.split('&').enumerate() {
        if index > 0 {
            scrubbed.push('&');
        }
        let (raw_key, value) = match pair.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (pair, None),
        };
        scrubbed.push_str(raw_key);
        let Some(value) = value else { continue };
        scrubbed.push('=');
        let key = raw_key.to_ascii_lowercase();
        if SECRET_KEYS.contains(&key.as_str()) {
            scrubbed.push_str(REDACTED);
        } else if CONTINUATION_KEYS.contains(&key.as_str()) && value.len() > CONTINUATION_PREFIX {
            scrubbed.push_str(&value[..value.floor_char_boundary(CONTINUATION_PREFIX)]);
            scrubbed.push('…');
        } else {
            scrubbed.push_str(value);
        }
    }
    scrubbed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrub(url: &str) -> String {
        scrub_path(&Url::parse(url).expect("test url"))
    }

    #[test]
    fn secret_values_are_removed_and_everything_else_kept() {
        assert_eq!(
            scrub(
                "https://h/auth/token?tenant=acme&client_secret=s3cr3t&Code=abc&refresh_token=r&access_token=a&token=t&validationToken=v"
            ),
            "/auth/token?tenant=acme&client_secret=[redacted]&Code=[redacted]&refresh_token=[redacted]&access_token=[redacted]&token=[redacted]&validationToken=[redacted]"
        );
        assert_eq!(
            scrub(
                "https://h/api/Appointment?start_date=2026-02-01T00:00:00&agents=2,3&pageinate=true"
            ),
            "/api/Appointment?start_date=2026-02-01T00:00:00&agents=2,3&pageinate=true"
        );
        assert_eq!(scrub("https://h/api/Agent/me"), "/api/Agent/me");
        assert_eq!(scrub("https://h/x?flag&code="), "/x?flag&code=[redacted]");
    }

    #[test]
    fn paging_and_delta_tokens_are_shortened() {
        let long = "a".repeat(300);
        assert_eq!(
            scrub(&format!(
                "https://g/v1.0/users/x/calendarView/delta?$deltatoken={long}"
            )),
            "/v1.0/users/x/calendarView/delta?$deltatoken=aaaaaaaa…"
        );
        assert_eq!(
            scrub(&format!(
                "https://g/v1.0/users/x/events?%24skiptoken={long}&$top=10"
            )),
            "/v1.0/users/x/events?%24skiptoken=aaaaaaaa…&$top=10"
        );
        assert_eq!(scrub("https://g/e?$skiptoken=short"), "/e?$skiptoken=short");
    }

    proptest::proptest! {
        #[test]
        fn a_secret_value_never_survives(
            secret in "[A-Za-z0-9]{12,40}",
            key_index in 0usize..SECRET_KEYS.len(),
            before in "[a-z]{1,8}",
        ) {
            let key = SECRET_KEYS[key_index];
            let url = format!("https://h/p?{before}=1&{key}={secret}&x=2");
            let scrubbed = scrub(&url);
            proptest::prop_assert!(!scrubbed.contains(&secret), "{}", scrubbed);
            proptest::prop_assert!(scrubbed.ends_with("&x=2"), "{}", scrubbed);
        }
    }
}
