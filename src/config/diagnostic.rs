//! Findings about a config file: what is wrong, at which key, on which line.

use std::fmt;

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

pub type KeyPath = Vec<Seg>;

/// Builds a key path from dotted names, e.g. `path(&["sync", "schedule", "pull"])`.
pub fn path(keys: &[&str]) -> KeyPath {
    keys.iter().map(|k| Seg::Key((*k).to_string())).collect()
}

/// Renders a key path the way a person would write it: `exchange.connection[1].graph_url`.
pub fn display_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Seg::Index(index) => out.push_str(&format!("[{index}]")),
        }
    }
    out
}

/// A 1-based line and column in the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem (or, for warnings, one risk) found in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub key: KeyPath,
    pub location: Option<Location>,
    pub message: String,
}

impl Diagnostic {
    pub fn error(key: KeyPath, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            key,
            location: None,
            message: message.into(),
        }
    }

    pub fn warning(key: KeyPath, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(key, message)
        }
    }

    pub fn at(mut self, location: Option<Location>) -> Self {
        self.location = location;
        self
    }

    /// Formats as `file:line:column: error: key: message`, the shape editors
    /// and CI logs recognise.
    pub fn render(&self, file: &str) -> String {
        let place = match self.location {
            Some(Location { line, column }) => format!("{file}:{line}:{column}"),
            None => file.to_string(),
        };
        let severity = self.severity;
        let key = display_path(&self.key);
        if key.is_empty() {
            format!("{place}: {severity}: {}", self.message)
        } else {
            format!("{place}: {severity}: {key}: {}", self.message)
        }
    }
}

/// Every finding of one load, in file order.
#[derive(Debug, Default, Clone)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.items.push(diagnostic);
    }

    pub fn error_count(&self) -> usize {
        self.items
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items
            .iter()
            .filter(|d| d.severity == Severity::Warning)
    }

    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.items
    }

    /// Sorts by position so the report reads top to bottom like the file.
    pub fn sort(&mut self) {
        self.items.sort_by_key(|d| {
            d.location
                .map_or((usize::MAX, usize::MAX), |l| (l.line, l.column))
        });
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_with_indices_in_brackets() {
        let mut key = path(&["exchange", "connection"]);
        key.push(Seg::Index(1));
        key.push(Seg::Key("graph_url".into()));
        assert_eq!(display_path(&key), "exchange.connection[1].graph_url");
    }

    #[test]
    fn a_finding_renders_as_file_line_column() {
        let finding = Diagnostic::error(path(&["sync", "window_days_ahead"]), "must be at least 1")
            .at(Some(Location {
                line: 7,
                column: 21,
            }));
        assert_eq!(
            finding.render("halosync.toml"),
            "halosync.toml:7:21: error: sync.window_days_ahead: must be at least 1"
        );
    }
}
