//! The layering of `src/` (ARCHITECTURE.md, "Layers"), checked from the source (the C API is
//! another crate, `capi/`, which the compiler holds to the public API): every
//! `crate::…` path in a module must name a module of a lower layer, and ARCHITECTURE.md must
//! name every top-level module. Comments are ignored; test code counts like any other.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Each top-level module of `src/` and its layer, lowest first. Modules of the same layer
/// may not import each other.
const LAYERS: &[(&str, u32)] = &[
    ("error", 0),
    ("isa", 1),
    ("tools", 2),
    ("program", 3),
    ("exec", 4),
    ("interpreter", 5),
    ("jit", 5),
    ("vm", 6),
    ("kernel", 7),
    ("compat", 8),
];

/// Modules outside the layering: the unit tests' prelude (imports nothing, used by tests of
/// every layer).
const UNLAYERED: &[&str] = &["test_prelude"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`None` for `lib.rs` and the CLI).
fn top_level(path: &Path) -> Option<String> {
    let rel = path.strip_prefix(src()).expect("inside src");
    let first = rel.components().next()?.as_os_str().to_str()?.to_owned();
    let name = first.strip_suffix(".rs").unwrap_or(&first).to_owned();
    (name != "lib" && name != "bin").then_some(name)
}

/// `text` without `//` comments (line and doc comments) and without string literals' contents.
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut in_string = false;
        let mut previous = ' ';
        let mut kept = String::new();
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if !in_string && c == '/' && chars.get(i + 1) == Some(&'/') {
                break;
            }
            if c == '"' && previous != '\\' && previous != '\'' {
                in_string = !in_string;
            } else if !in_string {
                kept.push(c);
            }
            previous = c;
            i += 1;
        }
        out.push_str(&kept);
        out.push('\n');
    }
    out
}

/// The top-level modules `code` names through `crate::` paths, including grouped imports
/// (`use crate::{a::X, b};`).
fn imported_modules(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let preceded_by_ident = rest[..at]
            .chars()
            .last()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$' || c == ':');
        rest = &rest[at + "crate::".len()..];
        if preceded_by_ident {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.push(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            found.push(name);
        }
    }
    found
}

/// For every module, the modules it imports, with a file that does it.
fn import_graph() -> BTreeMap<String, BTreeMap<String, PathBuf>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let top_levels: Vec<String> = files.iter().filter_map(|f| top_level(f)).collect();
    let mut graph: BTreeMap<String, BTreeMap<String, PathBuf>> = BTreeMap::new();
    for file in &files {
        let Some(from) = top_level(file) else {
            continue;
        };
        let code = code_only(&fs::read_to_string(file).expect("read source"));
        for to in imported_modules(&code) {
            // Re-exports at the crate root (`crate::Vm`, `crate::HelperFn`) are not modules;
            // only paths through a top-level module count.
            if to != from && top_levels.contains(&to) {
                graph
                    .entry(from.clone())
                    .or_default()
                    .entry(to)
                    .or_insert_with(|| file.clone());
            }
        }
    }
    graph
}

fn layer_of(module: &str) -> Option<u32> {
    LAYERS
        .iter()
        .find(|(name, _)| *name == module)
        .map(|&(_, layer)| layer)
}

#[test]
fn every_top_level_module_has_a_layer() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    for module in files.iter().filter_map(|f| top_level(f)) {
        assert!(
            layer_of(&module).is_some() || UNLAYERED.contains(&module.as_str()),
            "src/{module} has no layer: add it to LAYERS here and to ARCHITECTURE.md"
        );
    }
}

#[test]
fn imports_point_only_to_lower_layers() {
    let mut wrong = Vec::new();
    for (from, imports) in import_graph() {
        let Some(from_layer) = layer_of(&from) else {
            continue;
        };
        for (to, file) in imports {
            if UNLAYERED.contains(&to.as_str()) {
                continue;
            }
            let to_layer = layer_of(&to).unwrap_or(u32::MAX);
            if to_layer >= from_layer {
                wrong.push(format!(
                    "{from} (layer {from_layer}) imports {to} (layer {to_layer}) in {}",
                    file.display()
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_checker_sees_imports() {
    // The parser itself: paths, grouped imports, comments and strings.
    let code = code_only(
        "use crate::exec::memory::Regions; // crate::vm is only mentioned\n\
         let s = \"crate::kernel\";\nuse crate::{isa::Insn, program};\nfoo::crate::bar;",
    );
    assert_eq!(imported_modules(&code), ["exec", "isa", "program"]);
    // And the real graph is not empty (the engines use the bounds model).
    let graph = import_graph();
    assert!(graph["interpreter"].contains_key("exec"));
    assert!(graph["vm"].contains_key("jit"));
}

#[test]
fn architecture_names_every_top_level_module() {
    let architecture =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md"))
            .expect("read ARCHITECTURE.md");
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut missing: Vec<String> = files
        .iter()
        .filter_map(|f| top_level(f))
        .filter(|m| !architecture.contains(&format!("`{m}`")))
        .collect();
    missing.sort();
    missing.dedup();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md does not name these modules of src/: {missing:?}"
    );
}
