'use strict';
// shmap/express-session: an express-session Store over a Shmap. Every process that opens the
// same map sees the same sessions.
//
//   const session = require('express-session');
//   const { ShmapSessionStore } = require('shmap/express-session');
//   app.use(session({ store: new ShmapSessionStore('sessions', { mapOptions: { evict: false } }),
//                     secret, resave: false, saveUninitialized: false }));
//
// A session is stored as its JSON text (a Session is a class instance, which the map refuses
// as a value; express-session itself re-creates the Session from the plain object `get`
// returns), under `prefix + sid`, with the cookie's remaining lifetime as the entry's TTL.

const { openMap, optionsObject, stringOption } = require('./common');
const { argType, outOfRange } = require('../lib/errors');

let Store;
try {
  ({ Store } = require('express-session'));
} catch (e) {
  e.message = `shmap/express-session needs express-session (npm install express-session): ${e.message}`;
  throw e;
}

const DAY = 86_400_000;

class ShmapSessionStore extends Store {
  /**
   * `map`: a Shmap, or a map name/path opened with `options.mapOptions`.
   * Options: `prefix` ('sess:'), `ttlMs` (a day: the TTL of a session whose cookie has no
   * expiry), `disableTouch` (false).
   */
  constructor(map, options) {
    super();
    const o = optionsObject(options, 'options');
    this.map = openMap(map, o.mapOptions, 'ShmapSessionStore');
    this.prefix = stringOption(o.prefix, 'options.prefix', 'sess:');
    if (o.ttlMs !== undefined) {
      if (typeof o.ttlMs !== 'number') throw argType('options.ttlMs', 'of type number', o.ttlMs);
      if (!(o.ttlMs > 0)) throw outOfRange('options.ttlMs', '> 0', o.ttlMs);
    }
    this.ttlMs = o.ttlMs === undefined ? DAY : o.ttlMs;
    this.disableTouch = Boolean(o.disableTouch);
  }

  // The TTL of a session: what its cookie has left, or ttlMs for a browser-session cookie.
  #ttl(sess) {
    const expires = sess && sess.cookie && sess.cookie.expires;
    if (expires) return new Date(expires).getTime() - Date.now();
    return this.ttlMs;
  }

  get(sid, cb) {
    settle(cb, () => {
      const text = this.map.get(this.prefix + sid);
      return typeof text === 'string' ? JSON.parse(text) : null;
    });
  }

  set(sid, sess, cb) {
    settle(cb, () => {
      const ttl = this.#ttl(sess);
      if (ttl > 0) this.map.set(this.prefix + sid, JSON.stringify(sess), ttl);
      else this.map.delete(this.prefix + sid); // its cookie has expired already
    });
  }

  /** Re-times the session to its cookie's expiry without rewriting it (`expire`: atomic). */
  touch(sid, sess, cb) {
    if (this.disableTouch) return defer(cb, null);
    return settle(cb, () => {
      const ttl = this.#ttl(sess);
      if (ttl > 0) this.map.expire(this.prefix + sid, ttl);
      else this.map.delete(this.prefix + sid);
    });
  }

  destroy(sid, cb) {
    settle(cb, () => { this.map.delete(this.prefix + sid); });
  }

  /** Every live session, as `{ [sid]: session }` (as express-session's MemoryStore). */
  all(cb) {
    settle(cb, () => {
      const out = {};
      const n = this.prefix.length;
      for (const [key, text] of this.map.scan({ prefix: this.prefix, values: true })) {
        if (typeof text === 'string') out[key.slice(n)] = JSON.parse(text);
      }
      return out;
    });
  }

  length(cb) {
    settle(cb, () => {
      // Counted batch by batch: the session ids are never all in JS at once.
      let n = 0;
      for (const _ of this.map.scan({ prefix: this.prefix })) n++;
      return n;
    });
  }

  /** Removes every session under this store's prefix (and nothing else). */
  clear(cb) {
    settle(cb, () => { this.map.deletePrefix(this.prefix); });
  }
}

// Calls back asynchronously, as stores over a network do (express-session's flow expects it),
// from the event loop's check phase as express-session's MemoryStore does: a request's session
// callback then runs after the loop's pending I/O, not ahead of it.
function defer(cb, err, value) {
  if (typeof cb === 'function') setImmediate(cb, err, value);
}

// Runs `fn` and calls back (deferred) with what it returned or threw: errors are passed, never thrown.
function settle(cb, fn) {
  let value;
  try {
    value = fn();
  } catch (e) {
    return defer(cb, e);
  }
  return defer(cb, null, value);
}

module.exports = { ShmapSessionStore };
