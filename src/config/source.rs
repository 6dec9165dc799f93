//! Reading the TOML text: syntax, per-section deserialization, unknown keys,
//! and the line/column of any key so every finding can point at its line.

use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::diagnostic::{Diagnostic, Diagnostics, KeyPath, Location, Seg};
use super::raw::{RawConfig, RawConnection, RawExchange};

/// The parsed document, kept for locating keys during validation.
pub struct Source<'a> {
    text: &'a str,
    root: Spanned<DeTable<'a>>,
}

impl<'a> Source<'a> {
    /// Parses the TOML syntax; a syntax error is reported alone because
    /// nothing after it can be trusted.
    pub fn parse(text: &'a str) -> Result<Self, Diagnostic> {
        match DeTable::parse(text) {
            Ok(root) => Ok(Self { text, root }),
            Err(error) => Err(Diagnostic::error(
                KeyPath::new(),
                format!("TOML syntax error: {}", error.message().trim()),
            )
            .at(error.span().map(|span| location_in(text, span.start)))),
        }
    }

    pub fn location_of_offset(&self, offset: usize) -> Location {
        location_in(self.text, offset)
    }

    /// Where the value of `path` starts (or, for a missing key, where its
    /// nearest present parent starts).
    pub fn locate(&self, path: &[Seg]) -> Option<Location> {
        self.lookup(path, false)
    }

    /// Where the key itself is written (for unknown keys).
    pub fn locate_key(&self, path: &[Seg]) -> Option<Location> {
        self.lookup(path, true)
    }

    fn lookup(&self, path: &[Seg], want_key: bool) -> Option<Location> {
        let mut best: Option<usize> = None;
        let mut table: Option<&DeTable<'a>> = Some(self.root.get_ref());
        let mut array: Option<&[Spanned<DeValue<'a>>]> = None;
        for (i, seg) in path.iter().enumerate() {
            let last = i + 1 == path.len();
            let found: Option<(Range<usize>, &Spanned<DeValue<'a>>)> = match seg {
                Seg::Key(name) => table.and_then(|t| {
                    t.iter()
                        .find(|(k, _)| k.get_ref().as_ref() == name.as_str())
                        .map(|(k, v)| (k.span(), v))
                }),
                Seg::Index(index) => array.and_then(|a| a.get(*index)).map(|v| (v.span(), v)),
            };
            let Some((key_span, value)) = found else {
                break;
            };
            best = Some(if last && want_key {
                key_span.start
            } else {
                value.span().start
            });
            table = value.get_ref().as_table();
            array = value.get_ref().as_array().map(|a| a.as_ref());
        }
        best.map(|offset| self.location_of_offset(offset))
    }

    /// The deepest key whose value contains `offset`, for naming the key a
    /// deserialization error belongs to. Table spans do not always cover
    /// their bodies (a `[section]` header's span is the header), so this
    /// searches every node rather than descending only through containing
    /// parents.
    fn path_at(&self, offset: usize) -> KeyPath {
        fn visit<'i>(
            table: Option<&DeTable<'i>>,
            array: Option<&[Spanned<DeValue<'i>>]>,
            offset: usize,
            path: &mut KeyPath,
            best: &mut KeyPath,
        ) {
            let children: Vec<(Seg, &Spanned<DeValue<'i>>)> = match (table, array) {
                (Some(t), _) => t
                    .iter()
                    .map(|(k, v)| (Seg::Key(k.get_ref().to_string()), v))
                    .collect(),
                (None, Some(a)) => a
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (Seg::Index(i), v))
                    .collect(),
                (None, None) => Vec::new(),
            };
            for (seg, value) in children {
                path.push(seg);
                if value.span().contains(&offset) && path.len() > best.len() {
                    *best = path.clone();
                }
                visit(
                    value.get_ref().as_table(),
                    value.get_ref().as_array().map(|a| a.as_ref()),
                    offset,
                    path,
                    best,
                );
                path.pop();
            }
        }
        let mut best = KeyPath::new();
        visit(
            Some(self.root.get_ref()),
            None,
            offset,
            &mut KeyPath::new(),
            &mut best,
        );
        best
    }

    /// Deserializes each section on its own, so one bad value costs only its
    /// own section, and records every unknown key as an error.
    pub fn deserialize(&self, diagnostics: &mut Diagnostics) -> RawConfig {
        let mut raw = RawConfig::default();
        for (key, value) in self.root.get_ref() {
            let name = key.get_ref().as_ref();
            let path = vec![Seg::Key(name.to_string())];
            let before = diagnostics.error_count();
            match name {
                "halo" => raw.halo = self.section(value, &path, diagnostics),
                "exchange" => raw.exchange = Some(self.exchange(value, &path, diagnostics)),
                "sync" => raw.sync = self.section(value, &path, diagnostics),
                "webhook" => raw.webhook = self.section(value, &path, diagnostics),
                "admin" => raw.admin = self.section(value, &path, diagnostics),
                "store" => raw.store = self.section(value, &path, diagnostics),
                "log" => raw.log = self.section(value, &path, diagnostics),
                _ => self.unknown_key(&path, diagnostics),
            }
            if diagnostics.error_count() > before {
                raw.sections_with_errors.push(name.to_string());
            }
        }
        raw
    }

