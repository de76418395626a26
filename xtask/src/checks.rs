//! The steps of `cargo xtask ci` that are done here rather than by one
//! command:
//!
//! - [`quickstart`]: the README's quick start is `examples/quickstart.rs`
//!   word for word.
//! - [`rust_versions`]: no crate declares a smaller `rust-version` than one
//!   of its normal dependencies does.
//! - [`c_header`]: the committed C header is what cbindgen makes of
//!   `crates/sharedring-c` now.
//! - [`docs`]: `cargo doc --no-deps` of the workspace, in an order in
//!   which the links between its crates work.
//! - [`doc_links`]: no link in the generated docs was left unresolved as
//!   literal text such as `[spsc_core]`.
//!
//! Each returns `Err` with every problem it found, one per line.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The committed `crates/sharedring-c/include/sharedring.h` must be what
/// `cargo xtask c-header` writes from the crate's source now.
pub fn c_header() -> Result<(), String> {
    crate::c::header_check()
}

/// The README's quick start block must equal `examples/quickstart.rs`.
///
/// The block is the first fenced ```` ```rust ```` block after the
/// `## Quick start` heading.
pub fn quickstart() -> Result<(), String> {
    let root = workspace_root();
    let readme = read(&root.join("README.md"))?;
    let example = read(&root.join("examples/quickstart.rs"))?;
    let block = quickstart_block(&readme)
        .ok_or("README.md: no ```rust block after a `## Quick start` heading")?;
    if block == example {
        return Ok(());
    }
    let line = block
        .lines()
        .zip(example.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| block.lines().count().min(example.lines().count()));
    Err(format!(
        "README.md's quick start differs from examples/quickstart.rs from line {} of the \
         example on; copy the file into the README block",
        line + 1
    ))
}

/// The text of the first ```` ```rust ```` block after `## Quick start`,
/// with its final newline.
fn quickstart_block(readme: &str) -> Option<&str> {
    let section = &readme[readme.find("\n## Quick start\n")?..];
    let start = section.find("\n```rust\n")? + "\n```rust\n".len();
    let body = &section[start..];
    let end = body.find("\n```\n")? + 1;
    Some(&body[..end])
}

