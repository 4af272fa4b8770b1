//! Write churn: growth for a ring that laps faster than its records die.
//!
//! Records that outlive a lap of the ring are copied by cleaning at every lap, under the shard
//! lock. Two ways to get there: more writers than cores (a writer descheduled for a time slice
//! leaves its latest records, live since it has not rewritten them yet, in chunks that the
//! other writers bring the tail round to: four writers on two cores had cleaning copy a fifth
//! of what they wrote into a map grown from the default size, in `node/bench/report.js`'s
//! write-scaling), and long-lived records in a ring that the other writes lap quickly (a third
//! of the ring had cleaning copy 0.8 bytes per byte written, in `tests/grow_shrink.rs`). The
//! copy falls as the ring grows, so a ring whose cleaning copies over a sixteenth of what goes
//! into it grows as a dense one does, to at most [`plan::MOST_OVER_LIVE`] times the live data
//! or the churn room ([`plan::CHURN_ROOM`], 8 MiB for the map: a lap that outlasts a time
//! slice), whichever is larger (below where a shrink is due, so the two never undo each other),
//! and never by the last step `max_size` allows (which would take what other shards need to
//! grow). At an eighth, 4 writers on 2 cores stayed in a 3 MiB ring copying 9%.
//!
//! Measured per process over windows of one ring's worth of head advance, from the shard's
//! shared counters, so every writer sees the same; a window that a build started in is
//! dropped (a build's copies are not cleaning's).

use super::Writer;
use crate::error::Result;
use crate::format::sctl;
use crate::plan;

/// A window is hot when cleaning copied over `put_in >> HOT_SHIFT` bytes, a sixteenth of what
/// went into the ring otherwise (the head's advance less the copies: records written, chunks
/// claimed).
const HOT_SHIFT: u32 = 4;

impl Writer<'_> {
    /// Whether a growth for churn is due: the ring has one to grow to ([`plan::churn_cap`]),
    /// and the last window over it found cleaning copying over a sixteenth of what went in.
    pub(super) fn may_churn(&mut self, live: u64) -> Result<bool> {
        if plan::churn_cap(self.g.cap(), live, self.sh.shards() as u64).is_none() {
            return Ok(false);
        }
        self.churning()
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
