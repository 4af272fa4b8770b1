//! Write churn: growth for a ring that wraps faster than its records die.
//!
//! With more writers than cores, a writer descheduled for a time slice leaves its latest
//! records (live: it has not rewritten them yet) in chunks that the other writers bring the
//! tail of a small ring to within one wrap; cleaning then copies them under the shard lock.
//! Four writers on two cores copied a fifth of what they wrote into a map grown from the
//! default size (write-scaling in `node/bench/report.js`), and lost a quarter of the presized
//! map's throughput to it. The copy falls as the ring grows (it wraps more slowly than a time
//! slice), so a ring whose cleaning copies over an eighth of what is written grows as a dense
//! one does, up to [`MOST_OVER_LIVE`] times the live data; and a shrink does not take it back
//! to a ring that would wrap, at the current write rate, in under twice the time the ring
//! found hot took. Measured per process over windows of one ring's worth of writes
//! ([`crate::shared::Churn`]): the counters are the shard's, so every writer sees the same.

use super::Writer;
use crate::error::Result;
use crate::format::{self, lane, sctl};
use crate::shared::Churn;

/// A window is hot when cleaning copied over `written >> HOT_SHIFT` bytes (an eighth).
const HOT_SHIFT: u32 = 3;

/// Churn grows a ring only while it is under this many times the live data: a bound on the
/// memory a burst of writes can take, well past what a time slice needs (a ring of sixteen
/// times the live data of writers that rewrite their keys in turn wraps after each has
/// rewritten its keys sixteen times).
pub(super) const MOST_OVER_LIVE: u64 = 16;

/// A shrink keeps a ring that would wrap in under this many times the hot ring's wrap time.
const SHRINK_MARGIN: u64 = 2;

/// A hot ring is remembered this long, in ms: a shrink then goes ahead (and if the writes
/// churn the smaller ring, it grows again; at most one round trip a minute).
const HOT_MEMORY_MS: u64 = 60_000;

/// The open window's rate counts (for a shrink) once it is this old, in ms: writes that
/// slowed down do not close a large ring's window for a long time.
const RATE_AFTER_MS: u64 = 1000;

impl Writer<'_> {
    /// The shard's bytes written: line 1's counter and every lane's `written`.
    fn written(&self) -> Result<u64> {
        let mut w = self.ctl(sctl!(self.shard, bytes_written))?;
        for k in 0..format::LANES {
            w = w.saturating_add(self.ctl(lane!(self.shard, k, written))?);
        }
        Ok(w)
    }

    /// Whether a growth is due for churn: the ring is under [`MOST_OVER_LIVE`] times `live`
    /// and the last window over it found cleaning copying over an eighth of what was written.
    pub(super) fn churning(&mut self, live: u64) -> Result<bool> {
        if self.g.cap() >= live.saturating_mul(MOST_OVER_LIVE) {
            return Ok(false);
        }
        Ok(self.churn_measured()?.0)
    }

    /// Whether a shrink to a ring of `cap` bytes would churn: at the current write rate it
    /// would wrap in under [`SHRINK_MARGIN`] times the last hot ring's wrap time.
    pub(super) fn shrink_would_churn(&mut self, cap: u64) -> Result<bool> {
        let (_, rate, hot_wrap_ms) = self.churn_measured()?;
        if hot_wrap_ms == 0 || rate == 0 {
            return Ok(false);
        }
        let wrap_ms = cap.saturating_mul(1000) / rate;
        Ok(wrap_ms < hot_wrap_ms.saturating_mul(SHRINK_MARGIN))
    }

    /// Advances this process's window over the shard: opens one in a new generation, closes
    /// it once a ring's worth was written. Returns the last closed window's verdict, the
    /// write rate (the open window's, once it is old enough and lower), and the hot ring's
    /// wrap time.
    fn churn_measured(&mut self) -> Result<(bool, u64, u64)> {
        let (written, copied) = (self.written()?, self.ctl(sctl!(self.shard, bytes_copied))?);
        let (now, n, cap) = (self.now, self.g.number(), self.g.cap());
        let Some(Ok(mut c)) = self.sh.churn.get(self.shard).map(|m| m.lock()) else {
            return Ok((false, 0, 0));
        };
        let open = |c: &mut Churn| {
            c.generation = n;
            c.since_ms = now;
            c.written = written;
            c.copied = copied;
        };
        if c.generation != n {
            // A new ring: its churn is measured afresh (a build's copies are not cleaning's).
            open(&mut c);
            c.hot = false;
            return Ok((false, c.rate, c.hot_wrap_ms));
        }
        let dw = written.saturating_sub(c.written);
        let ms = now.saturating_sub(c.since_ms).max(1);
        if dw >= cap && !self.building() {
            let dc = copied.saturating_sub(c.copied);
            c.hot = dc > dw >> HOT_SHIFT;
            c.rate = dw.saturating_mul(1000) / ms;
            if c.hot {
                c.hot_wrap_ms = (ms.saturating_mul(cap) / dw.max(1)).max(1);
                c.hot_at_ms = now;
            }
            open(&mut c);
        }
        let mut rate = c.rate;
        if ms >= RATE_AFTER_MS {
            rate = rate.min(dw.saturating_mul(1000) / ms);
        }
        let remembered = now.saturating_sub(c.hot_at_ms) < HOT_MEMORY_MS;
        Ok((c.hot, rate, if remembered { c.hot_wrap_ms } else { 0 }))
    }
}