/// Every workspace crate's `rust-version` is at least the largest
/// `rust-version` declared in its normal and build dependencies
/// (transitively, default features, as locked, on this host's target).
///
/// Dev-dependencies are left out: they build the tests, not the crate. So
/// are optional dependencies no workspace crate enables (such as tokio
/// behind the `tokio` features), which the README lists separately.
pub fn rust_versions() -> Result<(), String> {
    let host = host_triple()?;
    let meta = cargo_metadata(&["--filter-platform", &host])?;
    let packages: HashMap<&str, &Value> = meta["packages"]
        .as_array()
        .ok_or("cargo metadata: no packages")?
        .iter()
        .filter_map(|p| Some((p["id"].as_str()?, p)))
        .collect();
    let nodes: HashMap<&str, &Value> = meta["resolve"]["nodes"]
        .as_array()
        .ok_or("cargo metadata: no resolve graph")?
        .iter()
        .filter_map(|n| Some((n["id"].as_str()?, n)))
        .collect();
    let members = meta["workspace_members"]
        .as_array()
        .ok_or("cargo metadata: no workspace members")?;

    let mut problems = Vec::new();
    for member in members.iter().filter_map(Value::as_str) {
        let pkg = packages[member];
        let name = pkg["name"].as_str().unwrap_or(member);
        let Some(declared) = pkg["rust_version"].as_str() else {
            problems.push(format!("{name} declares no rust-version"));
            continue;
        };
        // The dependency closure over normal and build edges.
        let mut seen = HashSet::new();
        let mut stack = vec![member];
        while let Some(id) = stack.pop() {
            for dep in nodes[id]["deps"].as_array().into_iter().flatten() {
                let needed = dep["dep_kinds"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|k| k["kind"].is_null() || k["kind"] == "build");
                let Some(dep_id) = dep["pkg"].as_str() else {
                    continue;
                };
                if needed && seen.insert(dep_id) {
                    stack.push(dep_id);
                }
            }
        }
        let highest = seen
            .iter()
            .filter_map(|id| {
                let p = packages[id];
                let rv = p["rust_version"].as_str()?;
                Some((version(rv), rv, p["name"].as_str()?, p["version"].as_str()?))
            })
            .max();
        match highest {
            Some((v, rv, dep, dep_version)) if v > version(declared) => problems.push(format!(
                "{name} declares rust-version {declared}, but its dependency {dep} \
                 {dep_version} declares {rv}"
            )),
            Some((_, rv, dep, dep_version)) => {
                eprintln!("    {name}: {declared} (highest dependency: {dep} {dep_version}, {rv})")
            }
            None => eprintln!("    {name}: {declared} (no dependency declares one)"),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// `1.89.0` and `1.89` as comparable numbers.
fn version(v: &str) -> (u64, u64, u64) {
    let mut parts = v.split('.').map(|p| p.parse().unwrap_or(0));
    let mut next = || parts.next().unwrap_or(0);
    (next(), next(), next())
}

/// The doc directories of the workspace's crates (`true`: a library),
/// which `cargo doc --workspace --no-deps` fills.
fn doc_dirs(meta: &Value) -> Result<Vec<(PathBuf, bool)>, String> {
    let doc = PathBuf::from(
        meta["target_directory"]
            .as_str()
            .ok_or("cargo metadata: no target_directory")?,
    )
    .join("doc");
    let members: HashSet<&str> = meta["workspace_members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut dirs = Vec::new();
    for pkg in meta["packages"].as_array().into_iter().flatten() {
        if !members.contains(pkg["id"].as_str().unwrap_or_default()) {
            continue;
        }
        for target in pkg["targets"].as_array().into_iter().flatten() {
            let mut kinds = target["kind"].as_array().into_iter().flatten();
            let is_lib = kinds.clone().any(|k| k == "lib");
            if is_lib || kinds.any(|k| k == "bin") {
                let name = target["name"].as_str().unwrap_or_default();
                dirs.push((doc.join(name.replace('-', "_")), is_lib));
            }
        }
    }
    Ok(dirs)
}

/// `cargo doc --no-deps --all-features` of every crate of the workspace,
/// with `RUSTDOCFLAGS="-D warnings"`, in dependency order: first the
/// crates that depend on no other crate of the workspace, then those that
/// depend only on those, and so on (one `cargo doc -p .. -p ..` each).
///
/// One `cargo doc --workspace --no-deps` is not enough: rustdoc links to
/// another crate's items only if that crate's doc directory exists when
/// rustdoc starts (rust-lang/cargo#8487), cargo deletes a crate's doc
/// directory when it starts documenting it, and with `--no-deps` it
/// documents the crates in no particular order. `sharedring`'s links to
/// `spsc_core` and `shmem_seal` then come out as literal `[spsc_core]`
/// text, with no warning, whenever the two run at the same time.
pub fn docs() -> Result<(), String> {
    let meta = cargo_metadata(&["--no-deps"])?;
    let packages: Vec<&Value> = meta["packages"].as_array().into_iter().flatten().collect();
    let names: HashSet<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    // Each crate with the workspace crates it needs to build.
    let mut waiting: Vec<(&str, Vec<&str>)> = packages
        .iter()
        .filter_map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|d| d["kind"].is_null() || d["kind"] == "build")
                .filter_map(|d| d["name"].as_str())
                .filter(|d| names.contains(d))
                .collect();
            Some((p["name"].as_str()?, deps))
        })
        .collect();
    let mut done = HashSet::new();
    while !waiting.is_empty() {
        let (ready, rest): (Vec<_>, Vec<_>) = waiting
            .into_iter()
            .partition(|(_, deps)| deps.iter().all(|d| done.contains(d)));
        if ready.is_empty() {
            return Err("the workspace's crates depend on each other in a cycle".into());
        }
        let mut cmd = Command::new("cargo");
        cmd.args(["doc", "--no-deps", "--all-features"]);
        for (name, _) in &ready {
            cmd.args(["-p", name]);
        }
        cmd.env("RUSTDOCFLAGS", "-D warnings")
            .current_dir(workspace_root());
        let shown: Vec<String> = ready.iter().map(|(n, _)| format!("-p {n}")).collect();
        eprintln!("    cargo doc --no-deps --all-features {}", shown.join(" "));
        let status = cmd
            .status()
            .map_err(|e| format!("could not start cargo doc: {e}"))?;
        if !status.success() {
            return Err(format!("cargo doc failed: {status}"));
        }
        done.extend(ready.into_iter().map(|(name, _)| name));
        waiting = rest;
    }
    Ok(())
}

/// The generated docs of the workspace's crates (`cargo doc` first)
/// contain no link that rustdoc left as literal text, such as
/// `[spsc_core]`, `[crate_name]` or `` [`shmem_seal::Error`] ``.
///
/// rustdoc fails on most broken links (`-D warnings`), but not on all: not
/// on a link into a crate whose docs it did not find (see [`docs`]), not
/// where `rustdoc::broken_intra_doc_links` is allowed, not on escaped
/// brackets (`\[spsc_core\]`), not inside HTML blocks. This reads the
/// prose of every doc block (the `docblock` elements, without their code
/// blocks) of every page, and reports `[`, a path, `]`, where the path
/// (identifiers joined by `::`, perhaps in inline code, perhaps with `()`
/// or `!` after it) is one that should have been a link:
///
/// - it starts with a lowercase identifier (a crate, a module, a function,
///   a macro, `crate`, `self`, `super`) that is not the name of a
///   third-party crate, or
/// - it starts with the name of an item that has a page in the
///   workspace's docs (`[Error::TooSmall]`, `[Sender]`).
///
/// Links into third-party crates are left alone: with `--no-deps` their
/// docs are not there, so rustdoc leaves those links as text even though
/// they work on docs.rs (`` [`Errno`] `` in `shmem_seal` is one).
/// Brackets in code blocks, inline code and signatures (`&[T]`,
/// `#[test]`, `buf[n]`) are not links and are not looked at.
pub fn doc_links() -> Result<(), String> {
    let meta = cargo_metadata(&[])?;
    let members: HashSet<&str> = meta["workspace_members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut third_party = HashSet::new();
    for pkg in meta["packages"].as_array().into_iter().flatten() {
        if members.contains(pkg["id"].as_str().unwrap_or_default()) {
            continue;
        }
        for target in pkg["targets"].as_array().into_iter().flatten() {
            if let Some(name) = target["name"].as_str() {
                third_party.insert(name.replace('-', "_"));
            }
        }
    }
    let mut problems = Vec::new();
    let mut pages = Vec::new();
    for (dir, is_lib) in doc_dirs(&meta)? {
        if dir.join("index.html").is_file() {
            pages.extend(html_files(&dir)?);
        } else if is_lib {
            problems.push(format!("{}: no docs; run `cargo doc` first", dir.display()));
        }
    }
    // `struct.Sender.html` and the like: items that have a page.
    let items: HashSet<&str> = pages
        .iter()
        .filter_map(|p| {
            p.file_name()?
                .to_str()?
                .strip_suffix(".html")?
                .split_once('.')
        })
        .map(|(_, name)| name)
        .collect();
    let should_link = |path: &str| {
        let first = path.split("::").next().unwrap_or_default();
        let lowercase = first.starts_with(|c: char| c.is_ascii_lowercase() || c == '_');
        (lowercase && !third_party.contains(first)) || items.contains(first)
    };
    for page in &pages {
        let html = read(page)?;
        for (path, around) in bracketed_paths(&html) {
            if should_link(&path) {
                problems.push(format!(
                    "{}: unresolved link left as text, {around}",
                    page.display()
                ));
            }
        }
    }
    eprintln!("    {} pages looked at", pages.len());
    if problems.is_empty() {
        return Ok(());
    }
    problems.push(
        "(links into another crate of the workspace come out like this from a plain \
         `cargo doc --workspace --no-deps`: `cargo clean --doc`, then `cargo xtask check docs`)"
            .into(),
    );
    Err(problems.join("\n"))
}

/// Every `.html` file under `dir`.
fn html_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| format!("{}: {e}", d.display()))?.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "html") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Every `[path]` in the prose of the doc blocks of one rustdoc page (see
/// [`is_path`]), with a little of the text around it.
fn bracketed_paths(html: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<div class=\"docblock") {
        let block = &rest[start..];
        let Some(open_end) = block.find('>') else {
            break;
        };
        let body_len = matching_div_end(&block[open_end + 1..]);
        let text = prose(&block[open_end + 1..open_end + 1 + body_len]);
        for (open, _) in text.match_indices('[') {
            let after = &text[open + 1..];
            let Some(close) = after.find(']') else {
                continue;
            };
            let inside = &after[..close];
            // `[`x`]` renders as `[<code>x</code>]`.
            let path = inside
                .strip_prefix(CODE)
                .and_then(|p| p.strip_suffix(CODE))
                .unwrap_or(inside);
            if is_path(path) {
                let around = context(&text, open, open + close + 2).replace(CODE, "`");
                found.push((path.to_owned(), around));
            }
        }
        rest = &block[open_end + 1 + body_len..];
    }
    found
}

