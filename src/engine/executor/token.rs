//! Finding a step's processes: the token in their environment, and `/proc`.

use std::fmt;
use std::time::Duration;

/// The variable every process of a step inherits.
pub const VAR: &str = "PIPEDECK_STEP_TOKEN";

/// Which step a process belongs to: the engine's store (its data dir), the run and
/// the step, and how it is to be stopped (SIGINT first for Terraform, else SIGTERM,
/// then SIGKILL after the grace).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StepToken {
    pub store: String,
    pub run: i64,
    pub step: i64,
    pub interrupt_first: bool,
    pub grace: Duration,
}

impl fmt::Display for StepToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = if self.interrupt_first { "int" } else { "term" };
        write!(
            f,
            "{}:{}:{}:{how}:{}",
            self.store,
            self.run,
            self.step,
            self.grace.as_millis()
        )
    }
}

impl StepToken {
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split(':');
        let store = parts.next()?.to_string();
        let run = parts.next()?.parse().ok()?;
        let step = parts.next()?.parse().ok()?;
        let interrupt_first = match parts.next()? {
            "int" => true,
            "term" => false,
            _ => return None,
        };
        let grace = Duration::from_millis(parts.next()?.parse().ok()?);
        if store.is_empty() || parts.next().is_some() {
            return None;
        }
        Some(Self {
            store,
            run,
            step,
            interrupt_first,
            grace,
        })
    }

    /// The first signal that asks its processes to stop.
    pub fn first_signal(&self) -> i32 {
        if self.interrupt_first {
            libc::SIGINT
        } else {
            libc::SIGTERM
        }
    }
}

/// What `/proc` says of a process.
#[derive(Debug, Clone, PartialEq)]
pub struct Proc {
    pub pid: i32,
    pub zombie: bool,
    /// Its process group.
    pub group: i32,
    /// Its start, in clock ticks since boot: with the pid, it names the process (a
    /// pid can be reused, the pair cannot).
    pub start: u64,
    pub token: Option<StepToken>,
}

impl Proc {
    /// `None` when there is no such process (or it cannot be read).
    pub fn read(pid: i32) -> Option<Self> {
        let (zombie, group, start) = stat(pid)?;
        // A zombie has no environment left to read.
        let token = if zombie { None } else { environ_token(pid) };
        Some(Self {
            pid,
            zombie,
            group,
            start,
            token,
        })
    }
}

/// A process's start time (clock ticks since boot), if it exists.
pub fn start_time(pid: i32) -> Option<u64> {
    stat(pid).map(|(_, _, start)| start)
}

/// From `/proc/PID/stat`: whether it is a zombie, its process group, its start time.
fn stat(pid: i32) -> Option<(bool, i32, u64)> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold anything: parse after it.
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // Fields from the third (state); starttime is the 22nd.
    let zombie = matches!(fields.first(), Some(&"Z") | Some(&"X"));
    let group = fields.get(2)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((zombie, group, start))
}

/// The step token in a process's environment, if it has one we can read.
fn environ_token(pid: i32) -> Option<StepToken> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let prefix = format!("{VAR}=");
    env.split(|&b| b == 0)
        .find_map(|kv| kv.strip_prefix(prefix.as_bytes()))
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(StepToken::parse)
}

/// The children of every thread of process `pid`.
pub fn children(pid: i32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for task in tasks.flatten() {
        let path = task.path().join("children");
        if let Ok(text) = std::fs::read_to_string(path) {
            out.extend(
                text.split_ascii_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    out
}

/// Sends `sig` to `pid` and every process under it.
pub fn kill_tree(pid: i32, sig: i32) {
    let mut todo = vec![pid];
    let mut seen = Vec::new();
    while let Some(p) = todo.pop() {
        if seen.contains(&p) {
            continue;
        }
        seen.push(p);
        todo.extend(children(p));
    }
    for p in seen {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(p, sig) };
    }
}

/// Every process on the machine carrying a token of `store` (the previous engine's
/// steps, when no step of this one has started yet).
pub fn scan(store: &str) -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(Proc::read)
        .filter(|p| p.token.as_ref().is_some_and(|t| t.store == store))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_bad_ones_are_refused() {
        let t = StepToken {
            store: "a1b2".into(),
            run: 7,
            step: 42,
            interrupt_first: true,
            grace: Duration::from_secs(10),
        };
        assert_eq!(t.to_string(), "a1b2:7:42:int:10000");
        assert_eq!(StepToken::parse(&t.to_string()), Some(t));
        for bad in [
            "",
            "a:1:2:int",
            "a:1:2:hup:5",
            ":1:2:int:5",
            "a:x:2:int:5",
            "a:1:2:int:5:6",
        ] {
            assert_eq!(StepToken::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_process_is_found_by_its_token_and_named_by_its_start() {
        let token = StepToken {
            store: format!("test{}", std::process::id()),
            run: 1,
            step: 2,
            interrupt_first: false,
            grace: Duration::from_secs(1),
        };
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .env(VAR, token.to_string())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let found = scan(&token.store);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].pid, pid);
        assert_eq!(found[0].token.as_ref(), Some(&token));
        assert!(!found[0].zombie);
        assert!(children(std::process::id() as i32).contains(&pid));
        kill_tree(pid, libc::SIGKILL);
        child.wait().unwrap();
        assert!(scan(&token.store).is_empty());
        // Our own process has a start time, and no token.
        let me = Proc::read(std::process::id() as i32).unwrap();
        assert!(me.start > 0 && me.token.is_none());
    }
}
