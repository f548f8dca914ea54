//! The repository stands alone: no source, script, manifest or doc of it names a path outside
//! its root (a user's clone has nothing beside it).

use orchestrator_test_support::repo;

#[test]
fn nothing_in_the_repository_names_a_path_outside_it() {
    let root = repo::root();
    assert!(root.join("Cargo.toml").is_file() && root.join("Makefile").is_file(), "{root:?}");
    let found = repo::escaping_paths(&root);
    assert!(
        found.is_empty(),
        "{} path(s) leave the repository:\n{}",
        found.len(),
        found.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn every_declared_dependency_is_used() {
    let found = orchestrator_test_support::deps::unused_dependencies(&repo::root());
    assert!(
        found.is_empty(),
        "{} unused dependencies:\n{}",
        found.len(),
        found.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
    );
}
