//! Deploy order per environment (SP-6a, issue 24): one line per (service, environment)
//! that every run deploying there joins when it starts, in trigger order (run id).
//!
//! - A deploy goes when nobody deploys there and, under [`QueuePolicy::All`], no run
//!   triggered earlier may still deploy there first (still on its way, or ready and
//!   waiting). A run waiting at the environment's gate holds no one up.
//! - Under [`QueuePolicy::Latest`], a run that arrives (ready, or at the gate)
//!   supersedes every earlier run that is not deploying yet; an earlier run that
//!   arrives after a later one is superseded by it.
//! - Never older over newer: when a deploy would start and the environment last
//!   received a run triggered later, or (unless the run may go back on purpose) a
//!   newer commit of the same branch, it is superseded instead. When a deploy starts,
//!   earlier runs waiting at the gate are superseded by it.
//!
//! The line only decides. A superseded run hears of it on its scheduler's channel (or
//! from [`Place::turn`]) and its scheduler records the skip, the gate's resolution and
//! what that does to its later environments. A run leaves the line when its [`Place`]
//! drops: its deploy ended, or never will happen.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::domain::{QueueKey, QueuePolicy, Supersession};

/// A deploy that started in an environment: whose, and of which commit.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Deployed {
    pub run_id: i64,
    /// The commit's place in its branch's history (see `Store::commit_rank`).
    pub rank: i64,
    pub branch: String,
    pub commit: String,
}

impl Deployed {
    fn supersession(&self) -> Supersession {
        Supersession {
            run_id: self.run_id,
            commit: self.commit.clone(),
        }
    }
}

/// What a service run brings to the lines of its environments, and the runs that
/// started it (read by the runner).
#[derive(Debug, Clone)]
pub(crate) struct RunFacts {
    pub me: Deployed,
    pub allow_older: bool,
    /// Per environment, the last deploy that started there.
    pub last: HashMap<String, Deployed>,
    /// The runs that started this one (a chain, SP-7a).
    pub upstream: Vec<crate::domain::chain::Upstream>,
}

/// Where a run's deploy to the environment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stand {
    /// Its build, or an earlier environment, has not finished.
    OnItsWay,
    AtGate,
    Ready,
    Deploying,
}

/// Tells a run's scheduler that its unit was superseded.
pub(crate) type Tell = mpsc::UnboundedSender<(usize, Supersession)>;

struct Member {
    unit: usize,
    me: Deployed,
    allow_older: bool,
    stand: Stand,
    superseded: Option<Supersession>,
    tell: Tell,
}

struct Line {
    policy: QueuePolicy,
    /// The last deploy that started here.
    last: Option<Deployed>,
    /// By run id: trigger order.
    members: BTreeMap<i64, Member>,
    changed: watch::Sender<u64>,
}

