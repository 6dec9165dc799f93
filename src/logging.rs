//! Process-wide logging: `RUST_LOG`-style filtering, human text or JSON lines.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::LogFormat;

#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error(
        "`{filter}` is not a log filter ({reason}); use e.g. \"info\" or \"halosync=debug,info\""
    )]
    BadFilter { filter: String, reason: String },
    #[error("logging was already initialised")]
    AlreadyInitialised,
}

/// Installs the global subscriber, writing to stderr so command output on
/// stdout stays machine-readable.
pub fn init(filter: &str, format: LogFormat) -> Result<(), LoggingError> {
    let env_filter = EnvFilter::builder()
        .parse(filter)
        .map_err(|e| LoggingError::BadFilter {
            filter: filter.to_string(),
            reason: e.to_string(),
        })?;
    // Colour only for a person at a terminal, never into journald or a file.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .with_span_events(FmtSpan::NONE);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|_| LoggingError::AlreadyInitialised)
}
