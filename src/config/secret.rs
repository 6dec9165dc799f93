//! Loading secrets from where the config says they are: inline, a file, an
//! environment variable, or a systemd credential (`LoadCredential=`).
//!
//! Values go straight into [`SecretString`]; nothing here formats a secret,
//! and findings name only keys, paths and variable names.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use secrecy::SecretString;

use super::diagnostic::{Diagnostic, KeyPath, Seg, display_path};

/// Where environment variables come from: the process, or a fixed map in tests.
///
/// Deliberately not `Debug`: the environment can hold secrets.
pub struct Environment {
    fixed: Option<HashMap<String, String>>,
}

impl Environment {
    pub fn process() -> Self {
        Self { fixed: None }
    }

    pub fn fixed<K: Into<String>, V: Into<String>>(vars: impl IntoIterator<Item = (K, V)>) -> Self {
        Self {
            fixed: Some(
                vars.into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            ),
        }
    }

    pub fn var(&self, name: &str) -> Option<String> {
        match &self.fixed {
            Some(vars) => vars.get(name).cloned(),
            None => std::env::var(name).ok(),
        }
        .filter(|value| !value.is_empty())
    }

    fn credentials_directory(&self) -> Option<PathBuf> {
        self.var("CREDENTIALS_DIRECTORY").map(PathBuf::from)
    }
}

/// Where one secret comes from, as written in the config (at most one should
/// be set; [`resolve`] says so otherwise).
#[derive(Debug, Default)]
pub struct SecretSource {
    pub inline: Option<SecretString>,
    pub file: Option<String>,
    pub env: Option<String>,
    pub credential: Option<String>,
}

/// The key of a secret's `_file`, `_env` or `_credential` variant.
pub fn suffixed(base: &KeyPath, suffix: &str) -> KeyPath {
    let mut key = base.clone();
    if let Some(Seg::Key(last)) = key.last_mut() {
        last.push_str(suffix);
    }
    key
}

/// What kind of secret a key holds, which decides how its file is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// A password-like string; surrounding whitespace and a trailing newline
    /// are dropped.
    Text,
    /// A PEM file holding a private key (and its certificate).
    PemPrivateKey,
}

/// Everything secret resolution needs to know about the config file itself.
pub struct SecretContext<'a> {
    pub env: &'a Environment,
    /// Directory of the config file: relative secret paths start here.
    pub config_dir: &'a Path,
    /// Set when the config file can be read by group or others, which makes
    /// inline secrets unsafe.
    pub config_exposed_mode: Option<u32>,
    pub config_path: &'a Path,
}

