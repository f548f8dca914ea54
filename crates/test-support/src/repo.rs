//! The repository stands alone: nothing in it may name a path outside its root.
//!
//! [`escaping_paths`] walks the tracked kinds of files (Rust, shell, Python, TOML, Makefile,
//! Markdown, Cairo, the CI entry point) and reports every relative path that climbs above the
//! repository root from where it is resolved:
//! - in Rust sources, from the crate's own folder (`CARGO_MANIFEST_DIR`, and the working
//!   directory of its tests), or from the file's folder inside `include_str!`/`include_bytes!`;
//!   `"..", ".."` path arrays count like `../..`;
//! - in shell scripts, from the repository root (every script starts with a `cd` there), or
//!   from the script's own folder when the path follows `dirname`;
//! - elsewhere, from the file's own folder (Markdown links, Cargo manifests).
//!
//! A line carrying `path-guard: allow` is skipped (the checker's own tests).

use std::path::{Path, PathBuf};

/// One path that leaves the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escape {
    /// The file, relative to the repository root.
    pub file: PathBuf,
    /// 1-based line number.
    pub line: usize,
    /// The path as written.
    pub path: String,
}

impl std::fmt::Display for Escape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: `{}` leaves the repository", self.file.display(), self.line, self.path)
    }
}

/// The repository root (two levels above this crate).
///
/// Found at run time from the `CARGO_MANIFEST_DIR` cargo gives the test process (the tested
/// crate's folder, inside the repository), so a build cached from another checkout of the
/// repository (a shared target dir: cargo's dep-info paths are relative, so it counts as fresh)
/// still reads this checkout's files; the folder this crate was compiled in otherwise.
pub fn root() -> PathBuf {
    let at_runtime = std::env::var_os("CARGO_MANIFEST_DIR").and_then(|dir| {
        Path::new(&dir)
            .ancestors()
            .find(|a| a.join("crates/test-support/Cargo.toml").is_file())
            .map(Path::to_path_buf)
    });
    at_runtime.unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .and_then(Path::parent)
            .expect("crates/test-support sits two levels below the root")
            .to_path_buf()
    })
}

/// Folders never scanned: build output, VCS data, tool caches, and the vectors (data).
const SKIPPED_DIRS: &[&str] = &[".git", "target", "node_modules", "vectors", ".venv", "corpus"];

/// How the relative paths of one file are resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rust,
    Shell,
    Other,
}

fn kind_of(path: &Path) -> Option<Kind> {
    let name = path.file_name()?.to_str()?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ext {
        "rs" => Some(Kind::Rust),
        "sh" => Some(Kind::Shell),
        "py" | "toml" | "md" | "cairo" | "yml" | "yaml" => Some(Kind::Other),
        _ if name == "Makefile" || name == "run" || name == ".env.example" => Some(Kind::Shell),
        _ => None,
    }
}

/// Every path in the repository's sources, scripts, manifests and docs that leaves `root`.
pub fn escaping_paths(root: &Path) -> Vec<Escape> {
    let mut found = Vec::new();
    walk(root, root, &mut found);
    found.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    found
}

fn walk(root: &Path, dir: &Path, found: &mut Vec<Escape>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
        let Ok(ft) = entry.file_type() else { continue };
        if ft.is_dir() {
            let name = entry.file_name();
            if !SKIPPED_DIRS.iter().any(|s| name.to_str() == Some(*s)) {
                walk(root, &path, found);
            }
        } else if ft.is_file() {
            let Some(kind) = kind_of(&path) else { continue };
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            found.extend(check_file(root, &rel, kind, &text));
        }
    }
}

/// The depth below the root from which a file's relative paths are resolved.
fn base_depth(root: &Path, rel: &Path, kind: Kind) -> usize {
    let dir = rel.parent().unwrap_or(Path::new(""));
    match kind {
        Kind::Rust => {
            // The nearest folder with a Cargo.toml: the crate's manifest dir.
            let mut d = dir.to_path_buf();
            loop {
                if root.join(&d).join("Cargo.toml").is_file() || d.as_os_str().is_empty() {
                    return d.components().count();
                }
                d = d.parent().map(Path::to_path_buf).unwrap_or_default();
            }
        }
        Kind::Shell => 0,
        Kind::Other => dir.components().count(),
    }
}

fn check_file(root: &Path, rel: &Path, kind: Kind, text: &str) -> Vec<Escape> {
    let depth = base_depth(root, rel, kind);
    let own_dir_depth = rel.parent().map_or(0, |d| d.components().count());
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.contains("path-guard: allow") {
            continue;
        }
        for (path, after_dirname) in relative_paths(line, kind) {
            let from = if after_dirname { own_dir_depth } else { depth };
            if climbs_above(&path, from) {
                out.push(Escape { file: rel.to_path_buf(), line: i + 1, path });
            }
        }
    }
    out
}

