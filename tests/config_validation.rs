//! Config validation through the library API: every finding at once, with
//! its line; secrets from every source; cross-field rules.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test should fail loudly

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use halosync::config::{
    self, AgentScope, ClientCredential, Cloud, ConfigError, ConnectionKind, Environment, Severity,
};
use secrecy::ExposeSecret;

const HALO_SECRET: &str = "halo-secret-8c1f0e";
const GRAPH_SECRET: &str = "graph-secret-71d2aa";

struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new() -> Self {
        let dir = Self {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        dir.secret("halo.secret", HALO_SECRET, 0o600);
        dir.secret("graph.secret", GRAPH_SECRET, 0o600);
        dir
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn secret(&self, name: &str, value: &str, mode: u32) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, format!("{value}\n")).expect("write secret");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        path
    }

    fn load(&self, text: &str) -> Result<config::Loaded, ConfigError> {
        self.load_with(
            text,
            None,
            &Environment::fixed(Vec::<(String, String)>::new()),
        )
    }

    fn load_with(
        &self,
        text: &str,
        exposed_mode: Option<u32>,
        env: &Environment,
    ) -> Result<config::Loaded, ConfigError> {
        config::load_str(&self.path("halosync.toml"), text, exposed_mode, env)
    }
}

fn minimal() -> String {
    r#"[halo]
base_url = "https://acme.haloitsm.com"
client_id = "halo-client"
client_secret_file = "halo.secret"

[[exchange.connection]]
name = "main"
type = "application"
tenant_id = "contoso.onmicrosoft.com"
client_id = "graph-client"
client_secret_file = "graph.secret"

[store]
path = "halosync.db"
"#
    .to_string()
}

fn errors(result: Result<config::Loaded, ConfigError>) -> Vec<config::Diagnostic> {
    match result {
        Err(ConfigError::Invalid { diagnostics, .. }) => diagnostics
            .into_iter()
            .filter(|d| d.severity == Severity::Error)
            .collect(),
        Err(other) => panic!("expected validation errors, got {other}"),
        Ok(loaded) => panic!(
            "expected validation errors, got a valid config: {}",
            loaded.config.summary()
        ),
    }
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("`{needle}` not in the text"))
}

