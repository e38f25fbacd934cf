//! The direction of dependencies, checked on the source: the Raft layer imports no domain
//! module, and nothing below it (storage, the schedule model, shards, the meta group)
//! reaches into Raft beyond the seam (`GroupLogic`, `LogTypes`) or up into the layers that
//! use it (router, gateway, timer, callbacks, workers, admin, node).

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for entry in std::fs::read_dir(dir).expect("read src dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// Every `crate::a::b::...` path in the code of `file` (comments left out).
fn crate_paths(file: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(file).expect("read source");
    let mut out = vec![];
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let tail = &rest[at + "crate::".len()..];
            let end = tail
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':' || c == '{'))
                .unwrap_or(tail.len());
            out.push((n + 1, tail[..end].trim_end_matches(':').to_string()));
            rest = &tail[end..];
        }
    }
    out
}

fn violations(dirs: &[&str], allowed: impl Fn(&str) -> bool) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut bad = vec![];
    for dir in dirs {
        for file in rust_files(&src.join(dir)) {
            for (line, path) in crate_paths(&file) {
                if !allowed(&path) {
                    bad.push(format!("{}:{line}: crate::{path}", file.display()));
                }
            }
        }
    }
    bad
}

#[test]
fn raft_imports_no_domain_module() {
    let bad = violations(&["raft"], |p| {
        // `tls`: the transport's certificates and peer check, domain-free.
        ["raft", "ids", "store", "proto", "tls"]
            .iter()
            .any(|m| p == *m || p.starts_with(&format!("{m}::")))
    });
    assert!(
        bad.is_empty(),
        "raft/ reaches outside its layer:\n{}",
        bad.join("\n")
    );
}

#[test]
fn lower_layers_reach_raft_only_through_the_seam_and_never_up() {
    let upper = [
        "router", "gateway", "timer", "callback", "workers", "admin", "node", "bench",
    ];
    let bad = violations(&["store", "schedule", "shard", "meta"], |p| {
        let top = p.split("::").next().unwrap_or_default();
        if top == "raft" {
            return p == "raft::GroupLogic" || p == "raft::LogTypes";
        }
        !upper.contains(&top)
    });
    assert!(
        bad.is_empty(),
        "a lower layer reaches up:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_check_sees_imports() {
    // The checker itself: it finds the paths it must judge (a check that cannot fail is none).
    let paths = crate_paths(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src/raft/group.rs"));
    assert!(paths.iter().any(|(_, p)| p.starts_with("store::txn")));
    let store = violations(&["store"], |p| p.starts_with("store"));
    assert!(store.iter().any(|v| v.contains("crate::ids")), "{store:?}");
}