/// Resolves one secret. `base` is the key path of the inline key (e.g.
/// `halo.client_secret`); the `_file`, `_env` and `_credential` variants are
/// named after it in findings.
pub fn resolve(
    raw: SecretSource,
    base: &KeyPath,
    kind: SecretKind,
    context: &SecretContext<'_>,
) -> Result<SecretString, Diagnostic> {
    let name = display_path(base);
    let variant = |suffix: &str| suffixed(base, suffix);
    let suffixes: &[&str] = match kind {
        SecretKind::Text => &["_file", "_credential", "_env", ""],
        SecretKind::PemPrivateKey => &["_file", "_credential"],
    };
    let allowed: Vec<String> = suffixes
        .iter()
        .map(|suffix| format!("`{}`", display_path(&variant(suffix))))
        .collect();
    let set = [
        raw.inline.is_some(),
        raw.file.is_some(),
        raw.env.is_some(),
        raw.credential.is_some(),
    ]
    .iter()
    .filter(|s| **s)
    .count();
    if set == 0 {
        return Err(Diagnostic::error(
            base.clone(),
            format!("missing: set one of {}", allowed.join(", ")),
        ));
    }
    if set > 1 {
        return Err(Diagnostic::error(
            base.clone(),
            format!("set only one of {} (found {set})", allowed.join(", ")),
        ));
    }

    if let Some(value) = raw.inline {
        if let Some(mode) = context.config_exposed_mode {
            return Err(Diagnostic::error(
                base.clone(),
                format!(
                    "holds a secret inline, but {} is readable by group or others (mode {mode:04o}); \
                     run `chmod 600 {}` or move the secret to `{name}_file` / `{name}_credential`",
                    context.config_path.display(),
                    context.config_path.display(),
                ),
            ));
        }
        tracing::debug!(key = %name, source = "inline", "loaded secret");
        return Ok(value);
    }
    if let Some(file) = raw.file {
        let key = variant("_file");
        let path = context.config_dir.join(&file);
        let text = read_secret_file(&path).map_err(|m| Diagnostic::error(key.clone(), m))?;
        let value = finish(text, kind, &path).map_err(|m| Diagnostic::error(key, m))?;
        tracing::debug!(key = %name, source = "file", path = %path.display(), "loaded secret");
        return Ok(value);
    }
    if let Some(variable) = raw.env {
        let key = variant("_env");
        let Some(text) = context.env.var(&variable) else {
            return Err(Diagnostic::error(
                key,
                format!("environment variable `{variable}` is not set or empty"),
            ));
        };
        let value =
            finish(text, kind, Path::new(&variable)).map_err(|m| Diagnostic::error(key, m))?;
        tracing::debug!(key = %name, source = "env", variable = %variable, "loaded secret");
        return Ok(value);
    }
    if let Some(credential) = raw.credential {
        let key = variant("_credential");
        if credential.is_empty() || credential.contains('/') || credential.starts_with('.') {
            return Err(Diagnostic::error(
                key,
                format!(
                    "`{credential}` is not a credential name (a plain file name, as in LoadCredential=NAME:PATH)"
                ),
            ));
        }
        let Some(directory) = context.env.credentials_directory() else {
            return Err(Diagnostic::error(
                key,
                format!(
                    "systemd credential `{credential}` requested but $CREDENTIALS_DIRECTORY is not set; \
                     run under systemd with `LoadCredential={credential}:/etc/halosync/{credential}`, \
                     or use `{name}_file` instead"
                ),
            ));
        };
        let path = directory.join(&credential);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Diagnostic::error(
                key.clone(),
                format!(
                    "systemd credential `{credential}` could not be read from {}: {e}; \
                     check the unit's `LoadCredential={credential}:...` line",
                    path.display()
                ),
            )
        })?;
        let value = finish(text, kind, &path).map_err(|m| Diagnostic::error(key, m))?;
        tracing::debug!(key = %name, source = "credential", credential = %credential, "loaded secret");
        return Ok(value);
    }
    Err(Diagnostic::error(base.clone(), "missing"))
}

fn read_secret_file(path: &Path) -> Result<String, String> {
    let metadata = std::fs::metadata(path)
        .map_err(|e| format!("secret file {} cannot be opened: {e}", path.display()))?;
    if !metadata.is_file() {
        return Err(format!(
            "secret file {} is not a regular file",
            path.display()
        ));
    }
    if let Some(mode) = exposed_mode(&metadata) {
        return Err(format!(
            "secret file {} is readable by group or others (mode {mode:04o}); run `chmod 600 {}`",
            path.display(),
            path.display()
        ));
    }
    std::fs::read_to_string(path).map_err(|e| {
        format!(
            "secret file {} cannot be read as UTF-8 text: {e}",
            path.display()
        )
    })
}

/// The permission bits if group or others may read the file, else `None`.
pub fn exposed_mode(metadata: &std::fs::Metadata) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = metadata.permissions().mode() & 0o7777;
    (mode & 0o077 != 0).then_some(mode)
}

fn finish(text: String, kind: SecretKind, origin: &Path) -> Result<SecretString, String> {
    match kind {
        SecretKind::Text => {
            let trimmed = text.trim();
            if trimmed.is_empty() {
                return Err(format!("{} is empty", origin.display()));
            }
            Ok(SecretString::from(trimmed.to_string()))
        }
        SecretKind::PemPrivateKey => {
            if !(text.contains("-----BEGIN") && text.contains("PRIVATE KEY-----")) {
                return Err(format!(
                    "{} does not contain a PEM private key (expected a `-----BEGIN PRIVATE KEY-----` block)",
                    origin.display()
                ));
            }
            Ok(SecretString::from(text))
        }
    }
}