impl Line {
    fn bump(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn supersede(&mut self, run_id: i64, why: &Supersession) {
        if let Some(m) = self.members.get_mut(&run_id)
            && m.superseded.is_none()
            && m.stand != Stand::Deploying
        {
            m.superseded = Some(why.clone());
            // A scheduler that has ended has nothing left to skip.
            let _ = m.tell.send((m.unit, why.clone()));
        }
    }

    /// Supersedes every run before `run_id` that `hit` selects, by `why`.
    fn supersede_earlier(&mut self, run_id: i64, why: &Supersession, hit: impl Fn(Stand) -> bool) {
        let earlier: Vec<i64> = self
            .members
            .range(..run_id)
            .filter(|(_, m)| hit(m.stand))
            .map(|(id, _)| *id)
            .collect();
        for id in earlier {
            self.supersede(id, why);
        }
    }

    /// `run_id` arrives (ready, or at the gate).
    fn arrive(&mut self, run_id: i64, stand: Stand) {
        let Some(m) = self.members.get_mut(&run_id) else {
            return;
        };
        m.stand = stand;
        let why = m.me.supersession();
        if self.policy == QueuePolicy::Latest {
            self.supersede_earlier(run_id, &why, |s| s != Stand::Deploying);
            // A later run already here, or deploying, supersedes this one.
            let newer = self
                .members
                .range(run_id + 1..)
                .rev()
                .find(|(_, m)| m.stand != Stand::OnItsWay && m.superseded.is_none())
                .map(|(_, m)| m.me.supersession());
            if let Some(newer) = newer {
                self.supersede(run_id, &newer);
            }
        }
        self.bump();
    }

    /// What `run_id`, ready, does now: go, give way, or wait (`None`).
    fn decide(&mut self, run_id: i64) -> Option<Turn> {
        let m = self.members.get(&run_id)?;
        if let Some(s) = &m.superseded {
            return Some(Turn::Superseded(s.clone()));
        }
        let live = |m: &&Member| m.superseded.is_none();
        if self
            .members
            .values()
            .filter(live)
            .any(|m| m.stand == Stand::Deploying)
        {
            return None;
        }
        if self.policy == QueuePolicy::All
            && self
                .members
                .range(..run_id)
                .map(|(_, m)| m)
                .filter(live)
                .any(|m| matches!(m.stand, Stand::OnItsWay | Stand::Ready))
        {
            return None;
        }
        if let Some(last) = &self.last {
            let newer_commit = !m.allow_older
                && last.branch == m.me.branch
                && last.commit != m.me.commit
                && last.rank > m.me.rank;
            if last.run_id > run_id || newer_commit {
                let why = last.supersession();
                self.supersede(run_id, &why);
                self.bump();
                return Some(Turn::Superseded(why));
            }
        }
        let m = self.members.get_mut(&run_id)?;
        m.stand = Stand::Deploying;
        let me = m.me.clone();
        let why = me.supersession();
        self.last = Some(me);
        self.supersede_earlier(run_id, &why, |s| s == Stand::AtGate);
        self.bump();
        Some(Turn::Go)
    }
}

/// Every environment's line, engine-wide.
#[derive(Default)]
pub(crate) struct EnvQueues {
    lines: Mutex<HashMap<QueueKey, Line>>,
}

/// What a run brings to a line when it joins.
pub(crate) struct Joining {
    pub key: QueueKey,
    pub policy: QueuePolicy,
    pub unit: usize,
    pub me: Deployed,
    pub allow_older: bool,
    /// The last deploy that started there, as the store knows it.
    pub last: Option<Deployed>,
    pub tell: Tell,
}

/// How a ready deploy's wait ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Turn {
    Go,
    Superseded(Supersession),
}

impl EnvQueues {
    fn lines(&self) -> MutexGuard<'_, HashMap<QueueKey, Line>> {
        self.lines
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Joins a run's deploy to its line; it leaves when the place drops.
    pub fn join(self: &Arc<Self>, j: Joining) -> Place {
        let mut lines = self.lines();
        let line = lines.entry(j.key.clone()).or_insert_with(|| Line {
            policy: j.policy,
            last: None,
            members: BTreeMap::new(),
            changed: watch::channel(0).0,
        });
        // The newest definition's policy holds for the line.
        line.policy = j.policy;
        if line.last.is_none() {
            line.last = j.last;
        }
        let run_id = j.me.run_id;
        line.members.insert(
            run_id,
            Member {
                unit: j.unit,
                me: j.me,
                allow_older: j.allow_older,
                stand: Stand::OnItsWay,
                superseded: None,
                tell: j.tell,
            },
        );
        line.bump();
        Place {
            queues: self.clone(),
            key: j.key,
            run_id,
        }
    }
}

/// A run's place in one environment's line.
pub(crate) struct Place {
    queues: Arc<EnvQueues>,
    key: QueueKey,
    run_id: i64,
}

impl Place {
    fn with<T>(&self, f: impl FnOnce(&mut Line) -> T) -> Option<T> {
        self.queues.lines().get_mut(&self.key).map(f)
    }

    /// The run waits at the environment's gate.
    pub fn at_gate(&self) {
        self.with(|l| l.arrive(self.run_id, Stand::AtGate));
    }

