//! Environment helpers applied before the command line is parsed.
//!
//! Precedence of a setting, highest first:
//! 1. the explicit command-line flag;
//! 2. the environment variable `<VAR>` (including values loaded from `.env`, which never
//!    override variables already set in the process environment);
//! 3. `<VAR>_FILE`: the trimmed content of the file it names.
//!
//! The third step is done by [`apply_file_secrets`]: it sets `<VAR>` from `<VAR>_FILE` only
//! when `<VAR>` is unset or empty, so clap's own flag-over-env rule gives the order above.
//! The reference orchestrator lets the file override the variable; we prefer the value that
//! is spelled out, and document it in `docs/configuration.md`.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
};

/// Suffix of the companion variable that names a file holding the value.
pub const FILE_SUFFIX: &str = "_FILE";

/// Why a `<VAR>_FILE` companion could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FileSecretError {
    /// The file could not be read.
    #[error("{var}_FILE names {path}, which cannot be read: {source}")]
    Read {
        /// The variable the file would provide.
        var: String,
        /// The file named by `<var>_FILE`.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not UTF-8.
    #[error("{var}_FILE names {path}, which is not valid UTF-8")]
    NotUtf8 {
        /// The variable the file would provide.
        var: String,
        /// The file named by `<var>_FILE`.
        path: PathBuf,
    },
    /// The file holds only whitespace.
    #[error("{var}_FILE names {path}, which is empty")]
    Empty {
        /// The variable the file would provide.
        var: String,
        /// The file named by `<var>_FILE`.
        path: PathBuf,
    },
    /// `<VAR>_FILE` itself is not valid Unicode.
    #[error("{var}_FILE is not valid Unicode")]
    PathNotUnicode {
        /// The variable the file would provide.
        var: String,
    },
}

/// Why `.env` could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("cannot load .env: {0}")]
pub struct DotenvError(#[from] dotenvy::Error);

/// Loads `.env` from the current directory or a parent into the process environment,
/// without overriding variables that are already set.
///
/// Returns the path loaded, or `None` when there is no `.env`; a malformed or unreadable file
/// is an error. Call it before threads start (it mutates the process environment).
pub fn load_dotenv() -> Result<Option<PathBuf>, DotenvError> {
    match dotenvy::dotenv() {
        Ok(path) => Ok(Some(path)),
        Err(e) if e.not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Computes the assignments `<VAR> = trimmed content of <VAR>_FILE` for every variable of
/// `vars` whose `<VAR>` is unset or empty and whose `<VAR>_FILE` is set and non-empty.
///
/// `lookup` reads a variable (pass `std::env::var_os`, or a map in tests). Nothing is
/// modified. An unreadable, non-UTF-8 or empty file is an error naming the variable and path,
/// even when it would not be used, so a broken deployment never goes unnoticed.
pub fn resolve_file_secrets<F>(
    vars: &[&str],
    lookup: F,
) -> Result<Vec<(String, String)>, FileSecretError>
where
    F: Fn(&str) -> Option<OsString>,
{
    let mut out = Vec::new();
    for &var in vars {
        let Some(path) = lookup(&format!("{var}{FILE_SUFFIX}")).filter(|p| !p.is_empty()) else {
            continue;
        };
        let path = PathBuf::from(
            path.into_string()
                .map_err(|_| FileSecretError::PathNotUnicode { var: var.to_owned() })?,
        );
        let value = read_secret_file(var, &path)?;
        let var_is_set = lookup(var).is_some_and(|v| !v.is_empty());
        if !var_is_set {
            out.push((var.to_owned(), value));
        }
    }
    Ok(out)
}

/// Applies [`resolve_file_secrets`] to the process environment. Returns the names of the
/// variables that were set from files.
///
/// Call it once at start-up, before any thread is spawned: it mutates the process environment.
pub fn apply_file_secrets(vars: &[&str]) -> Result<Vec<String>, FileSecretError> {
    let assignments = resolve_file_secrets(vars, |name| std::env::var_os(name))?;
    let mut names = Vec::with_capacity(assignments.len());
    for (var, value) in assignments {
        std::env::set_var(&var, value);
        names.push(var);
    }
    Ok(names)
}

fn read_secret_file(var: &str, path: &Path) -> Result<String, FileSecretError> {
    let bytes = std::fs::read(path).map_err(|source| FileSecretError::Read {
        var: var.to_owned(),
        path: path.to_owned(),
        source,
    })?;
    let text = String::from_utf8(bytes)
        .map_err(|_| FileSecretError::NotUtf8 { var: var.to_owned(), path: path.to_owned() })?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(FileSecretError::Empty { var: var.to_owned(), path: path.to_owned() });
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> =
            pairs.iter().map(|(k, v)| ((*k).to_owned(), OsString::from(v))).collect();
        move |name| map.get(name).cloned()
    }

    fn file(dir: &tempfile::TempDir, name: &str, content: &str) -> String {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path.to_str().unwrap().to_owned()
    }

    #[test]
    fn file_sets_unset_variable_with_trimmed_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = file(&dir, "key", "  0xabc\n\n");
        let got = resolve_file_secrets(&["KEY", "OTHER"], env(&[("KEY_FILE", &p)])).unwrap();
        assert_eq!(got, vec![("KEY".to_owned(), "0xabc".to_owned())]);
    }

    #[test]
    fn variable_wins_over_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = file(&dir, "key", "from-file");
        let got =
            resolve_file_secrets(&["KEY"], env(&[("KEY", "from-env"), ("KEY_FILE", &p)])).unwrap();
        assert!(got.is_empty());
    }

    #[test]
    fn empty_variable_counts_as_unset() {
        let dir = tempfile::tempdir().unwrap();
        let p = file(&dir, "key", "from-file");
        let got = resolve_file_secrets(&["KEY"], env(&[("KEY", ""), ("KEY_FILE", &p)])).unwrap();
        assert_eq!(got, vec![("KEY".to_owned(), "from-file".to_owned())]);
    }

    #[test]
    fn empty_file_variable_is_ignored() {
        let got = resolve_file_secrets(&["KEY"], env(&[("KEY_FILE", "")])).unwrap();
        assert!(got.is_empty());
    }

    #[test]
    fn missing_file_is_an_error_naming_variable_and_path() {
        let err = resolve_file_secrets(&["KEY"], env(&[("KEY_FILE", "/nonexistent/secret")]))
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("KEY_FILE") && msg.contains("/nonexistent/secret"), "{msg}");
    }

    #[test]
    fn missing_file_is_an_error_even_when_variable_is_set() {
        let err =
            resolve_file_secrets(&["KEY"], env(&[("KEY", "v"), ("KEY_FILE", "/nonexistent/x")]));
        assert!(matches!(err, Err(FileSecretError::Read { .. })));
    }

    #[test]
    fn blank_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = file(&dir, "key", " \n");
        let err = resolve_file_secrets(&["KEY"], env(&[("KEY_FILE", &p)])).unwrap_err();
        assert!(matches!(err, FileSecretError::Empty { .. }), "{err}");
    }
}
