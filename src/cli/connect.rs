//! `halosync connect`: signing in the account behind a delegated
//! connection (`admin`), and the link an agent follows to connect their
//! own calendar (`link`).

use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::{Args, Subcommand};
use tokio::sync::oneshot;

use super::exit;
use crate::clock::{SharedClock, SystemClock};
use crate::config::{Config, ConnectionConfig, ConnectionKind};
use crate::connect::oauth::{SignInClient, redirect_uri};
use crate::connect::pending::STATE_LIFETIME;
use crate::connect::{ConnectState, save_sign_in};
use crate::graph::{GraphClient, GraphClientOptions, GraphUpstreams};
use crate::http::MemoryRequestLog;
use crate::store::Store;
use crate::token_cipher::TokenCipher;

#[derive(Debug, Subcommand)]
pub enum ConnectCommand {
    /// Sign in the account of a delegated connection (option 2): prints the
    /// sign-in URL and serves /auth/callback on webhook.listen until the
    /// browser comes back (stop the service first), or uses a device code.
    Admin(AdminArgs),
    /// Print the link an agent follows to connect their own calendar
    /// (option 3) on the service's /connect page.
    Link(LinkArgs),
}

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The delegated connection to sign in (needed when there are several).
    #[arg(long, value_name = "NAME")]
    pub connection: Option<String>,
    /// Sign in on another device with a code instead of a browser coming
    /// back to this server.
    #[arg(long)]
    pub device_code: bool,
}

#[derive(Debug, Args)]
pub struct LinkArgs {
    /// The agent's e-mail address.
    #[arg(long, value_name = "EMAIL")]
    pub agent: String,
}

pub fn run(command: &ConnectCommand, config: Config) -> ExitCode {
    match command {
        ConnectCommand::Admin(args) => super::block_on(admin(Arc::new(config), args)),
        ConnectCommand::Link(args) => link(&config, &args.agent),
    }
}

fn usage(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("halosync: {message}");
    ExitCode::from(exit::CONFIG)
}

fn failed(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("halosync: {message}");
    ExitCode::from(exit::FAILURE)
}

