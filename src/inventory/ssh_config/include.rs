//! `Include` paths: `~` from `$HOME`, relative paths under `~/.ssh/` (the rule for user
//! configs, `-F` files included), and `*`/`?` globs over path components, sorted, hidden files
//! left out, a pattern that matches nothing ignored (as glob(3) and OpenSSH do).

use std::path::{Component, Path, PathBuf};

use super::pattern::matches;
use super::Context;

/// The files an `Include` argument names, in order.
pub fn expand(pattern: &str, context: &Context) -> Result<Vec<PathBuf>, String> {
    if pattern.contains('[') {
        return Err(format!(
            "Include `{pattern}`: `[…]` classes are not supported, only `*` and `?`"
        ));
    }
    let path = if let Some(rest) = pattern.strip_prefix("~/") {
        context.home.join(rest)
    } else if pattern == "~" {
        context.home.clone()
    } else if pattern.starts_with('~') {
        return Err(format!("Include `{pattern}`: `~user` is not supported"));
    } else if pattern.starts_with('/') {
        PathBuf::from(pattern)
    } else {
        context.home.join(".ssh").join(pattern)
    };
    Ok(glob(&path))
}

/// Existing paths matching `path`, whose components may hold `*` and `?`.
fn glob(path: &Path) -> Vec<PathBuf> {
    let mut found = vec![PathBuf::new()];
    for component in path.components() {
        let text = component.as_os_str().to_string_lossy();
        let wild = matches!(component, Component::Normal(_)) && text.contains(['*', '?']);
        found = found
            .into_iter()
            .flat_map(|base| {
                if wild {
                    children_matching(&base, &text)
                } else {
                    vec![base.join(component)]
                }
            })
            .collect();
    }
    found.retain(|path| path.exists());
    found
}

fn children_matching(dir: &Path, pattern: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| !name.starts_with('.') && matches(name, pattern))
        .collect();
    names.sort();
    names.into_iter().map(|name| dir.join(name)).collect()
}
