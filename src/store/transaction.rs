//! Transactions: one for a whole batch of the runner's messages, a savepoint for each
//! message in it, and how durable a commit is.

use super::{Result, Store};

impl Store {
    /// Runs `f` in one transaction: all of its writes land together or not at all.
    pub fn batch<T>(&mut self, f: impl FnOnce(&Self) -> Result<T>) -> Result<T> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        match f(self) {
            Ok(v) => {
                self.conn.execute_batch("COMMIT")?;
                Ok(v)
            }
            Err(e) => {
                if let Err(r) = self.conn.execute_batch("ROLLBACK") {
                    tracing::error!("rollback after `{e}` failed: {r}");
                }
                Err(e)
            }
        }
    }

    /// Whether the next commits wait for the WAL's fsync (`synchronous=FULL`) or
    /// not (`NORMAL`: durable across a crash of the process, not of the machine).
    /// Set outside a transaction: SQLite ignores a change made inside one.
    pub fn set_durable(&mut self, durable: bool) -> Result<()> {
        if self.durable != durable {
            let level = if durable { "FULL" } else { "NORMAL" };
            self.conn.pragma_update(None, "synchronous", level)?;
            self.durable = durable;
        }
        Ok(())
    }

    /// Opens a transaction that the caller ends with [`Self::commit`] (the runner
    /// groups a whole batch of messages into one).
    pub fn begin(&self) -> Result<()> {
        Ok(self.conn.execute_batch("BEGIN IMMEDIATE")?)
    }

    /// Commits the open transaction, or rolls it back if the commit fails.
    pub fn commit(&self) -> Result<()> {
        self.conn.execute_batch("COMMIT").map_err(|e| {
            if let Err(r) = self.conn.execute_batch("ROLLBACK") {
                tracing::error!("rollback after a failed commit (`{e}`) failed: {r}");
            }
            e.into()
        })
    }

    /// Marks a point in the open transaction that [`Self::rollback_to`] returns to.
    pub fn savepoint(&self) -> Result<()> {
        Ok(self.conn.execute_batch("SAVEPOINT one")?)
    }

    /// Keeps what was written since the last [`Self::savepoint`].
    pub fn release(&self) -> Result<()> {
        Ok(self.conn.execute_batch("RELEASE one")?)
    }

    /// Undoes what was written since the last [`Self::savepoint`].
    pub fn rollback_to(&self) -> Result<()> {
        Ok(self.conn.execute_batch("ROLLBACK TO one; RELEASE one")?)
    }
}
