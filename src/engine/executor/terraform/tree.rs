//! A module as it is: the root module and every local child module it calls (to any
//! depth, `./x` or `../x`), found by reading their `module` blocks, copied whole into
//! the resource's state dir with their layout kept, so relative sources, `path.module`
//! files, templates and `.terraform.lock.hcl` all work as in the module's own folder.

use std::collections::BTreeSet;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Where the copy of the module tree goes, inside the state dir.
pub const TREE_DIR: &str = "tree";

/// Why a module tree could not be read or copied.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("cannot read the module {}: {source}", module.display())]
    Read { module: PathBuf, source: io::Error },
    /// A `module` block's local source is not a folder.
    #[error("module \"{name}\" in {} has source \"{source_path}\", which does not exist ({})", caller.display(), resolved.display())]
    MissingChild {
        caller: PathBuf,
        name: String,
        source_path: String,
        resolved: PathBuf,
    },
    #[error("cannot copy {} to {}: {source}", from.display(), to.display())]
    Copy {
        from: PathBuf,
        to: PathBuf,
        source: io::Error,
    },
}

/// One `module` block: its label and its `source`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleCall {
    pub name: String,
    pub source: String,
}

/// Whether a source is a local path (Terraform's rule: it starts with `./` or `../`).
fn is_local(source: &str) -> bool {
    source.starts_with("./") || source.starts_with("../")
}

