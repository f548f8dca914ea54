//! Every dependency a crate of the workspace declares is used by it.
//!
//! [`unused_dependencies`] reads each member's `Cargo.toml` (its `[dependencies]`,
//! `[dev-dependencies]` and `[build-dependencies]`) and looks for the dependency's Rust name
//! (dashes as underscores, or the `package =` rename) in the crate's sources: `src/`, `tests/`,
//! `benches/`, `examples/` and `build.rs`. A dev-dependency that repeats a normal dependency (to
//! turn on a feature for tests) or names the crate itself counts as used.

use std::path::{Path, PathBuf};

/// One declared dependency that the crate's code never names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unused {
    /// The crate's manifest, relative to the root.
    pub manifest: PathBuf,
    /// The section (`dependencies`, `dev-dependencies`, `build-dependencies`).
    pub section: String,
    /// The dependency's key in that section.
    pub name: String,
}

impl std::fmt::Display for Unused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} [{}] {} is never used", self.manifest.display(), self.section, self.name)
    }
}

/// The workspace members listed in the root manifest's `members = [...]`.
pub fn members(root: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(root.join("Cargo.toml")).expect("root Cargo.toml");
    let start = text.find("members = [").expect("members list") + "members = [".len();
    let end = start + text[start..].find(']').expect("end of members");
    text[start..end]
        .split(',')
        .map(|m| m.trim().trim_matches('"'))
        .filter(|m| !m.is_empty())
        .map(PathBuf::from)
        .collect()
}

/// A declared dependency: section, key, the crate name code uses.
#[derive(Debug)]
struct Declared {
    section: String,
    key: String,
    rust_name: String,
    self_path: bool,
}

fn declared(manifest: &str) -> (String, Vec<Declared>) {
    let mut own_name = String::new();
    let mut section = String::new();
    let mut out = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            section = line.trim_matches(|c| c == '[' || c == ']').to_string();
            continue;
        }
        if line.starts_with('#') || !line.contains('=') {
            continue;
        }
        let (key, value) = line.split_once('=').expect("contains =");
        let key = key.trim();
        if section == "package" && key == "name" {
            own_name = value.trim().trim_matches('"').to_string();
        }
        if !matches!(section.as_str(), "dependencies" | "dev-dependencies" | "build-dependencies") {
            continue;
        }
        let key = key.strip_suffix(".workspace").unwrap_or(key).trim().to_string();
        let package = value
            .split_once("package")
            .and_then(|(_, rest)| rest.split('"').nth(1))
            .map(str::to_string);
        let rust_name = package.unwrap_or_else(|| key.clone()).replace('-', "_");
        let self_path = value.contains("path = \".\"");
        out.push(Declared { section: section.clone(), key, rust_name, self_path });
    }
    (own_name, out)
}

fn sources(dir: &Path, out: &mut String) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
            out.push('\n');
        }
    }
}

/// Whether `code` names the crate `name` as a path root (`name::…`, `#[name::…]`, `use name;`,
/// `extern crate name;`).
fn names_crate(code: &str, name: &str) -> bool {
    let bytes = code.as_bytes();
    let mut from = 0;
    while let Some(i) = code[from..].find(name) {
        let at = from + i;
        let end = at + name.len();
        let before_ok =
            at == 0 || !(bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_');
        let rest = &code[end..];
        // `use name;`, `use name as x;`, `extern crate name;`: a bare name only after a keyword.
        let after_keyword = code[..at].ends_with("use ") || code[..at].ends_with("extern crate ");
        let after_ok = rest.starts_with("::")
            || (after_keyword && (rest.starts_with(';') || rest.starts_with(" as ")));
        if before_ok && after_ok {
            return true;
        }
        from = end;
    }
    false
}

/// Every dependency of every workspace member that its code never names.
pub fn unused_dependencies(root: &Path) -> Vec<Unused> {
    let mut found = Vec::new();
    for member in members(root) {
        let dir = root.join(&member);
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("member manifest");
        let (own_name, deps) = declared(&manifest);
        let mut code = String::new();
        for sub in ["src", "tests", "benches", "examples"] {
            sources(&dir.join(sub), &mut code);
        }
        code.push_str(&std::fs::read_to_string(dir.join("build.rs")).unwrap_or_default());
        let normal: Vec<&str> =
            deps.iter().filter(|d| d.section == "dependencies").map(|d| d.key.as_str()).collect();
        for d in &deps {
            let feature_only = d.section == "dev-dependencies" && normal.contains(&d.key.as_str());
            if d.self_path || d.key == own_name || feature_only {
                continue;
            }
            if !names_crate(&code, &d.rust_name) {
                found.push(Unused {
                    manifest: member.join("Cargo.toml"),
                    section: d.section.clone(),
                    name: d.key.clone(),
                });
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_are_read_with_renames_and_workspace_keys() {
        let (name, deps) = declared(
            "[package]\nname = \"x\"\n[dependencies]\nfoo-bar.workspace = true\n\
             baz = { version = \"1\", package = \"real-baz\" }\n[dev-dependencies]\n\
             x = { path = \".\", features = [\"t\"] }\n[features]\na = []\n",
        );
        assert_eq!(name, "x");
        let got: Vec<_> = deps.iter().map(|d| (d.key.as_str(), d.rust_name.as_str())).collect();
        assert_eq!(got, [("foo-bar", "foo_bar"), ("baz", "real_baz"), ("x", "x")]);
        assert!(deps[2].self_path);
    }

    #[test]
    fn a_crate_is_named_only_as_a_path_root() {
        assert!(names_crate("use serde_json::Value;", "serde_json"));
        assert!(names_crate("let v = hex::encode(b);", "hex"));
        assert!(names_crate("extern crate tokio;", "tokio"));
        // A longer identifier or a field of the same name is not the crate.
        assert!(!names_crate("use serde_json::Value;", "serde"));
        assert!(!names_crate("let hex_str = x.hex;", "hex"));
    }
}