fn rendered(diagnostics: &[config::Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(|d| d.render("halosync.toml"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_minimal_config_gets_safe_defaults() {
    let dir = Dir::new();
    let loaded = dir.load(&minimal()).expect("valid");
    let config = loaded.config;
    assert_eq!(config.halo.base_url.as_str(), "https://acme.haloitsm.com/");
    assert_eq!(config.halo.scope, "all");
    assert_eq!(config.halo.client_secret.expose_secret(), HALO_SECRET);
    assert!(config.halo.auth_url.is_none());
    let connection = &config.connections[0];
    assert_eq!(connection.kind, ConnectionKind::Application);
    assert_eq!(connection.cloud, Cloud::Global);
    assert_eq!(
        connection.graph_url.as_str(),
        "https://graph.microsoft.com/"
    );
    assert_eq!(
        connection.login_url.as_str(),
        "https://login.microsoftonline.com/"
    );
    assert_eq!(connection.agents, AgentScope::All);
    assert!(connection.immutable_ids);
    match &connection.credential {
        ClientCredential::Secret(secret) => assert_eq!(secret.expose_secret(), GRAPH_SECRET),
        ClientCredential::Certificate(_) => panic!("expected a client secret"),
    }
    assert_eq!(config.sync.window.days_past, 30);
    assert_eq!(config.sync.window.days_ahead, 180);
    assert_eq!(config.sync.schedule.pull.expression(), "0 */5 * * * *");
    assert!(!config.webhook.enabled);
    assert!(config.admin.listen.ip().is_loopback());
    assert_eq!(config.store.path, dir.path("halosync.db"));
    assert!(config.store.token_key.is_none());
}

#[test]
fn unknown_key_bad_url_and_bad_cron_are_all_reported_with_their_lines() {
    let dir = Dir::new();
    let text = minimal().replace(
        "base_url = \"https://acme.haloitsm.com\"",
        "base_url = \"htps//acme\"\ncolour = \"blue\"",
    ) + "\n[sync.schedule]\npull = \"*/5 * * *\"\n";
    let found = errors(dir.load(&text));
    let report = rendered(&found);
    assert_eq!(found.len(), 3, "{report}");
    let expect = [
        ("halo.base_url", line_of(&text, "htps//acme")),
        ("halo.colour", line_of(&text, "colour")),
        ("sync.schedule.pull", line_of(&text, "*/5 * * *")),
    ];
    for (key, line) in expect {
        let finding = found
            .iter()
            .find(|d| config::display_path(&d.key) == key)
            .unwrap_or_else(|| panic!("no finding for {key} in\n{report}"));
        assert_eq!(finding.location.map(|l| l.line), Some(line), "{report}");
    }
}

#[test]
fn type_errors_name_the_key_and_line_and_hide_nothing_else() {
    let dir = Dir::new();
    let text = minimal().replace(
        "client_secret_file = \"halo.secret\"",
        "client_secret = 987654321",
    ) + "\n[sync]\nwindow_days_past = \"ten\"\nsync_location = \"yes\"\n\n[log]\nformat = \"xml\"\n";
    let found = errors(dir.load(&text));
    let report = rendered(&found);
    assert_eq!(found.len(), 4, "{report}");
    assert!(
        report.contains(&format!(
            "halosync.toml:{}:20: error: sync.window_days_past: invalid type: string \"ten\", expected a whole number",
            line_of(&text, "\"ten\"")
        )),
        "{report}"
    );
    for expected in [
        "sync.sync_location: invalid type: string \"yes\", expected true or false",
        "log.format: unknown value `xml`; expected one of `text`, `json`",
        "halo.client_secret: expected a string, found integer (the value is not shown",
    ] {
        assert!(
            report.contains(expected),
            "missing `{expected}` in\n{report}"
        );
    }
    assert!(!report.contains("987654321"), "{report}");
}

#[test]
fn a_syntax_error_is_reported_with_its_position() {
    let dir = Dir::new();
    let found = errors(dir.load("[halo\nbase_url = 1\n"));
    assert_eq!(found.len(), 1);
    assert!(
        found[0].message.starts_with("TOML syntax error"),
        "{}",
        found[0].message
    );
    assert_eq!(found[0].location.map(|l| l.line), Some(1));
}

#[test]
fn missing_sections_and_keys_say_what_to_write() {
    let dir = Dir::new();
    let report = rendered(&errors(dir.load("")));
    assert!(report.contains("missing [halo] section"), "{report}");
    assert!(
        report.contains("at least one [[exchange.connection]]"),
        "{report}"
    );

    let text = minimal().replace("client_id = \"halo-client\"\n", "");
    let report = rendered(&errors(dir.load(&text)));
    assert!(report.contains("halo.client_id: missing"), "{report}");
}

#[test]
fn secret_files_readable_by_others_are_refused_with_the_fix() {
    let dir = Dir::new();
    let exposed = dir.secret("halo.secret", HALO_SECRET, 0o644);
    let report = rendered(&errors(dir.load(&minimal())));
    assert!(
        report.contains(&format!(
            "halo.client_secret_file: secret file {} is readable by group or others (mode 0644); run `chmod 600 {}`",
            exposed.display(),
            exposed.display()
        )),
        "{report}"
    );
}

#[test]
fn secrets_come_from_env_credential_or_inline_in_a_private_file() {
    let dir = Dir::new();
    let credentials = dir.path("credentials");
    std::fs::create_dir(&credentials).expect("mkdir");
    std::fs::write(credentials.join("graph"), GRAPH_SECRET).expect("write");
    let text = minimal()
        .replace(
            "client_secret_file = \"halo.secret\"",
            "client_secret_env = \"HALO_SECRET\"",
        )
        .replace(
            "client_secret_file = \"graph.secret\"",
            "client_secret_credential = \"graph\"",
        );
    let env = Environment::fixed([
        ("HALO_SECRET", HALO_SECRET.to_string()),
        ("CREDENTIALS_DIRECTORY", credentials.display().to_string()),
    ]);
    let loaded = dir.load_with(&text, None, &env).expect("valid");
    assert_eq!(
        loaded.config.halo.client_secret.expose_secret(),
        HALO_SECRET
    );

    let inline = minimal().replace(
        "client_secret_file = \"halo.secret\"",
        &format!("client_secret = \"{HALO_SECRET}\""),
    );
    let loaded = dir.load(&inline).expect("inline in a private file is fine");
    assert_eq!(
        loaded.config.halo.client_secret.expose_secret(),
        HALO_SECRET
    );
    let report = rendered(&errors(dir.load_with(
        &inline,
        Some(0o644),
        &Environment::fixed(Vec::<(String, String)>::new()),
    )));
    assert!(report.contains("holds a secret inline, but"), "{report}");
    assert!(
        !report.contains(HALO_SECRET),
        "the error must not echo the secret: {report}"
    );
}

#[test]
fn missing_or_doubled_secret_sources_and_unset_variables_are_errors() {
    let dir = Dir::new();
    let none = minimal().replace("client_secret_file = \"halo.secret\"\n", "");
    let report = rendered(&errors(dir.load(&none)));
    assert!(
        report.contains("halo.client_secret: missing: set one of `halo.client_secret_file`, `halo.client_secret_credential`, `halo.client_secret_env`, `halo.client_secret`"),
        "{report}"
    );
    let both = minimal().replace(
        "client_secret_file = \"halo.secret\"",
        "client_secret_file = \"halo.secret\"\nclient_secret_env = \"X\"",
    );
    assert!(rendered(&errors(dir.load(&both))).contains("set only one of"));
    let unset = minimal().replace(
        "client_secret_file = \"halo.secret\"",
        "client_secret_env = \"NOPE\"",
    );
    assert!(rendered(&errors(dir.load(&unset))).contains("environment variable `NOPE` is not set"));
    let no_systemd = minimal().replace(
        "client_secret_file = \"halo.secret\"",
        "client_secret_credential = \"halo\"",
    );
    assert!(rendered(&errors(dir.load(&no_systemd))).contains("$CREDENTIALS_DIRECTORY is not set"));
}

fn two_connections(first_agents: &str, second_agents: &str) -> String {
    minimal().replace(
        "client_secret_file = \"graph.secret\"\n",
        &format!(
            "client_secret_file = \"graph.secret\"\nagents = {first_agents}\n\n[[exchange.connection]]\nname = \"second\"\ntype = \"per_agent\"\ntenant_id = \"t\"\nclient_id = \"c\"\nclient_secret_file = \"graph.secret\"\nagents = {second_agents}\n"
        ),
    ) + "token_key_file = \"token.key\"\n"
}

#[test]
fn two_connections_may_not_claim_the_same_agent() {
    let dir = Dir::new();
    dir.secret("token.key", &"k".repeat(44), 0o600);
    let ok = two_connections("\"@contoso.com\"", "[\"amir@fabrikam.com\"]");
    let loaded = dir.load(&ok).expect("disjoint connections are fine");
    assert_eq!(loaded.config.connections.len(), 2);
    assert!(
        loaded.config.connections[0]
            .agents
            .serves("Leah@Contoso.com")
    );
    assert!(
        !loaded.config.connections[0]
            .agents
            .serves("amir@fabrikam.com")
    );

    for (a, b, why) in [
        ("\"all\"", "[\"amir@fabrikam.com\"]", "serves all agents"),
        (
            "\"@contoso.com\"",
            "[\"Leah@contoso.com\"]",
            "both serve leah@contoso.com",
        ),
        ("[\"x@y.com\"]", "[\"X@y.com\"]", "both serve x@y.com"),
        ("\"@y.com\"", "\"@Y.com\"", "both serve @y.com"),
    ] {
        let report = rendered(&errors(dir.load(&two_connections(a, b))));
        assert!(
            report.contains("claim the same agents"),
            "{a} vs {b}: {report}"
        );
        assert!(report.contains(why), "{a} vs {b}: {report}");
    }
}

#[test]
fn delegated_connections_need_a_token_key_of_real_length() {
    let dir = Dir::new();
    let text = minimal().replace("type = \"application\"", "type = \"delegated\"");
    assert!(rendered(&errors(dir.load(&text))).contains("store.token_key: missing"));
    dir.secret("token.key", "short", 0o600);
    let short = text.clone() + "token_key_file = \"token.key\"\n";
    assert!(rendered(&errors(dir.load(&short))).contains("at least 32 characters"));
}

#[test]
fn cloud_choice_sets_authority_and_graph_root_together_and_overrides_win() {
    let dir = Dir::new();
    let text = minimal().replace(
        "type = \"application\"",
        "type = \"application\"\ncloud = \"usgov-dod\"",
    );
    let loaded = dir.load(&text).expect("valid");
    let connection = &loaded.config.connections[0];
    assert_eq!(
        connection.login_url.as_str(),
        "https://login.microsoftonline.us/"
    );
    assert_eq!(
        connection.graph_url.as_str(),
        "https://dod-graph.microsoft.us/"
    );

    let overridden = minimal().replace(
        "type = \"application\"",
        "type = \"application\"\ncloud = \"china\"\ngraph_url = \"http://127.0.0.1:9000/graph\"\nlogin_url = \"http://127.0.0.1:9000/login\"",
    );
    let loaded = dir.load(&overridden).expect("valid");
    let connection = &loaded.config.connections[0];
    assert_eq!(connection.cloud, Cloud::China);
    assert_eq!(
        connection.graph_url.as_str(),
        "http://127.0.0.1:9000/graph/"
    );
    assert_eq!(
        connection.login_url.as_str(),
        "http://127.0.0.1:9000/login/"
    );
    assert!(
        loaded.warnings.is_empty(),
        "loopback http is not worth a warning: {:?}",
        loaded.warnings
    );
}

#[test]
fn webhooks_need_a_public_https_url() {
    let dir = Dir::new();
    let missing = minimal() + "\n[webhook]\nenabled = true\n";
    assert!(rendered(&errors(dir.load(&missing))).contains("webhook.public_url: missing"));
    let plain =
        minimal() + "\n[webhook]\nenabled = true\npublic_url = \"http://halosync.contoso.com\"\n";
    assert!(rendered(&errors(dir.load(&plain))).contains("https:// URLs only"));
    let good = minimal()
        + "\n[webhook]\nenabled = true\npublic_url = \"https://halosync.contoso.com/hooks\"\n";
    let loaded = dir.load(&good).expect("valid");
    assert_eq!(
        loaded
            .config
            .webhook
            .notification_url()
            .map(|u| u.to_string()),
        Some("https://halosync.contoso.com/graph/notify".to_string())
    );
}

#[test]
fn window_policies_and_lists_are_checked() {
    let dir = Dir::new();
    let text = minimal()
        + "\n[sync]\nwindow_days_ahead = 0\nconflict_policy = \"loudest\"\nmax_delete_fraction = 1.5\nteams_appointment_type_ids = [3, -1]\ninclude_agents = [\"a@b.com\", \"not-an-email\"]\nexclude_agents = [\"a@b.com\"]\n";
    let report = rendered(&errors(dir.load(&text)));
    for expected in [
        "sync.window_days_ahead: 0 is out of range; expected 1 to 1825 days",
        "sync.conflict_policy: unknown value `loudest`; expected one of `newest`, `halo`, `exchange`",
        "sync.max_delete_fraction: 1.5 is out of range",
        "sync.teams_appointment_type_ids[1]: -1 is not a Halo appointment type id",
        "sync.include_agents[1]: `not-an-email` is not an e-mail address",
        "sync.exclude_agents: `a@b.com` is both included and excluded",
    ] {
        assert!(
            report.contains(expected),
            "missing `{expected}` in\n{report}"
        );
    }
}

#[test]
fn the_example_config_documents_every_key_and_is_valid_with_its_secrets() {
    let example =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml"))
            .expect("config.example.toml");
    let dir = Dir::new();
    let env = Environment::fixed([(
        "CREDENTIALS_DIRECTORY",
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/credentials")
            .display()
            .to_string(),
    )]);
    let loaded = dir
        .load_with(&example, None, &env)
        .expect("the example is valid");
    assert_eq!(loaded.config.connections[0].name, "main");
    // Every optional key the example shows commented out must be valid too.
    let uncommented: String = example
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest)
                if rest.split_once(" = ").is_some_and(|(key, value)| {
                    key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                        && !key.starts_with("client_certificate")
                        && value.starts_with('"')
                }) =>
            {
                rest
            }
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    dir.secret("token.key", &"k".repeat(44), 0o600);
    let uncommented = uncommented.replace(
        "token_key_credential = \"token_key\"",
        "token_key_file = \"token.key\"",
    );
    let loaded = dir
        .load_with(&uncommented, None, &env)
        .expect("the example with every key set is valid");
    assert!(loaded.config.webhook.public_url.is_some());
    assert_eq!(
        loaded.config.connections[0].owner_override.as_deref(),
        Some("scheduler@contoso.com")
    );
}

#[test]
fn debug_output_of_a_config_never_shows_a_secret() {
    let dir = Dir::new();
    let loaded = dir.load(&minimal()).expect("valid");
    let debug = format!("{loaded:?}");
    assert!(
        debug.contains("acme.haloitsm.com"),
        "debug output is meaningful"
    );
    assert!(
        !debug.contains(HALO_SECRET) && !debug.contains(GRAPH_SECRET),
        "{debug}"
    );
}