    /// The run is ready to deploy: waits for its turn (or is superseded); `None` if
    /// `halt` fired first.
    pub async fn turn(&self, halt: &CancellationToken) -> Option<Turn> {
        let mut changed = self.with(|l| {
            l.arrive(self.run_id, Stand::Ready);
            l.changed.subscribe()
        })?;
        loop {
            changed.borrow_and_update();
            if let Some(t) = self.with(|l| l.decide(self.run_id)).flatten() {
                return Some(t);
            }
            tokio::select! {
                r = changed.changed() => r.ok()?,
                _ = halt.cancelled() => return None,
            }
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut lines = self.queues.lines();
        if let Some(line) = lines.get_mut(&self.key) {
            line.members.remove(&self.run_id);
            line.bump();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> QueueKey {
        QueueKey {
            service: "svc".into(),
            env: "dev".into(),
        }
    }

    fn join(
        q: &Arc<EnvQueues>,
        policy: QueuePolicy,
        run_id: i64,
    ) -> (Place, mpsc::UnboundedReceiver<(usize, Supersession)>) {
        let (tell, heard) = mpsc::unbounded_channel();
        let me = Deployed {
            run_id,
            rank: run_id,
            branch: "main".into(),
            commit: format!("c{run_id}"),
        };
        let p = q.join(Joining {
            key: key(),
            policy,
            unit: 0,
            me,
            allow_older: false,
            last: None,
            tell,
        });
        (p, heard)
    }

    #[tokio::test]
    async fn under_all_a_later_run_waits_for_an_earlier_one_on_its_way() {
        let q = Arc::new(EnvQueues::default());
        let halt = CancellationToken::new();
        let (one, _h1) = join(&q, QueuePolicy::All, 1);
        let (two, _h2) = join(&q, QueuePolicy::All, 2);
        let wait = tokio::spawn(async move { (two.turn(&CancellationToken::new()).await, two) });
        tokio::task::yield_now().await;
        assert!(!wait.is_finished());
        assert_eq!(one.turn(&halt).await, Some(Turn::Go));
        drop(one);
        let (turn, _two) = wait.await.unwrap();
        assert_eq!(turn, Some(Turn::Go));
    }

    #[tokio::test]
    async fn under_latest_an_arrival_supersedes_earlier_runs_not_deploying() {
        let q = Arc::new(EnvQueues::default());
        let halt = CancellationToken::new();
        let (one, mut heard1) = join(&q, QueuePolicy::Latest, 1);
        let (two, _h2) = join(&q, QueuePolicy::Latest, 2);
        assert_eq!(two.turn(&halt).await, Some(Turn::Go));
        let (_, why) = heard1.try_recv().unwrap();
        assert_eq!(why.to_string(), "superseded by run 2 (c2)");
        // Run 1 arrives late: it gives way.
        assert_eq!(one.turn(&halt).await, Some(Turn::Superseded(why)));
    }

    #[tokio::test]
    async fn a_deploy_supersedes_earlier_gates_and_an_older_commit_gives_way() {
        let q = Arc::new(EnvQueues::default());
        let halt = CancellationToken::new();
        let (one, mut heard1) = join(&q, QueuePolicy::All, 1);
        one.at_gate();
        let (two, _h2) = join(&q, QueuePolicy::All, 2);
        assert_eq!(two.turn(&halt).await, Some(Turn::Go));
        assert_eq!(heard1.try_recv().unwrap().1.run_id, 2);
        drop(two);
        // A rerun of run 1 (rank 1, triggered later) after run 2's commit deployed.
        let (tell, _heard) = mpsc::unbounded_channel();
        let rerun = q.join(Joining {
            key: key(),
            policy: QueuePolicy::All,
            unit: 0,
            me: Deployed {
                run_id: 3,
                rank: 1,
                branch: "main".into(),
                commit: "c1".into(),
            },
            allow_older: false,
            last: None,
            tell,
        });
        let turn = rerun.turn(&halt).await;
        assert!(matches!(turn, Some(Turn::Superseded(s)) if s.run_id == 2));
        // A halted wait gives up.
        let (four, _h4) = join(&q, QueuePolicy::All, 4);
        let (five, _h5) = join(&q, QueuePolicy::All, 5);
        halt.cancel();
        assert_eq!(five.turn(&halt).await, None);
        drop(four);
    }
}
