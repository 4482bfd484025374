//! The bundled demo project, embedded in the binary and unpacked into the data dir.

use std::path::{Path, PathBuf};

const FILES: &[(&str, &str)] = &[
    (
        "pipedeck.toml",
        include_str!("../../assets/demo/pipedeck.toml"),
    ),
    (
        "demo-token.txt",
        include_str!("../../assets/demo/demo-token.txt"),
    ),
    (
        "web/src/main.rs",
        include_str!("../../assets/demo/web/src/main.rs"),
    ),
    (
        "web/scripts/lint.sh",
        include_str!("../../assets/demo/web/scripts/lint.sh"),
    ),
    (
        "web/scripts/banner.sh",
        include_str!("../../assets/demo/web/scripts/banner.sh"),
    ),
    (
        "web/scripts/deploy.sh",
        include_str!("../../assets/demo/web/scripts/deploy.sh"),
    ),
    (
        "infra/cloud.sh",
        include_str!("../../assets/demo/infra/cloud.sh"),
    ),
    (
        "infra/modules/vpc/main.tf",
        include_str!("../../assets/demo/infra/modules/vpc/main.tf"),
    ),
    (
        "infra/modules/subnet/main.tf",
        include_str!("../../assets/demo/infra/modules/subnet/main.tf"),
    ),
    (
        "infra/modules/db/main.tf",
        include_str!("../../assets/demo/infra/modules/db/main.tf"),
    ),
    (
        "infra/modules/lb/main.tf",
        include_str!("../../assets/demo/infra/modules/lb/main.tf"),
    ),
    (
        "infra/modules/dns/main.tf",
        include_str!("../../assets/demo/infra/modules/dns/main.tf"),
    ),
    // db's module calls a local child module, which calls one of its own and renders a
    // template: Terraform runs the module tree as it is.
    (
        "infra/modules/db/.terraform.lock.hcl",
        include_str!("../../assets/demo/infra/modules/db/.terraform.lock.hcl"),
    ),
    (
        "infra/modules/db/params/main.tf",
        include_str!("../../assets/demo/infra/modules/db/params/main.tf"),
    ),
    (
        "infra/modules/db/params/tpl/params.conf.tpl",
        include_str!("../../assets/demo/infra/modules/db/params/tpl/params.conf.tpl"),
    ),
    (
        "infra/modules/shared/tags/main.tf",
        include_str!("../../assets/demo/infra/modules/shared/tags/main.tf"),
    ),
];

/// Writes the demo into `data_dir/demo` (refreshing changed files); returns its project file.
pub fn unpack(data_dir: &Path) -> std::io::Result<PathBuf> {
    let root = data_dir.join("demo");
    for (rel, text) in FILES {
        let p = root.join(rel);
        if std::fs::read_to_string(&p).ok().as_deref() != Some(*text) {
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&p, text)?;
        }
    }
    Ok(root.join("pipedeck.toml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }

    #[test]
    fn every_infra_file_of_the_demo_is_embedded() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo");
        let mut files = Vec::new();
        walk(&root.join("infra"), &mut files);
        for f in files {
            let rel = f
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            assert!(
                FILES.iter().any(|(name, _)| *name == rel),
                "{rel} is not embedded"
            );
        }
    }
}
