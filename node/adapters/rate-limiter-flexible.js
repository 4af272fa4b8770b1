'use strict';
// shmap/rate-limiter-flexible: a rate-limiter-flexible limiter over a Shmap, counted across
// every process that opens the map, without relaying through the primary (RateLimiterCluster
// sends every call to the primary over IPC).
//
//   const { RateLimiterShmap } = require('shmap/rate-limiter-flexible');
//   const limiter = new RateLimiterShmap({ storeClient: 'rate-limits', points: 10, duration: 1 });
//   await limiter.consume(req.ip); // rejects with a RateLimiterRes when over the limit
//
// Built on the library's RateLimiterStoreAbstract, which its types declare but its index.js
// does not export: it is required from its lib/ file, so the adapter is pinned to the versions
// it was tested with (peerDependency ~11.4.0).

const { openMap } = require('./common');

let RateLimiterStoreAbstract;
let RateLimiterRes;
try {
  RateLimiterStoreAbstract = require('rate-limiter-flexible/lib/RateLimiterStoreAbstract');
  RateLimiterRes = require('rate-limiter-flexible/lib/RateLimiterRes');
} catch (e) {
  e.message = 'shmap/rate-limiter-flexible needs rate-limiter-flexible ~11.4 ' +
    `(npm install rate-limiter-flexible@~11.4.0): ${e.message}`;
  throw e;
}

class RateLimiterShmap extends RateLimiterStoreAbstract {
  /**
   * The options of rate-limiter-flexible's store limiters (points, duration, keyPrefix,
   * blockDuration, inMemoryBlockOnConsumed, insuranceLimiter, ...), with `storeClient` a Shmap
   * or a map name/path (opened with `mapOptions`).
   */
  constructor(opts = {}) {
    super(opts);
    this.client = openMap(opts.storeClient, opts.mapOptions, 'RateLimiterShmap storeClient');
  }

  _getRateLimiterRes(rlKey, changedPoints, result) {
    const res = new RateLimiterRes();
    res.consumedPoints = result.consumedPoints;
    res.isFirstInDuration = result.consumedPoints === changedPoints;
    res.remainingPoints = Math.max(this.points - res.consumedPoints, 0);
    res.msBeforeNext = result.msBeforeNext;
    return res;
  }

  /**
   * Adds `points` to the key's counter in one atomic step, with `msDuration` as its TTL when
   * the step creates it (0 = never expires); `forceExpire` sets the counter to `points` with
   * that TTL (block, set). The store hooks are async: what the map throws becomes a
   * rejection.
   */
  async _upsert(rlKey, points, msDuration, forceExpire = false) {
    const map = this.client;
    const ttl = msDuration > 0 ? msDuration : 0;
    if (forceExpire) {
      map.set(rlKey, points, ttl);
      return { consumedPoints: points, msBeforeNext: ttl > 0 ? ttl : -1 };
    }
    const { value, expiresAt } = map.incr(rlKey, points, { initTtl: ttl, withExpiry: true });
    return { consumedPoints: value, msBeforeNext: msBefore(expiresAt) };
  }

  async _get(rlKey) {
    const map = this.client;
    const consumedPoints = map.get(rlKey);
    if (typeof consumedPoints !== 'number') return null;
    const left = map.getRemainingTTL(rlKey);
    return { consumedPoints, msBeforeNext: left === Infinity ? -1 : left };
  }

  async _delete(rlKey) {
    return this.client.delete(rlKey);
  }
}

function msBefore(expiresAt) {
  return expiresAt === Infinity ? -1 : Math.max(0, expiresAt - Date.now());
}

module.exports = { RateLimiterShmap };
