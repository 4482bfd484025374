//! `pipedeck man [COMMAND…] [--dir DIR]`: man pages (roff) from the clap
//! definitions, with clap_mangen. One page a command, named as git and cargo name
//! theirs: `pipedeck.1`, `pipedeck-approve.1`, `pipedeck-infra-run.1`.

use std::path::Path;

use clap::CommandFactory;

use super::{Cli, exit};

/// The root command as the pages describe it (`help` is not a page).
fn root() -> clap::Command {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// Prints the page of `words` (`[]`: pipedeck, `["infra", "run"]` or `["infra-run"]`).
pub fn print(words: &[String]) -> i32 {
    let root = root();
    let words: Vec<&str> = words.iter().flat_map(|w| w.split('-')).collect();
    // Subcommand names may hold dashes themselves (`stack-job`, `approve-env`): try
    // the longest name first at each level.
    let Some(cmd) = find(&root, &words) else {
        let mut names = Vec::new();
        all_pages(&root, &mut names);
        eprintln!(
            "error: no man page for `{}`\n  hint: pages are {}",
            words.join(" "),
            names.join(", ")
        );
        return exit::USAGE;
    };
    let mut out = Vec::new();
    if let Err(e) = page(cmd).render(&mut out) {
        eprintln!("error: cannot render the man page: {e}");
        return exit::RUN_FAILED;
    }
    // A failed write is reported once, and sets the exit code (141 for `| head`).
    if let Err(e) = std::io::Write::write_all(&mut std::io::stdout(), &out) {
        super::output::stdout_failed(&e);
    }
    exit::OK
}

fn page(cmd: &clap::Command) -> clap_mangen::Man {
    clap_mangen::Man::new(cmd.clone())
        .source(format!("pipedeck {}", env!("CARGO_PKG_VERSION")))
        .manual("pipedeck manual")
}

fn find<'a>(cmd: &'a clap::Command, words: &[&str]) -> Option<&'a clap::Command> {
    if words.is_empty() {
        return Some(cmd);
    }
    (1..=words.len()).rev().find_map(|n| {
        let name = words[..n].join("-");
        let sub = cmd.find_subcommand(&name)?;
        find(sub, &words[n..])
    })
}

/// Every command that has a page, depth first.
fn commands<'a>(cmd: &'a clap::Command, out: &mut Vec<&'a clap::Command>) {
    out.push(cmd);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        commands(sub, out);
    }
}

fn all_pages(cmd: &clap::Command, out: &mut Vec<String>) {
    let mut cmds = Vec::new();
    commands(cmd, &mut cmds);
    out.extend(cmds.into_iter().map(page_name));
}

fn page_name(cmd: &clap::Command) -> String {
    cmd.get_display_name().unwrap_or(cmd.get_name()).to_string()
}

/// Writes every page into `dir` (created if missing), for `share/man/man1`.
pub fn write_all(dir: &Path) -> i32 {
    let root = root();
    let mut cmds = Vec::new();
    commands(&root, &mut cmds);
    let written = std::fs::create_dir_all(dir).and_then(|()| {
        cmds.iter()
            .try_for_each(|c| page(c).generate_to(dir).map(drop))
    });
    match written {
        Ok(()) => {
            outln!("{}: {} pages", dir.display(), cmds.len());
            exit::OK
        }
        Err(e) => {
            eprintln!("error: cannot write man pages into {}: {e}", dir.display());
            exit::RUN_FAILED
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_found_by_words_or_page_name() {
        let root = root();
        let name = |w: &[&str]| find(&root, w).map(page_name);
        assert_eq!(name(&[]).as_deref(), Some("pipedeck"));
        assert_eq!(name(&["approve"]).as_deref(), Some("pipedeck-approve"));
        assert_eq!(
            name(&["infra", "approve", "env"]).as_deref(),
            Some("pipedeck-infra-approve-env")
        );
        assert_eq!(
            name(&["stack", "job", "preflight"]).as_deref(),
            Some("pipedeck-stack-job-preflight")
        );
        assert_eq!(name(&["nonsense"]), None);
    }
}