/// Marks where inline code was in [`prose`]: a character that HTML text
/// does not contain.
const CODE: char = '\u{1}';

/// The length of `html` up to the `</div>` that closes a `<div>` opened
/// just before it (all of `html` if there is none).
fn matching_div_end(html: &str) -> usize {
    let mut depth = 1;
    let mut i = 0;
    while let Some(lt) = html[i..].find('<') {
        let at = i + lt;
        let tag = &html[at..];
        if tag.starts_with("</div>") {
            depth -= 1;
            if depth == 0 {
                return at;
            }
        } else if tag.starts_with("<div ") || tag.starts_with("<div>") {
            depth += 1;
        }
        i = at + 1;
    }
    html.len()
}

/// The text of a doc block: comments and `pre`, `script` and `style`
/// elements (code blocks) replaced by a space, inline code kept between
/// two [`CODE`] marks only if it is a path (other inline code, such as
/// `buf[n]`, is replaced by a space), and every other tag removed, its
/// text kept.
fn prose(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        out.push_str(&rest[..lt]);
        rest = &rest[lt..];
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.find("-->").map_or("", |e| &after[e + 3..]);
            out.push(' ');
            continue;
        }
        let element = ["pre", "code", "script", "style"].into_iter().find(|el| {
            rest[1..].starts_with(el)
                && matches!(rest.as_bytes().get(1 + el.len()), Some(b'>' | b' '))
        });
        if let Some(el) = element {
            let close = format!("</{el}>");
            let (inner, after) = match rest.find(&close) {
                Some(e) => (&rest[..e], &rest[e + close.len()..]),
                None => (rest, ""),
            };
            let inner = inner.find('>').map_or("", |s| &inner[s + 1..]);
            if el == "code" && is_path(inner) {
                out.push(CODE);
                out.push_str(inner);
                out.push(CODE);
            } else {
                out.push(' ');
            }
            rest = after;
            continue;
        }
        rest = rest.find('>').map_or("", |e| &rest[e + 1..]);
    }
    out.push_str(rest);
    out
}