    /// `[[exchange.connection]]` entries are read one by one, so a mistake in
    /// one connection does not hide the others.
    fn exchange(
        &self,
        value: &Spanned<DeValue<'a>>,
        path: &KeyPath,
        diagnostics: &mut Diagnostics,
    ) -> RawExchange {
        let mut exchange = RawExchange::default();
        let Some(table) = value.get_ref().as_table() else {
            diagnostics.push(
                Diagnostic::error(path.clone(), "expected a table ([exchange])")
                    .at(Some(self.location_of_offset(value.span().start))),
            );
            return exchange;
        };
        for (key, entry) in table {
            let name = key.get_ref().as_ref();
            let mut entry_path = path.clone();
            entry_path.push(Seg::Key(name.to_string()));
            if name != "connection" {
                self.unknown_key(&entry_path, diagnostics);
                continue;
            }
            let Some(items) = entry.get_ref().as_array() else {
                diagnostics.push(
                    Diagnostic::error(
                        entry_path,
                        "expected one or more [[exchange.connection]] tables",
                    )
                    .at(Some(self.location_of_offset(entry.span().start))),
                );
                continue;
            };
            let mut connections = Vec::new();
            for (index, item) in items.iter().enumerate() {
                let mut item_path = entry_path.clone();
                item_path.push(Seg::Index(index));
                if let Some(mut connection) =
                    self.section::<RawConnection>(item, &item_path, diagnostics)
                {
                    connection.index = index;
                    connections.push(connection);
                }
            }
            exchange.connection = Some(connections);
        }
        exchange
    }

    fn section<T: DeserializeOwned>(
        &self,
        value: &Spanned<DeValue<'a>>,
        path: &KeyPath,
        diagnostics: &mut Diagnostics,
    ) -> Option<T> {
        let mut unknown = Vec::new();
        let deserializer = ValueDeserializer::from(value.clone());
        let result = serde_ignored::deserialize(deserializer, |ignored| {
            let mut full = path.clone();
            full.extend(segments(&ignored));
            unknown.push(full);
        });
        for key in &unknown {
            self.unknown_key(key, diagnostics);
        }
        match result {
            Ok(section) => Some(section),
            Err(error) => {
                let offset = error.span().map_or(value.span().start, |s| s.start);
                let key = self.path_at(offset);
                let key = if key.is_empty() { path.clone() } else { key };
                let message = if holds_secret(&key) {
                    "invalid value (the value is not shown because this key holds a secret)"
                        .to_string()
                } else {
                    plain_types(error.message().trim())
                };
                diagnostics.push(
                    Diagnostic::error(key, message).at(Some(self.location_of_offset(offset))),
                );
                None
            }
        }
    }

    fn unknown_key(&self, path: &[Seg], diagnostics: &mut Diagnostics) {
        diagnostics.push(
            Diagnostic::error(
                path.to_vec(),
                "unknown key (check its spelling and section against config.example.toml)",
            )
            .at(self.locate_key(path)),
        );
    }
}

/// Serde names Rust types ("expected i64"); say what a TOML writer would.
pub(super) fn plain_types(message: &str) -> String {
    message
        .replace("expected i64", "expected a whole number")
        .replace("expected u32", "expected a whole number")
        .replace("expected f64", "expected a number")
        .replace("expected a boolean", "expected true or false")
}

/// Keys whose values must never be echoed, even in an error.
pub(super) fn holds_secret(path: &[Seg]) -> bool {
    path.iter().any(|seg| {
        matches!(seg, Seg::Key(k) if k.contains("secret") || k.starts_with("token_key") || k.contains("certificate"))
    })
}

fn segments(path: &serde_ignored::Path<'_>) -> KeyPath {
    let mut reversed = Vec::new();
    let mut current = path;
    loop {
        match current {
            serde_ignored::Path::Root => break,
            serde_ignored::Path::Seq { parent, index } => {
                reversed.push(Seg::Index(*index));
                current = parent;
            }
            serde_ignored::Path::Map { parent, key } => {
                reversed.push(Seg::Key(key.clone()));
                current = parent;
            }
            serde_ignored::Path::Some { parent }
            | serde_ignored::Path::NewtypeStruct { parent }
            | serde_ignored::Path::NewtypeVariant { parent } => current = parent,
        }
    }
    reversed.reverse();
    reversed
}

fn location_in(text: &str, offset: usize) -> Location {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before
        .get(line_start..)
        .map_or(1, |s| s.chars().count() + 1);
    Location { line, column }
}
