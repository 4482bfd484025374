//! What triggers ask of the runner: a run started once per fire key, what watchers
//! saw, webhook deliveries claimed, refusals audited. Each is committed before it is
//! answered, like a person's trigger.

use std::collections::BTreeMap;

use super::{Out, Reply, Runner};
use crate::domain::{RunInfo, now_ms};
use crate::engine::Result;
use crate::store::triggers::{FireKey, LastFire};
use crate::store::{AuditEntry, NewRun};

pub(crate) enum TriggerMsg {
    /// Start `new` unless `key` already started a run (then `None`).
    Fire {
        new: Box<NewRun>,
        key: FireKey,
        reply: Reply<Option<RunInfo>>,
    },
    /// What the watchers of a service last saw.
    Seen(String, Reply<BTreeMap<String, String>>),
    /// Sets (`Some`) or forgets (`None`) what was seen, by name.
    SetSeen {
        service: String,
        changes: Vec<(String, Option<String>)>,
        reply: Reply<()>,
    },
    /// Claims a webhook delivery: false for a replay.
    Delivery {
        source: String,
        id: String,
        reply: Reply<bool>,
    },
    /// A refused webhook, in the audit log (no run: run id 0).
    Refused {
        actor: String,
        what: String,
        why: String,
        reply: Reply<()>,
    },
    LastFires(Reply<Vec<LastFire>>),
}

impl TriggerMsg {
    /// Whether the message changes state (committed durably before it is answered).
    pub(super) fn is_decision(&self) -> bool {
        !matches!(self, Self::Seen(..) | Self::LastFires(_))
    }
}

impl Runner {
    /// Handles one trigger message; false if a change it made failed to be written.
    pub(super) fn trigger_msg(&mut self, msg: TriggerMsg, out: &mut Out) -> bool {
        match msg {
            TriggerMsg::Fire { new, key, reply } => {
                let r = self.fire(&new, &key, out);
                let ok = r.is_ok();
                out.reply(reply, r);
                ok
            }
            TriggerMsg::Seen(service, reply) => {
                out.reply(reply, self.store.seen(&service).map_err(Into::into));
                true
            }
            TriggerMsg::SetSeen {
                service,
                changes,
                reply,
            } => {
                let r: Result<()> = changes.iter().try_for_each(|(name, value)| {
                    Ok(self.store.set_seen(&service, name, value.as_deref())?)
                });
                let ok = r.is_ok();
                out.reply(reply, r);
                ok
            }
            TriggerMsg::Delivery { source, id, reply } => {
                let r = self
                    .store
                    .claim_delivery(&source, &id, now_ms())
                    .map_err(Into::into);
                let ok = r.is_ok();
                out.reply(reply, r);
                ok
            }
            TriggerMsg::Refused {
                actor,
                what,
                why,
                reply,
            } => {
                let r = self
                    .store
                    .append_audit(&AuditEntry {
                        at: now_ms(),
                        actor,
                        action: "hook_refused".into(),
                        run_id: 0,
                        target: Some(what),
                        comment: Some(why),
                    })
                    .map_err(Into::into);
                let ok = r.is_ok();
                out.reply(reply, r);
                ok
            }
            TriggerMsg::LastFires(reply) => {
                out.reply(reply, self.store.last_fires().map_err(Into::into));
                true
            }
        }
    }

    /// Creates the run unless its key fired before; the fire is stored with the run.
    fn fire(&mut self, new: &NewRun, key: &FireKey, out: &mut Out) -> Result<Option<RunInfo>> {
        if self.store.fired(key)?.is_some() {
            return Ok(None);
        }
        let run = self.create(new, None, out)?;
        self.store.insert_fire(key, run.id, now_ms())?;
        Ok(Some(run))
    }
}