/// `a_b`, `A::b`, `crate::x::Y`, `f()`, `m!`: identifiers (ASCII letters,
/// digits and `_`, not starting with a digit) joined by `::`.
fn is_path(s: &str) -> bool {
    let s = s
        .strip_suffix("()")
        .or_else(|| s.strip_suffix('!'))
        .unwrap_or(s);
    !s.is_empty()
        && s.split("::").all(|ident| {
            ident
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && ident.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// Up to 40 characters of `text` either side of `start..end`, on one line.
fn context(text: &str, start: usize, end: usize) -> String {
    let mut from = start.saturating_sub(40);
    while !text.is_char_boundary(from) {
        from -= 1;
    }
    let mut to = (end + 40).min(text.len());
    while !text.is_char_boundary(to) {
        to += 1;
    }
    format!(
        "…{}…",
        text[from..to]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    )
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// `cargo metadata --format-version 1` with `args`, in the workspace root.
fn cargo_metadata(args: &[&str]) -> Result<Value, String> {
    let out = Command::new("cargo")
        .args(["metadata", "--format-version", "1"])
        .args(args)
        .current_dir(workspace_root())
        .output()
        .map_err(|e| format!("could not start cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("cargo metadata: {e}"))
}

/// The host's target triple, from `rustc -vV`.
fn host_triple() -> Result<String, String> {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .map_err(|e| format!("could not start rustc: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .ok_or_else(|| "rustc -vV: no host line".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_bracketed_paths_in_prose_only() {
        let page = concat!(
            r#"<h4 class="code-header">fn f(src: &amp;[T])</h4>"#,
            r#"<div class="docblock"><p>See [spsc_core] and [crate::Foo] and [f()]."#,
            r#" Not [0, 1], not <code>buf[n]</code>, not [a b].</p>"#,
            r#"<div class="example-wrap"><pre class="rust"><code>#[test]"#,
            r#" let a = b[c];</code></pre></div><p>[<code>Errno</code>]"#,
            r#" and <a href="x.html"><code>Found</code></a></p></div>"#,
            r#"<div class="docblock"><p>[<em>vec!</em>]</p></div>"#,
        );
        let paths: Vec<String> = bracketed_paths(page).into_iter().map(|(p, _)| p).collect();
        assert_eq!(paths, ["spsc_core", "crate::Foo", "f()", "Errno", "vec!"]);
    }

    #[test]
    fn quickstart_block_is_the_rust_block_after_the_heading() {
        let readme = "# x\n```rust\nno\n```\n\n## Quick start\n\nText.\n\n```rust\nfn main() {}\n```\n\n## Next\n";
        assert_eq!(quickstart_block(readme), Some("fn main() {}\n"));
    }

    #[test]
    fn versions_compare_as_numbers() {
        assert!(version("1.89.0") > version("1.87"));
        assert!(version("1.100") > version("1.99.9"));
        assert_eq!(version("1.82"), version("1.82.0"));
    }
}
