'use strict';
// shmap/express-rate-limit: an express-rate-limit 8 Store over a Shmap: one fixed window per
// client, counted across every process that opens the map.
//
//   const { rateLimit } = require('express-rate-limit');
//   const { ShmapStore } = require('shmap/express-rate-limit');
//   app.use(rateLimit({ windowMs: 60_000, limit: 100,
//                       store: new ShmapStore('rate-limits', { mapOptions: { evict: false } }) }));
//
// `increment` is one atomic `incr` that sets the window's TTL only when it creates the counter
// and returns the counter's expiry from the same step: the window is never extended by later
// hits, a process dying mid-request cannot leave a counter without expiry, and `resetTime` is
// the window's real end.

const { openMap, optionsObject, stringOption } = require('./common');

class ShmapStore {
  /**
   * `map`: a Shmap, or a map name/path opened with `options.mapOptions`. `options.prefix`:
   * the key prefix of this limiter's counters (default 'rl:'; give each limiter its own).
   */
  constructor(map, options) {
    const o = optionsObject(options, 'options');
    this.map = openMap(map, o.mapOptions, 'ShmapStore');
    this.prefix = stringOption(o.prefix, 'options.prefix', 'rl:');
    /** Counters are shared by every process: express-rate-limit's double-count checks need this. */
    this.localKeys = false;
    this.windowMs = 60_000;
  }

  /** Called by express-rate-limit with its options: takes `windowMs`. */
  init(options) {
    if (options && typeof options.windowMs === 'number' && options.windowMs > 0) {
      this.windowMs = options.windowMs;
    }
  }

  /** `{ totalHits, resetTime }` of `key`, or undefined if it has no counter. */
  get(key) {
    const k = this.prefix + key;
    const totalHits = this.map.get(k);
    if (typeof totalHits !== 'number') return undefined;
    const left = this.map.getRemainingTTL(k);
    return { totalHits, resetTime: left === Infinity ? undefined : new Date(Date.now() + left) };
  }

  /** Counts a hit: the count and the window's end, from one atomic step. */
  increment(key) {
    const { value, expiresAt } = this.map.incr(this.prefix + key, 1, {
      initTtl: this.windowMs,
      withExpiry: true,
    });
    return { totalHits: value, resetTime: new Date(expiresAt) };
  }

  /** Takes a hit back (skipFailedRequests and the like); never creates a counter. */
  decrement(key) {
    this.map.incr(this.prefix + key, -1, { create: false });
  }

  resetKey(key) {
    this.map.delete(this.prefix + key);
  }

  /** Removes this limiter's counters (its prefix) only. */
  resetAll() {
    this.map.deletePrefix(this.prefix);
  }

  /** Nothing to release: the map stays open for the process's other users. */
  shutdown() {}
}

module.exports = { ShmapStore };
