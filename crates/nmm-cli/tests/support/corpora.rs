//! The kubelet-answered corpora under `../shared` that the conformance and the
//! explain-agreement tests run; a new corpus is one more line in [`CORPORA`].
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Directories relative to `../shared`, each holding `NAME.yaml` + `NAME.expected.jsonl`.
pub const CORPORA: &[&str] = &["conformance", "conformance-next/heterogeneous"];

/// `../shared` next to this checkout, if present.
pub fn shared_dir() -> Option<PathBuf> {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    d.is_dir().then_some(d)
}

/// Every scenario file under `dir`, sorted.
pub fn scenarios(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries =
            std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: cannot list: {e}", d.display()));
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yaml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Every scenario of every corpus (panics when a corpus is missing or empty).
pub fn all_scenarios(shared: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    for c in CORPORA {
        let dir = shared.join(c);
        let found = scenarios(&dir);
        assert!(!found.is_empty(), "no scenarios under {}", dir.display());
        all.extend(found);
    }
    all
}
