//! Write churn: growth for a ring that laps faster than its records die.
//!
//! Records that outlive a lap of the ring are copied by cleaning at every lap, under the shard
//! lock. Two ways to get there: more writers than cores (a writer descheduled for a time slice
//! leaves its latest records, live since it has not rewritten them yet, in chunks that the
//! other writers bring the tail round to: four writers on two cores had cleaning copy a fifth
//! of what they wrote into a map grown from the default size, in `node/bench/report.js`'s
//! write-scaling), and long-lived records in a ring that the other writes lap quickly (a third
//! of the ring had cleaning copy 0.8 bytes per byte written, in `tests/grow_shrink.rs`). The
//! copy falls as the ring grows, so a ring whose cleaning copies over an eighth of what goes
//! into it grows as a dense one does, to at most [`MOST_OVER_LIVE`] times the live data and
//! never by the last step `max_size` allows (which would take what other shards need to grow).
//!
//! Measured per process over windows of one ring's worth of head advance, from the shard's
//! shared counters, so every writer sees the same; a window that a build started in is
//! dropped (a build's copies are not cleaning's). A shrink, which every process may start,
//! goes by the file alone: a ring under `CHURN_RANGE` times the live data (one that churn may
//! have grown) is not shrunk within [`HOLD_MS`] of its last switch, so a shrink that brings
//! the churn back is at most one round trip a minute.

use super::Writer;
use crate::error::Result;
use crate::format::sctl;
use crate::plan::Plan;

/// A window is hot when cleaning copied over `put_in >> HOT_SHIFT` bytes, an eighth of what
/// went into the ring otherwise (the head's advance less the copies: records written, chunks
/// claimed).
const HOT_SHIFT: u32 = 3;

/// Churn grows a ring to at most this many times the live data: a bound on the memory a
/// burst of writes can take, well past what a time slice needs (a ring of sixteen times the
/// live data of writers that rewrite their keys in turn laps after each rewrote its keys
/// sixteen times).
pub(super) const MOST_OVER_LIVE: u64 = 16;

/// How long a ring that churn may have grown (under twice [`MOST_OVER_LIVE`] times the live
/// data) is kept after its last switch before a shrink, in ms.
pub(super) const HOLD_MS: u64 = 60_000;

impl Writer<'_> {
    /// Whether `plan`, a growth, is due for churn: the last window over this ring found
    /// cleaning copying over an eighth of what went into it, the plan's ring is at most
    /// [`MOST_OVER_LIVE`] times `live`, and it is not the last step `largest` allows.
    pub(super) fn churn_grows(&mut self, plan: &Plan, live: u64, largest: u64) -> Result<bool> {
        let new = plan.log_cap.unwrap_or(0);
        if new > live.saturating_mul(MOST_OVER_LIVE) || new.saturating_mul(2) > largest {
            return Ok(false);
        }
        self.churning()
    }

    /// Whether a growth may be due for churn (the cheap test, before a plan is made): the ring
    /// is under [`MOST_OVER_LIVE`] times `live` and the last window over it was hot.
    pub(super) fn may_churn(&mut self, live: u64) -> Result<bool> {
        if self.g.cap().saturating_mul(2) > live.saturating_mul(MOST_OVER_LIVE) {
            return Ok(false);
        }
        self.churning()
    }

    /// Whether a shrink of this ring is held back: it is one churn may have grown and its
    /// last switch was under [`HOLD_MS`] ago.
    pub(super) fn shrink_held(&self, live: u64, switched_ms: u64) -> bool {
        self.g.cap() < live.saturating_mul(2 * MOST_OVER_LIVE)
            && self.now.saturating_sub(switched_ms) < HOLD_MS
    }

    /// Forgets the last window's verdict (a growth for churn was not to be had): asked again
    /// when the next window closes hot, a ring's length later.
    pub(super) fn churn_forget(&self) {
        if let Some(Ok(mut c)) = self.sh.churn.get(self.shard).map(|m| m.lock()) {
            c.hot = false;
        }
    }

    /// Advances this process's window over the shard's ring: opens one over a new ring or
    /// after a build started, closes it once the head advanced a ring's length. Returns the
    /// last closed window's verdict. One load of the head on most calls.
    fn churning(&mut self) -> Result<bool> {
        let w = self.w();
        let head = self.g.head(w)?;
        let ring = (self.g.desc.log_off, self.g.cap());
        let Some(Ok(mut c)) = self.sh.churn.get(self.shard).map(|m| m.lock()) else {
            return Ok(false);
        };
        if c.ring == ring && head.saturating_sub(c.head) < ring.1 {
            return Ok(c.hot);
        }
        let copied = self.ctl(sctl!(self.shard, bytes_copied))?;
        let builds = self.ctl(sctl!(self.shard, builds))?;
        if c.ring == ring && c.builds == builds {
            // The head advanced by what was put in and by the copies.
            let dc = copied.saturating_sub(c.copied);
            let put_in = head.saturating_sub(c.head).saturating_sub(dc);
            c.hot = dc > put_in >> HOT_SHIFT;
        } else {
            c.hot = false;
        }
        c.ring = ring;
        c.head = head;
        c.copied = copied;
        c.builds = builds;
        Ok(c.hot)
    }
}
