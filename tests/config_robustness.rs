//! Property tests: no input makes config loading panic, and every finding
//! about a real key points at a line of the file.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test should fail loudly

use std::path::Path;

use halosync::config::{self, ConfigError, Environment};
use proptest::prelude::*;

const VALID: &str = r#"[halo]
base_url = "https://acme.haloitsm.com"
client_id = "halo-client"
client_secret = "inline-but-private"

[[exchange.connection]]
name = "main"
type = "application"
tenant_id = "contoso.onmicrosoft.com"
client_id = "graph-client"
client_secret = "inline-but-private-too"

[sync]
window_days_past = 30
window_days_ahead = 180
conflict_policy = "newest"
max_delete_fraction = 0.25
include_agents = ["a@contoso.com"]

[sync.schedule]
pull = "0 */5 * * * *"

[webhook]
listen = "127.0.0.1:8780"

[store]
path = "halosync.db"

[log]
level = "info"
"#;

fn load(text: &str) -> Result<config::Loaded, ConfigError> {
    config::load_str(
        Path::new("/nonexistent/halosync.toml"),
        text,
        None,
        &Environment::fixed(Vec::<(String, String)>::new()),
    )
}

/// A TOML value of any type, as text.
fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:?}")),
        any::<bool>().prop_map(|b| b.to_string()),
        "[ -~]{0,40}".prop_map(|s| format!("{:?}", s)),
        prop::collection::vec(any::<i32>(), 0..4).prop_map(|v| format!("{v:?}")),
        Just("{ a = 1 }".to_string()),
        Just("1979-05-27T07:32:00Z".to_string()),
    ]
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        let _ = load(&text);
    }

    #[test]
    fn any_value_in_any_key_is_accepted_or_reported_at_its_line(
        line in 0usize..40,
        value in toml_value(),
    ) {
        let lines: Vec<&str> = VALID.lines().collect();
        let line = line % lines.len();
        prop_assume!(lines[line].contains(" = "));
        let (key, _) = lines[line].split_once(" = ").expect("key = value");
        let mut mutated: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        mutated[line] = format!("{key} = {value}");
        let text = mutated.join("\n");
        match load(&text) {
            Ok(_) => {}
            Err(ConfigError::Invalid { diagnostics, .. }) => {
                let errors: Vec<_> = diagnostics
                    .iter()
                    .filter(|d| d.severity == config::Severity::Error)
                    .collect();
                prop_assert!(!errors.is_empty());
                // The finding is at the changed line (or, for a cross-field
                // rule, names the changed key).
                let here = errors.iter().any(|d| {
                    d.location.map(|l| l.line) == Some(line + 1)
                        || config::display_path(&d.key).ends_with(key)
                });
                prop_assert!(here, "{key} = {value}: {:?}", errors);
            }
            Err(other) => prop_assert!(false, "unexpected {other}"),
        }
    }

    /// Every problem at once: two wrongly typed values anywhere (even in the
    /// same section) are both reported, each at its own line.
    #[test]
    fn two_wrong_types_are_both_reported_at_their_lines(first in 0usize..40, second in 0usize..40) {
        let lines: Vec<&str> = VALID.lines().collect();
        let keyed: Vec<usize> = (0..lines.len()).filter(|i| lines[*i].contains(" = ")).collect();
        let (a, b) = (keyed[first % keyed.len()], keyed[second % keyed.len()]);
        prop_assume!(a != b);
        let mut mutated: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        for i in [a, b] {
            let (key, _) = lines[i].split_once(" = ").expect("key = value");
            mutated[i] = format!("{key} = {{ wrong = 1 }}");
        }
        let Err(ConfigError::Invalid { diagnostics, .. }) = load(&mutated.join("\n")) else {
            return Err(TestCaseError::fail("expected findings"));
        };
        for i in [a, b] {
            prop_assert!(
                diagnostics.iter().any(|d| d.severity == config::Severity::Error
                    && d.location.map(|l| l.line) == Some(i + 1)),
                "no error at line {} ({}): {:?}", i + 1, lines[i], diagnostics
            );
        }
    }
}

#[test]
fn the_valid_base_document_is_valid() {
    let loaded = load(VALID).expect("valid");
    assert_eq!(
        loaded.config.sync.include_agents,
        vec!["a@contoso.com".to_string()]
    );
}