/// The delegated connection to sign in.
fn delegated<'a>(config: &'a Config, name: Option<&str>) -> Result<&'a ConnectionConfig, String> {
    let delegated: Vec<&ConnectionConfig> = config
        .connections
        .iter()
        .filter(|c| c.kind == ConnectionKind::Delegated)
        .collect();
    match (name, delegated.as_slice()) {
        (Some(name), _) => delegated
            .iter()
            .find(|c| c.name == name)
            .copied()
            .ok_or_else(|| format!("no delegated connection is named `{name}`")),
        (None, [only]) => Ok(only),
        (None, []) => Err("no [[exchange.connection]] has type = \"delegated\"".into()),
        (None, _) => Err(format!(
            "several delegated connections: pick one with --connection ({})",
            delegated
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

async fn admin(config: Arc<Config>, args: &AdminArgs) -> ExitCode {
    let connection = match delegated(&config, args.connection.as_deref()) {
        Ok(connection) => connection,
        Err(message) => return usage(message),
    };
    let Some(key) = config.store.token_key.clone() else {
        return usage("store.token_key is required to store the sign-in");
    };
    let store = match Store::open(&config.store.path) {
        Ok(store) => Arc::new(Mutex::new(store)),
        Err(error) => {
            return failed(format!(
                "{error}\n(the sign-in is stored in the database: if the service is running, stop it, connect, then start it again)"
            ));
        }
    };
    let clock: SharedClock = Arc::new(SystemClock);
    let upstreams = match GraphUpstreams::new(
        Arc::new(MemoryRequestLog::new()),
        clock.clone(),
        &GraphClientOptions::default(),
    ) {
        Ok(upstreams) => upstreams,
        Err(error) => return failed(error),
    };
    let outcome = if args.device_code {
        device_code(connection, &upstreams, &store, &key, &clock).await
    } else {
        browser(&config, connection, upstreams, store, clock).await
    };
    match outcome {
        Ok(account) => {
            println!("connection {}: connected as {account}", connection.name);
            ExitCode::SUCCESS
        }
        Err(message) => failed(message),
    }
}

/// The authorization code flow: this command serves the callback itself,
/// on `webhook.listen` — where the registered redirect URI (the public URL
/// through the proxy, or `http://localhost:<port>`) leads.
async fn browser(
    config: &Arc<Config>,
    connection: &ConnectionConfig,
    upstreams: GraphUpstreams,
    store: Arc<Mutex<Store>>,
    clock: SharedClock,
) -> Result<String, String> {
    let state = ConnectState::new(config.clone(), store, upstreams, None, clock)
        .map_err(|e| e.to_string())?;
    let url = state.start_admin(connection).map_err(|e| e.to_string())?;
    let address = config.webhook.listen;
    let listener = tokio::net::TcpListener::bind(address).await.map_err(|e| {
        format!(
            "cannot listen on {address} (webhook.listen) for the sign-in's callback: {e}; \
             if the service is running, stop it first, or use --device-code"
        )
    })?;
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(crate::webhook::serve_public(
        listener,
        None,
        state.router(),
        async {
            let _ = stopped.await;
        },
    ));
    let redirect = redirect_uri(&config.webhook).map_err(|e| e.to_string())?;
    println!("Sign in as the account with delegate access to the agents' calendars:\n\n  {url}\n");
    println!("(the browser comes back to {redirect}; waiting up to 10 minutes)");
    open_browser(url.as_str());
    let mut outcome = state.admin_outcome();
    let waited = tokio::select! {
        changed = tokio::time::timeout(
            STATE_LIFETIME.to_std().unwrap_or_default(),
            outcome.wait_for(Option::is_some),
        ) => match changed {
            Ok(Ok(done)) => done.clone().unwrap_or_else(|| Err("no outcome".into())),
            Ok(Err(_)) => Err("the sign-in listener stopped".into()),
            Err(_) => Err("nobody signed in within 10 minutes; run the command again".into()),
        },
        _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
    };
    let _ = stop.send(());
    if let Ok(Err(error)) = server.await {
        eprintln!("halosync: {error}");
    }
    waited
}

/// Opens `url` in the desktop's browser, when there is a desktop; a
/// missing `xdg-open` is no error (the URL is printed anyway).
fn open_browser(url: &str) {
    let desktop = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()));
    if !desktop {
        return;
    }
    let spawned = std::process::Command::new("xdg-open")
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Err(error) = spawned {
        tracing::debug!(%error, "xdg-open could not be started; open the URL by hand");
    }
}

/// The device authorization grant: the admin signs in on any device.
async fn device_code(
    connection: &ConnectionConfig,
    upstreams: &GraphUpstreams,
    store: &Mutex<Store>,
    key: &secrecy::SecretString,
    clock: &SharedClock,
) -> Result<String, String> {
    let client = SignInClient::new(connection, upstreams).map_err(|e| e.to_string())?;
    let device = client
        .start_device_code()
        .await
        .map_err(|e| e.to_string())?;
    match &device.message {
        Some(message) => println!("{message}"),
        None => println!(
            "To sign in, open {} and enter the code {}",
            device.verification_uri, device.user_code
        ),
    }
    println!("(waiting up to {} minutes)", device.expires_in / 60);
    let signed_in = tokio::select! {
        signed_in = client.wait_for_device_sign_in(&device) => signed_in.map_err(|e| e.to_string())?,
        _ = tokio::signal::ctrl_c() => return Err("interrupted".into()),
    };
    let account = client
        .account(&signed_in.access_token)
        .await
        .map_err(|e| e.to_string())?;
    let subject = GraphClient::sign_in_subject(connection, None);
    save_sign_in(
        store,
        &TokenCipher::new(key),
        &subject,
        &connection.name,
        &account.user_principal_name,
        &signed_in.refresh_token,
        clock.now(),
    )
    .map_err(|e| e.to_string())?;
    Ok(account.user_principal_name)
}

fn link(config: &Config, agent: &str) -> ExitCode {
    let email = agent.trim().to_ascii_lowercase();
    let serving = config.connections.iter().find(|c| c.agents.serves(&email));
    match serving {
        Some(c) if c.kind == ConnectionKind::PerAgent => {}
        Some(c) => {
            return usage(format!(
                "{email} is served by connection `{}` ({}), where agents do not sign in themselves",
                c.name,
                c.kind.as_str()
            ));
        }
        None => return usage(format!("no [[exchange.connection]] serves {email}")),
    }
    let root = redirect_uri(&config.webhook).and_then(|callback| {
        callback
            .join("/connect")
            .map_err(|e| crate::connect::ConnectError::Config(e.to_string()))
    });
    match root {
        Ok(mut url) => {
            url.query_pairs_mut().append_pair("agent", &email);
            println!("{url}");
            ExitCode::SUCCESS
        }
        Err(error) => usage(error),
    }
}