/// The path-like tokens of a line that contain a `..` segment, each with whether it is resolved
/// from the file's own folder (after `dirname` in a script, inside `include_str!` in Rust).
fn relative_paths(line: &str, kind: Kind) -> Vec<(String, bool)> {
    let joined;
    let line = if kind == Kind::Rust {
        // `["a", "..", ".."]` → `a/../..`
        joined = join_string_arrays(line);
        joined.as_str()
    } else {
        line
    };
    let is_path_char = |c: char| c.is_ascii_alphanumeric() || "._-/".contains(c);
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in line.char_indices().chain(std::iter::once((line.len(), ' '))) {
        match (is_path_char(c) && i < line.len(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                // `${VAR:-../x}`: the `-` belongs to the shell, not to the path.
                let token = line[s..i].trim_start_matches('-');
                if token.split('/').any(|seg| seg == "..") {
                    // `dirname` in a script, `include_str!`/`include_bytes!` in Rust: relative
                    // to the file itself.
                    let before = &line[..s];
                    let from_own_dir = before.contains("dirname") || before.contains("include_");
                    out.push((token.to_string(), from_own_dir));
                }
                start = None;
            }
            _ => {}
        }
    }
    out
}

fn join_string_arrays(line: &str) -> String {
    let mut s = line.to_string();
    for sep in ["\", \"", "\",\""] {
        s = s.replace(sep, "/");
    }
    s
}

/// Whether walking `path` from `depth` levels below the root goes above it.
fn climbs_above(path: &str, depth: usize) -> bool {
    let mut d = depth as isize;
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                d -= 1;
                if d < 0 {
                    return true;
                }
            }
            _ => d += 1,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rust_in(rel: &str, line: &str) -> Vec<Escape> {
        check_file(&root(), Path::new(rel), Kind::Rust, line)
    }

    #[test]
    fn a_manifest_dir_path_to_a_sibling_folder_is_caught() {
        // The form the vectors were once read with, three crate depths deep.
        let line = r#"concat!(env!("CARGO_MANIFEST_DIR"), "/../../../../sibling/data")"#; // path-guard: allow
        let found = rust_in("crates/settlement-clients/ethereum/src/kzg.rs", line);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].path, "/../../../../sibling/data"); // path-guard: allow
                                                                // Three levels up from the same crate is the root itself: allowed.
        let inside = r#"concat!(env!("CARGO_MANIFEST_DIR"), "/../../../Cargo.toml")"#; // path-guard: allow (three levels deep in the test, two here)
        assert!(rust_in("crates/settlement-clients/ethereum/src/kzg.rs", inside).is_empty());
    }

    #[test]
    fn a_path_array_counts_like_a_path() {
        let line = r#"[env!("CARGO_MANIFEST_DIR"), "..", "..", "sibling", "x.zip"]"#; // path-guard: allow
        assert_eq!(rust_in("orchestrator/src/cli/dev/fact.rs", line).len(), 1);
        let line = r#"[env!("CARGO_MANIFEST_DIR"), "..", "crates", "x.zip"]"#;
        assert!(rust_in("orchestrator/src/cli/dev/fact.rs", line).is_empty());
    }

    #[test]
    fn include_str_resolves_from_the_file() {
        let rel = "crates/settlement-clients/starknet/src/testing.rs";
        let ok = r#"include_str!("../../../../contracts/cairo/artifacts/C.json");"#; // path-guard: allow (valid from the starknet crate, not from here)
        assert!(rust_in(rel, ok).is_empty());
        let bad = r#"include_str!("../../../../../x.json");"#; // path-guard: allow
        assert_eq!(rust_in(rel, bad).len(), 1);
    }

    #[test]
    fn traversal_strings_that_stay_inside_are_not_flagged() {
        // Test inputs of the storage key validation.
        let line = r#"for key in ["", "/etc/passwd", "../outside", "a/../../outside", "a/.."] {"#;
        assert!(rust_in("orchestrator/src/core/client/conformance/storage.rs", line).is_empty());
    }

    #[test]
    fn scripts_resolve_from_the_root_unless_after_dirname() {
        let rel = Path::new("scripts/bench.sh");
        let bad = r#"testdata="${DATA_DIR:-../sibling/data}""#; // path-guard: allow
        assert_eq!(check_file(&root(), rel, Kind::Shell, bad).len(), 1);
        let ok = r#"cd "$(dirname "$0")/..""#;
        assert!(check_file(&root(), rel, Kind::Shell, ok).is_empty());
        let deep = Path::new("scripts/pyref/check.sh");
        let ok = r#"ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)""#;
        assert!(check_file(&root(), deep, Kind::Shell, ok).is_empty());
        let bad = r#"ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)""#; // path-guard: allow
        assert_eq!(check_file(&root(), deep, Kind::Shell, bad).len(), 1);
    }

    #[test]
    fn markdown_links_resolve_from_the_document() {
        let rel = Path::new("docs/architecture.md");
        assert!(check_file(&root(), rel, Kind::Other, "see [x](../README.md)").is_empty());
        let bad = "read ../../sibling/spec.md"; // path-guard: allow
        assert_eq!(check_file(&root(), rel, Kind::Other, bad).len(), 1);
    }
}