/// The `module` blocks of every `.tf` and `.tf.json` file of one module folder.
pub fn module_calls(dir: &Path) -> Result<Vec<ModuleCall>, TreeError> {
    let read = |source| TreeError::Read {
        module: dir.to_path_buf(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let name = f.file_name().unwrap_or_default().to_string_lossy();
        if name.ends_with(".tf") {
            out.extend(hcl_module_calls(
                &std::fs::read_to_string(&f).map_err(read)?,
            ));
        } else if name.ends_with(".tf.json") {
            let text = std::fs::read_to_string(&f).map_err(read)?;
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                for (name, body) in v["module"].as_object().into_iter().flatten() {
                    if let Some(source) = body["source"].as_str() {
                        out.push(ModuleCall {
                            name: name.clone(),
                            source: source.to_string(),
                        });
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The `module "NAME" { source = "…" }` blocks of an HCL file: a scan of top-level
/// blocks that skips strings, comments and heredocs (what Terraform itself would
/// reject is left for Terraform to report).
pub fn hcl_module_calls(text: &str) -> Vec<ModuleCall> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    // The module block being read: its label, and its source once seen.
    let mut current: Option<(String, Option<String>)> = None;
    let mut heredoc: Option<String> = None;
    let mut in_comment = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(end) = &heredoc {
            if trimmed == end {
                heredoc = None;
            }
            continue;
        }
        if in_comment {
            in_comment = !line.contains("*/");
            continue;
        }
        if trimmed.starts_with('#') || trimmed.starts_with("//") {
            continue;
        }
        if depth == 0 && current.is_none() {
            let mut words = trimmed.split_whitespace();
            if words.next() == Some("module")
                && let Some(label) = words.next()
                && label.len() >= 2
                && label.starts_with('"')
                && label.ends_with('"')
            {
                current = Some((label[1..label.len() - 1].to_string(), None));
            }
        }
        if depth == 1
            && let Some((_, source @ None)) = current.as_mut()
        {
            *source = attribute(trimmed, "source");
        }
        // One-line blocks: `module "x" { source = "./x" }`.
        if depth == 0
            && let Some((_, source @ None)) = current.as_mut()
            && let Some(i) = trimmed.find('{')
        {
            *source = attribute(trimmed[i + 1..].trim(), "source");
        }
        let mut in_string = false;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if in_string => {
                    chars.next();
                }
                '"' => in_string = !in_string,
                '#' if !in_string => break,
                '/' if !in_string && chars.peek() == Some(&'/') => break,
                '/' if !in_string && chars.peek() == Some(&'*') => {
                    in_comment = !line.contains("*/");
                    break;
                }
                '{' if !in_string => depth += 1,
                '}' if !in_string => {
                    depth = depth.saturating_sub(1);
                    if depth == 0
                        && let Some((name, source)) = current.take()
                        && let Some(source) = source
                    {
                        out.push(ModuleCall { name, source });
                    }
                }
                _ => {}
            }
        }
        if let Some(i) = line.find("<<") {
            let tag = line[i + 2..].trim_start_matches('-').trim();
            if !tag.is_empty() && tag.chars().all(|c| c.is_alphanumeric() || c == '_') {
                heredoc = Some(tag.to_string());
            }
        }
    }
    out
}

/// `name = "value"` at the start of `text`: the value.
fn attribute(text: &str, name: &str) -> Option<String> {
    let rest = text.strip_prefix(name)?.trim_start().strip_prefix('=')?;
    let rest = rest.trim_start().strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_string())
}

/// `a/b/../c` as `a/c`, without touching the filesystem.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The root module's folder and every local child module folder it reaches, each
/// once; a local source that is not a folder is an error naming the calling module.
pub fn local_modules(root: &Path) -> Result<Vec<PathBuf>, TreeError> {
    let root = normalize(root);
    let mut seen = BTreeSet::from([root.clone()]);
    let mut todo = vec![root];
    while let Some(dir) = todo.pop() {
        for call in module_calls(&dir)? {
            if !is_local(&call.source) {
                continue;
            }
            let resolved = normalize(&dir.join(&call.source));
            if !resolved.is_dir() {
                return Err(TreeError::MissingChild {
                    caller: dir.clone(),
                    name: call.name,
                    source_path: call.source,
                    resolved,
                });
            }
            if seen.insert(resolved.clone()) {
                todo.push(resolved);
            }
        }
    }
    Ok(seen.into_iter().collect())
}

/// The deepest folder holding all of `dirs`.
fn common_ancestor(dirs: &[PathBuf]) -> PathBuf {
    let mut acc: Option<PathBuf> = None;
    for d in dirs {
        acc = Some(match acc {
            None => d.clone(),
            Some(a) => a
                .components()
                .zip(d.components())
                .take_while(|(x, y)| x == y)
                .map(|(x, _)| x)
                .collect(),
        });
    }
    acc.unwrap_or_default()
}

/// Files never copied: Terraform's own working data and local state.
fn skipped(name: &str) -> bool {
    name == ".terraform"
        || name == ".git"
        || name.starts_with("terraform.tfstate")
        || name == "terraform.tfstate.d"
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), TreeError> {
    let err = |source| TreeError::Copy {
        from: from.to_path_buf(),
        to: to.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(to).map_err(err)?;
    for e in std::fs::read_dir(from).map_err(err)?.flatten() {
        let name = e.file_name();
        if skipped(&name.to_string_lossy()) {
            continue;
        }
        let (src, dst) = (e.path(), to.join(&name));
        let ty = std::fs::metadata(&src).map_err(err)?;
        if ty.is_dir() {
            copy_dir(&src, &dst)?;
        } else if let Err(source) = std::fs::copy(&src, &dst) {
            return Err(TreeError::Copy {
                from: src,
                to: dst,
                source,
            });
        }
    }
    Ok(())
}

/// Replaces `into` with a copy of the module tree of `root`; returns the folder of the
/// root module inside the copy (where Terraform runs).
pub fn copy_tree(root: &Path, into: &Path) -> Result<PathBuf, TreeError> {
    copy_or_find(root, into, true)
}

/// The folder of the root module inside the copy at `into` made before (left as it
/// is: a Slurm job re-attached to after a restart still runs in it).
pub fn copied_root(root: &Path, into: &Path) -> Result<PathBuf, TreeError> {
    copy_or_find(root, into, false)
}

fn copy_or_find(root: &Path, into: &Path, copy: bool) -> Result<PathBuf, TreeError> {
    let dirs = local_modules(root)?;
    let base = common_ancestor(&dirs);
    let root_in = |base: &Path| {
        let root = normalize(root);
        into.join(root.strip_prefix(base).unwrap_or(&root))
    };
    if !copy {
        return Ok(root_in(&base));
    }
    if into.exists() {
        std::fs::remove_dir_all(into).map_err(|source| TreeError::Copy {
            from: root.to_path_buf(),
            to: into.to_path_buf(),
            source,
        })?;
    }
    let mut copied: Vec<&PathBuf> = Vec::new();
    for d in &dirs {
        // A module inside one already copied came with it.
        if copied.iter().any(|c| d.starts_with(c)) {
            continue;
        }
        let rel = d.strip_prefix(&base).unwrap_or(d);
        copy_dir(d, &into.join(rel))?;
        copied.push(d);
    }
    Ok(root_in(&base))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, source: &str) -> ModuleCall {
        ModuleCall {
            name: name.into(),
            source: source.into(),
        }
    }

    #[test]
    fn finds_module_blocks_and_their_sources() {
        let text = r#"
# module "commented" { source = "./no" }
variable "x" { default = "{" }
module "net" {
  source = "./net"
  x      = "}"
}
module "one" { source = "../shared/one" }
resource "terraform_data" "r" {
  input = <<EOT
module "inside" {
  source = "./heredoc"
}
EOT
}
module "registry" {
  source  = "hashicorp/consul/aws"
  version = "0.1.0"
}
/* module "block" { source = "./c" } */
"#;
        assert_eq!(
            hcl_module_calls(text),
            [
                call("net", "./net"),
                call("one", "../shared/one"),
                call("registry", "hashicorp/consul/aws"),
            ]
        );
    }

    #[test]
    fn copies_two_levels_of_children_and_names_a_missing_one() {
        let tmp = tempfile::tempdir().unwrap();
        let m = tmp.path().join("modules");
        let root = m.join("app");
        std::fs::create_dir_all(root.join("net/tpl")).unwrap();
        std::fs::create_dir_all(m.join("shared/tags")).unwrap();
        std::fs::write(
            root.join("main.tf"),
            "module \"net\" { source = \"./net\" }\n",
        )
        .unwrap();
        std::fs::write(root.join(".terraform.lock.hcl"), "# lock\n").unwrap();
        std::fs::write(root.join("terraform.tfstate"), "{}").unwrap();
        std::fs::write(
            root.join("net/main.tf"),
            "module \"tags\" {\n  source = \"../../shared/tags\"\n}\n",
        )
        .unwrap();
        std::fs::write(root.join("net/tpl/doc.tpl"), "${x}").unwrap();
        std::fs::write(m.join("shared/tags/main.tf"), "").unwrap();

        let into = tmp.path().join("state/tree");
        let work = copy_tree(&root, &into).unwrap();
        assert_eq!(work, into.join("app"));
        for f in [
            "app/main.tf",
            "app/.terraform.lock.hcl",
            "app/net/main.tf",
            "app/net/tpl/doc.tpl",
            "shared/tags/main.tf",
        ] {
            assert!(into.join(f).is_file(), "{f}");
        }
        assert!(!into.join("app/terraform.tfstate").exists());

        std::fs::remove_dir_all(m.join("shared/tags")).unwrap();
        let e = copy_tree(&root, &into).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "module \"tags\" in {} has source \"../../shared/tags\", which does not exist ({})",
                root.join("net").display(),
                m.join("shared/tags").display()
            )
        );
    }
}
