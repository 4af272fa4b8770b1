'use strict';
// shmap/redis: the map as every host's shared L1 in front of Redis (L2), kept coherent by
// invalidations that one elected process per host applies for all of them. The design, the
// Redis value and message formats and the staleness bound: README.md, "Scaling past one host".
//
// Map keys of a tier with prefix P (all start with P, so tiers with other prefixes share a map):
//   P\0#epoch        the current epoch (an integer), with a TTL: valid while it lives
//   P\0#epochs       counter the epochs are drawn from (never expires)
//   P\0#sub          the subscriber's lease: its random term, with a TTL, renewed while it lives
//   P\0#origin       this host's random id (the map is the host)
//   P\0f<e>          floor of epoch e: the Redis sequence number the epoch started from
//   P\0d<e>\0<key>   an L1 value (a plain entry: an L1 hit is one map.get)
//   P\0v<e>\0<key>   the version (Redis sequence number) of the last write applied to <key>
//   P\0g\0<key>      getOrSet's per-host marker ("loaded; read it")
// Redis keys: <prefix><key> (the value), <channel>\0seq (the sequence number), and
// <prefix>\0lock\0<key> (getOrSet's cross-host lock).

const crypto = require('node:crypto');
const { Shmap, kStampClock } = require('../lib/shmap');
const { codedError, argType, argValue } = require('../lib/errors');

// Epoch numbers below this (2^40 ms: 2004) come from a counter that was just (re)created.
const EPOCH_FLOOR = 2 ** 40;

const DEFAULTS = {
  ttl: 0, // Redis TTL of set() without one, ms (0 = none)
  l1Ttl: 60_000, // cap on an L1 entry's TTL
  redisTimeout: 500, // bound of every Redis command
  checkInterval: 200, // election and sequence check period
  maxStale: 1000, // the staleness bound (see README)
  electionTtl: 1000, // the subscriber lease's TTL
  versionTtl: 10_000, // TTL of per-key version entries (the floor stands in after)
  lockTtl: 5000, // getOrSet's cross-host lock (SET NX PX)
  staleIfError: 0, // serve L1 this long past the bound while Redis fails (0 = never)
};
const MARK_TTL = 2000; // getOrSet's per-host marker
// A process reads the epoch entry at most once per EPOCH_CHECK_MS (an L1 hit is then one map
// read). It tells the time by the clock its map's gets report (the kernel's coarse clock, at
// most its `lagMs` behind), so a check may come that much late; epochs are published
// EPOCH_CHECK_MS + lagMs short of their validity (#margin), so the bound still holds.
const EPOCH_CHECK_MS = 2;
const KEY_CACHE = 10_000; // L1 key strings kept per tier handle
const DROP_BACK = 2; // epochs back whose copy of a key a fill or write deletes (see #dropOld)

// KEYS: value, sequence. ARGV: value, ttl ms, channel, origin, op ('set' | 'del').
const WRITE = `
if ARGV[5] == 'del' then redis.call('DEL', KEYS[1])
elseif tonumber(ARGV[2]) > 0 then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else redis.call('SET', KEYS[1], ARGV[1]) end
local seq = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[3], '{"seq":' .. string.format('%d', seq) .. ',"key":' ..
  cjson.encode(KEYS[1]) .. ',"origin":' .. cjson.encode(ARGV[4]) .. ',"op":"' .. ARGV[5] .. '"}')
return seq`;
// KEYS: value, sequence. -> [value or nil, PTTL, sequence or nil]
const READ = `return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1]), redis.call('GET', KEYS[2])}`;
// KEYS: lock. ARGV: token.
const UNLOCK = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;
const SHA = Object.fromEntries(Object.entries({ WRITE, READ, UNLOCK })
  .map(([k, s]) => [k, crypto.createHash('sha1').update(s).digest('hex')]));

const NONE = Symbol('none');
const HOOKS = Symbol.for('shmap/redis internal test hooks');
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const randomTerm = () => crypto.randomInt(1, 2 ** 47);

function unavailable(what, cause) {
  const e = codedError(Error, 'ERR_SHMAP_TIER_UNAVAILABLE',
    `shmap/redis: Redis is unavailable (${what}${cause ? `: ${cause.message}` : ''})`);
  if (cause) e.cause = cause;
  return e;
}

// --- The value format in Redis: one tag byte, then the payload (README, "Value format"). ---

const wellFormed = (v) => (typeof v.isWellFormed === 'function' ? v.isWellFormed()
  : Buffer.from(v, 'utf8').toString('utf8') === v);

function encode(v) {
  switch (typeof v) {
    case 'string':
      return wellFormed(v) ? tagged('s', Buffer.from(v, 'utf8')) : tagged('w', Buffer.from(v, 'utf16le'));
    case 'number': return tagged('n', Buffer.from(Object.is(v, -0) ? '-0' : String(v)));
    case 'boolean': return Buffer.from(v ? 't' : 'f');
    case 'object':
      if (v === null) return Buffer.from('z');
      if (v instanceof Uint8Array) return tagged(v instanceof Buffer ? 'b' : 'u', v);
      if (Array.isArray(v) || isPlain(v)) return tagged('j', Buffer.from(JSON.stringify(v), 'utf8'));
      break;
    default: break;
  }
  throw argType('value', 'a string, number, boolean, null, Buffer, Uint8Array, plain object or array', v);
}

// What set() sends: the bytes of encode(v), as a string wherever the format is UTF-8 text
// (ioredis writes a string argument as its UTF-8). A Buffer per write is an external
// allocation that V8 frees late: 50,000 writes of 1 KB left the writing process ~10 MiB of
// malloc'd memory larger; with strings, nothing.
function encodeArg(v) {
  switch (typeof v) {
    case 'string': if (wellFormed(v)) return `s${v}`; break;
    case 'number': return `n${Object.is(v, -0) ? '-0' : String(v)}`;
    case 'boolean': return v ? 't' : 'f';
    case 'object':
      if (v === null) return 'z';
      // JSON.stringify escapes lone surrogates: its text is always well-formed.
      if (!(v instanceof Uint8Array) && (Array.isArray(v) || isPlain(v))) return `j${JSON.stringify(v)}`;
      break;
    default: break;
  }
  return encode(v); // bytes, UTF-16 strings, and the type errors
}

function isPlain(v) {
  const p = Object.getPrototypeOf(v);
  return p === Object.prototype || p === null;
}

function tagged(tag, payload) {
  const b = Buffer.allocUnsafe(payload.length + 1);
  b[0] = tag.charCodeAt(0);
  b.set(payload, 1);
  return b;
}

function decode(b) {
  const rest = b.subarray(1);
  switch (b[0]) {
    case 0x73: return rest.toString('utf8'); // s
    case 0x77: return rest.toString('utf16le'); // w
    case 0x6e: { // n: what String(number) writes, else not this format
      const s = rest.toString('latin1');
      const n = Number(s);
      if (s !== '' && (String(n) === s || s === '-0')) return n;
      break;
    }
    case 0x74: if (rest.length === 0) return true; break; // t
    case 0x66: if (rest.length === 0) return false; break; // f
    case 0x7a: if (rest.length === 0) return null; break; // z
    case 0x6a: // j
      try { return JSON.parse(rest.toString('utf8')); } catch { break; }
    case 0x62: return Buffer.from(rest); // b
    case 0x75: return new Uint8Array(rest); // u
    default: break;
  }
  return Buffer.from(b); // not written in this format: the bytes as they are
}

// --- The tier. ---

function num(o, name) {
  const v = o[name] === undefined ? DEFAULTS[name] : o[name];
  if (typeof v !== 'number' || !(v >= 0) || !Number.isFinite(v)) {
    throw argType(`options.${name}`, 'a finite number >= 0', v);
  }
  return v;
}

class RedisTier {
  #map; #redis; #conn; #sub = null;
  #channel; #prefix; #published; #seqKey; #o;
  #kEpoch; #kEpochs; #kSub; #kOrigin;
  #origin;
  #keys = new Map(); // key -> its L1 key in epoch #e
  #e = undefined; #dp = ''; #checkAt = 0; // the epoch last seen, its data-key prefix, when to look again
  #clock; // the coarse wall clock of this thread's last get of #map (Shmap[kStampClock])
  #margin; // how long before its validity ends an epoch is published to end
  #lastEpoch; #lastValid = 0; // for staleIfError
  #stats = { l1Hits: 0, l2Hits: 0, misses: 0, invalidationsApplied: 0, flushes: 0, gaps: 0, subscriber: false };
  #closed = false;
  #timer = null;
  #hooks;
  // Subscriber state (only while this handle is the host's subscriber).
  #term = 0; #subscribed = false; #setup = null;
  #epoch = 0; #lastSeen = 0; #prevPoll = null; #validUntil = 0;

  constructor(opts) {
    if (opts === null || typeof opts !== 'object') throw argType('options', 'of type object', opts);
    const { map, redis, channel, prefix } = opts;
    if (!(map instanceof Shmap)) throw argType('options.map', 'an instance of Shmap', map);
    if (!redis || typeof redis.duplicate !== 'function') {
      throw argType('options.redis', 'an ioredis client', redis);
    }
    if (typeof prefix !== 'string' || prefix === '') throw argType('options.prefix', 'a non-empty string', prefix);
    if (channel !== undefined && (typeof channel !== 'string' || channel === '')) {
      throw argType('options.channel', 'a non-empty string', channel);
    }
    const o = {};
    for (const k of Object.keys(DEFAULTS)) o[k] = num(opts, k);
    if (o.checkInterval <= 0 || o.redisTimeout <= 0 || o.l1Ttl <= 0) {
      throw argValue('options', 'needs checkInterval, redisTimeout and l1Ttl above 0', opts);
    }
    if (o.maxStale <= o.checkInterval + o.redisTimeout) {
      throw argValue('options.maxStale', 'must exceed checkInterval + redisTimeout', o.maxStale);
    }
    if (o.electionTtl <= o.checkInterval + o.redisTimeout) {
      throw argValue('options.electionTtl', 'must exceed checkInterval + redisTimeout', o.electionTtl);
    }
    this.#o = o;
    // Internal, for the tests only (not in the types): { beforeFill(key) }, awaited between a
    // fill's Redis read and its L1 write (the stale-fill race made deterministic).
    this.#hooks = opts[HOOKS] || {};
    this.#map = map;
    const clock = map[kStampClock]();
    this.#clock = clock.now;
    this.#margin = EPOCH_CHECK_MS + clock.lagMs;
    this.#redis = redis;
    this.#prefix = prefix;
    // The client's own keyPrefix (ioredis prepends it to KEYS, so to the keys the scripts
    // publish; channels are not prefixed): an invalidation names `keyPrefix + prefix + key`.
    const kp = redis.options && typeof redis.options.keyPrefix === 'string' ? redis.options.keyPrefix : '';
    this.#published = kp + prefix;
    this.#channel = channel || `shmap:${prefix}`;
    this.#seqKey = `${this.#channel}\0seq`;
    const P = `${prefix}\0`;
    this.#kEpoch = `${P}#epoch`;
    this.#kEpochs = `${P}#epochs`;
    this.#kSub = `${P}#sub`;
    this.#kOrigin = `${P}#origin`;
    map.add(this.#kOrigin, crypto.randomBytes(8).toString('hex'), 0);
    this.#origin = map.get(this.#kOrigin);
    // Commands go through a connection of our own: no offline queue (an outage fails at once
    // instead of queueing), and every command bounded.
    // lazyConnect: false, or a lazy client's duplicates would never connect.
    this.#conn = track(redis.duplicate({
      enableOfflineQueue: false, commandTimeout: o.redisTimeout, maxRetriesPerRequest: 0,
      lazyConnect: false,
    }));
    this.#schedule(0);
  }

  /** The host id this tier publishes as (kept in the map). */
  get origin() { return this.#origin; }

  // --- Keys ---
  #dk(e, key) { return `${this.#prefix}\0d${e}\0${key}`; }
  #vk(e, key) { return `${this.#prefix}\0v${e}\0${key}`; }
  #fk(e) { return `${this.#prefix}\0f${e}`; }
  #gk(key) { return `${this.#prefix}\0g\0${key}`; }
  #cond(e, key, version, compare, stamp) {
    return { versionKey: this.#vk(e, key), floorKey: this.#fk(e), version, compare, stamp, stampTtlMs: this.#o.versionTtl };
  }

  // --- Redis, bounded ---
  async #cmd(what, fn, conn = this.#conn) {
    if (this.#closed) throw codedError(Error, 'ERR_SHMAP_CLOSED', 'shmap/redis: the tier is closed');
    const ms = this.#o.redisTimeout;
    let timer;
    const limit = new Promise((_, reject) => {
      timer = setTimeout(() => reject(unavailable(`${what} took over ${ms} ms`)), ms);
    });
    try {
      if (conn.status !== 'ready') {
        // Connecting for the first time: wait (bounded). Once it was up, an outage fails at once.
        if (wasReady.has(conn)) throw unavailable(`${what}: not connected (${conn.status})`);
        await Promise.race([whenReady(conn), limit]);
      }
      return await Promise.race([fn(conn), limit]);
    } catch (e) {
      if (e && e.code === 'ERR_SHMAP_TIER_UNAVAILABLE') throw e;
      if (e && /NOSCRIPT/.test(e.message)) throw e;
      throw unavailable(what, e);
    } finally {
      clearTimeout(timer);
    }
  }

  async #script(what, name, script, keys, args, buffers) {
    const sha = SHA[name];
    try {
      return await this.#cmd(what, (c) => (buffers ? c.evalshaBuffer(sha, keys.length, ...keys, ...args)
        : c.evalsha(sha, keys.length, ...keys, ...args)));
    } catch (e) {
      if (!/NOSCRIPT/.test(e.message)) throw e;
      return this.#cmd(what, (c) => (buffers ? c.evalBuffer(script, keys.length, ...keys, ...args)
        : c.eval(script, keys.length, ...keys, ...args)));
    }
  }

  // --- Reads ---

  /** The value of `key`: L1 (the map), else Redis (filling L1), else undefined. */
  get(key) {
    // Not an async function: a hit returns Promise.resolve(v) (no generator state to resume);
    // every error, a closed or forked map's included, still comes back as a rejection.
    if (typeof key !== 'string' || key === '') return Promise.reject(argType('key', 'a non-empty string', key));
    try {
      if (this.#e !== undefined) {
        const v = this.#map.get(this.#l1Key(key));
        // The epoch was confirmed less than EPOCH_CHECK_MS before this read (by the clock the
        // get reported): the hit is good. Else look at the epoch, then read again.
        if (this.#clock() < this.#checkAt) {
          if (v !== undefined) { this.#stats.l1Hits++; return Promise.resolve(v); }
          return this.#readThrough(key, this.#e);
        }
      }
      this.#checkEpoch(Date.now());
      if (this.#e !== undefined) {
        const v = this.#map.get(this.#l1Key(key));
        if (v !== undefined) { this.#stats.l1Hits++; return Promise.resolve(v); }
      }
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#readThrough(key, this.#e);
  }

  // The L1 key of `key` in epoch #e, kept per key: a string made once hashes once (the decode
  // cache looks it up).
  #l1Key(key) {
    let k = this.#keys.get(key);
    if (k === undefined) {
      if (this.#keys.size >= KEY_CACHE) this.#keys.clear();
      k = this.#dp + key;
      this.#keys.set(key, k);
    }
    return k;
  }

  #checkEpoch(t) {
    const e = this.#map.get(this.#kEpoch);
    this.#checkAt = t + EPOCH_CHECK_MS;
    if (e !== this.#e) { this.#e = e; this.#dp = `${this.#prefix}\0d${e}\0`; this.#keys.clear(); }
    if (e !== undefined) { this.#lastEpoch = e; this.#lastValid = t; }
  }

  // Reads Redis and fills L1 in epoch `e` (read before the Redis read: a flush in between
  // leaves the fill in a dead epoch), unless an invalidation newer than the read came first.
  async #readThrough(key, e) {
    let r;
    const t0 = Date.now();
    try {
      r = await this.#script('GET', 'READ', READ, [this.#prefix + key, this.#seqKey], [], true);
    } catch (err) {
      const le = this.#lastEpoch;
      if (le !== undefined && this.#o.staleIfError > 0 && Date.now() - this.#lastValid <= this.#o.staleIfError) {
        const v = this.#map.get(this.#dk(le, key));
        if (v !== undefined) { this.#stats.l1Hits++; return v; }
      }
      throw err;
    }
    const [raw, pttl, seq] = r;
    if (raw === null) { this.#stats.misses++; return undefined; }
    const v = decode(raw);
    this.#stats.l2Hits++;
    if (e !== undefined) {
      if (this.#hooks.beforeFill) await this.#hooks.beforeFill(key);
      // Redis's remaining TTL as of the read, less the time since (a fill can be late).
      // PTTL 0 is a key in its last millisecond (Redis's time stands still in a script), not
      // one without expiry: only -1 is that.
      const ttl = Math.min(pttl >= 0 ? pttl - (Date.now() - t0) : Infinity, this.#o.l1Ttl);
      const s = seq === null ? 0 : Number(seq.toString());
      if (ttl > 0) this.#tryL1(() => this.#map.setIfVersion(this.#dk(e, key), v, ttl, this.#cond(e, key, s, '<=', false)));
      this.#dropOld(e, key);
    }
    return v;
  }

  // A fill or a write in epoch `e` drops the key's copies from the DROP_BACK epochs before, if
  // a flush left them: unreachable, they would still hold the map's memory until their TTL (a
  // flush would double the hot set's footprint for up to l1Ttl). Only dead epochs are touched,
  // so coherence is unaffected; has() first keeps the common case (no copy) off the write lock.
  #dropOld(e, key) {
    const map = this.#map;
    for (let old = e - 1; old >= 1 && old >= e - DROP_BACK; old--) {
      this.#tryL1(() => {
        const dk = this.#dk(old, key);
        if (map.has(dk)) map.delete(dk);
        const vk = this.#vk(old, key);
        if (map.has(vk)) map.delete(vk);
      });
    }
  }

  #tryL1(fn) {
    try { return fn(); } catch { return false; } // a full map or a closed handle: L1 is only a cache
  }

  // --- Writes ---

  /** Writes `value` to Redis (TTL `ttlMs`, default the `ttl` option), publishes the invalidation, updates L1. */
  async set(key, value, ttlMs) {
    if (typeof key !== 'string' || key === '') throw argType('key', 'a non-empty string', key);
    const ttl = ttlMs === undefined ? this.#o.ttl : ttlMs;
    if (typeof ttl !== 'number' || !(ttl >= 0)) throw argType('ttlMs', 'a number >= 0', ttlMs);
    const bytes = encodeArg(value);
    const redisTtl = ttl === Infinity ? 0 : Math.ceil(ttl);
    const seq = await this.#script('SET', 'WRITE', WRITE, [this.#prefix + key, this.#seqKey],
      [bytes, String(redisTtl), this.#channel, this.#origin, 'set'], false);
    const e = this.#map.get(this.#kEpoch);
    if (e !== undefined) {
      const l1 = Math.min(redisTtl || Infinity, this.#o.l1Ttl);
      const ok = this.#tryL1(() => this.#map.setIfVersion(this.#dk(e, key), value, l1, this.#cond(e, key, Number(seq), '<=', true)));
      if (!ok) this.#tryL1(() => this.#map.deleteIfVersion(this.#dk(e, key), this.#cond(e, key, Number(seq), '<=', true)));
      this.#dropOld(e, key);
    }
    return this;
  }

  /** Deletes `key` from Redis and publishes the invalidation; L1 forgets it at once. */
  async delete(key) {
    if (typeof key !== 'string' || key === '') throw argType('key', 'a non-empty string', key);
    const seq = await this.#script('DEL', 'WRITE', WRITE, [this.#prefix + key, this.#seqKey],
      ['', '0', this.#channel, this.#origin, 'del'], false);
    const e = this.#map.get(this.#kEpoch);
    if (e !== undefined) this.#tryL1(() => this.#map.deleteIfVersion(this.#dk(e, key), this.#cond(e, key, Number(seq), '<=', true)));
    this.#tryL1(() => this.#map.delete(this.#gk(key)));
    return true;
  }

  /**
   * The value of `key`; if absent everywhere, runs `loader(key)` once per host (the map's
   * lease) and, across hosts, once per key and lock period (a Redis SET NX PX lock), stores
   * its result with `ttlMs` and returns it; everyone else waits for that value.
   */
  async getOrSet(key, loader, ttlMs) {
    if (typeof loader !== 'function') throw argType('loader', 'of type function', loader);
    const v = await this.get(key);
    if (v !== undefined) return v;
    let mine = NONE;
    const gk = this.#gk(key);
    for (let round = 0; round < 3; round++) {
      await this.#map.getOrSet(gk, async () => {
        mine = await this.#loadAcross(key, loader, ttlMs);
        return 1;
      }, MARK_TTL);
      if (mine !== NONE) return mine;
      const got = await this.get(key); // another process of this host loaded it
      if (got !== undefined) return got;
      this.#tryL1(() => this.#map.delete(gk)); // the marker outlived the value
    }
    return this.#loadAcross(key, loader, ttlMs);
  }

  async #loadAcross(key, loader, ttlMs) {
    const lockKey = `${this.#prefix}\0lock\0${key}`;
    const token = crypto.randomBytes(8).toString('hex');
    const deadline = Date.now() + 3 * this.#o.lockTtl;
    let delay = 5;
    for (;;) {
      const got = await this.#cmd('SET NX', (c) => c.set(lockKey, token, 'PX', this.#o.lockTtl, 'NX'));
      if (got === 'OK' || Date.now() > deadline) {
        try {
          const e = this.#map.get(this.#kEpoch);
          const cur = await this.#readThrough(key, e); // loaded meanwhile?
          if (cur !== undefined) return cur;
          const v = await loader(key);
          if (v !== undefined) await this.set(key, v, ttlMs);
          return v;
        } finally {
          if (got === 'OK') {
            await this.#script('UNLOCK', 'UNLOCK', UNLOCK, [lockKey], [token], false).catch(() => {});
          }
        }
      }
      // Another host loads: wait for its value (the lock expires if it died).
      await sleep(delay);
      delay = Math.min(delay * 2, 50);
      const v = await this.#readThrough(key, this.#map.get(this.#kEpoch));
      if (v !== undefined) return v;
    }
  }

  /** Counters of this handle, and whether it is the host's subscriber now. */
  stats() {
    return { ...this.#stats, subscriber: this.#subscribed && this.#term !== 0, epoch: this.#map.get(this.#kEpoch) };
  }

  /** Stops this handle: hands the subscriber role over (if it had it) and closes its connections. */
  async close() {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    if (this.#term !== 0) this.#stepDown(true);
    this.#closed = true;
    const quit = (c) => Promise.race([c.quit().catch(() => {}), sleep(this.#o.redisTimeout)]).then(() => c.disconnect());
    await Promise.all([quit(this.#conn), this.#sub ? quit(this.#sub) : null]);
  }

  // --- Election: one subscriber per host (per map and prefix) ---

  #schedule(ms) {
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#tick().catch(() => {}).finally(() => this.#schedule(this.#o.checkInterval));
    }, ms);
    this.#timer.unref();
  }

  async #tick() {
    const map = this.#map;
    // Every process looks at the epoch at least this often, reads or not: staleIfError's
    // window counts from when it last saw the epoch valid, which must not be long ago merely
    // because the process had not read for a while.
    this.#checkEpoch(Date.now());
    if (this.#term === 0) {
      const term = randomTerm();
      if (!map.add(this.#kSub, term, this.#o.electionTtl)) return;
      this.#term = term;
    } else if (!map.setIfVersion(this.#kSub, this.#term, this.#o.electionTtl,
      { versionKey: this.#kSub, version: this.#term, compare: '===' })) {
      this.#stepDown(false); // the lease lapsed (we stalled) and another took it
      return;
    }
    if (!this.#subscribed) {
      if (!this.#setup) this.#setup = this.#subscribe().finally(() => { this.#setup = null; });
      return;
    }
    await this.#poll();
  }

  #stepDown(handOver) {
    const map = this.#map;
    const mine = (k, v) => ({ versionKey: k, version: v, compare: '===' });
    if (this.#epoch) this.#tryL1(() => map.deleteIfVersion(this.#kEpoch, mine(this.#kEpoch, this.#epoch)));
    if (handOver) this.#tryL1(() => map.deleteIfVersion(this.#kSub, mine(this.#kSub, this.#term)));
    this.#term = 0;
    this.#subscribed = false;
    this.#epoch = 0;
    if (this.#sub) {
      const s = this.#sub;
      this.#sub = null;
      s.removeAllListeners('message');
      s.removeAllListeners('close');
      s.disconnect();
    }
  }

  async #subscribe() {
    if (!this.#sub) {
      const s = track(this.#redis.duplicate({
        enableOfflineQueue: false, autoResubscribe: false, maxRetriesPerRequest: 0,
        commandTimeout: this.#o.redisTimeout, lazyConnect: false,
      }));
      s.on('close', () => this.#broken());
      s.on('message', (ch, msg) => {
        if (ch !== this.#channel) return;
        // An event handler must not throw (it would crash the process): a map closed or
        // forked under a live tier makes L1 unusable, and reads then reject on their own.
        try { this.#onMessage(msg); } catch { /* nothing to apply to */ }
      });
      this.#sub = s;
    }
    const queued = [];
    this.#setupQueue = queued;
    try {
      await this.#cmd('SUBSCRIBE', (c) => c.subscribe(this.#channel), this.#sub);
      const t0 = Date.now();
      const s = Number(await this.#cmd('GET', (c) => c.get(this.#seqKey)) || 0);
      if (this.#term === 0 || this.#closed) return;
      this.#newEpoch(s, t0 + this.#o.maxStale, 'subscribe');
      this.#prevPoll = { s, t0 };
      this.#subscribed = true;
      this.#setupQueue = null;
      for (const m of queued) this.#onMessage(m);
    } catch {
      // Redis is down: retried on the next tick; L1 stays off meanwhile (no epoch).
    } finally {
      this.#setupQueue = null;
    }
  }

  #setupQueue = null;

  #broken() {
    if (!this.#subscribed) return;
    this.#subscribed = false; // resubscribed (with a new epoch) on the next tick
    const e = this.#epoch;
    this.#epoch = 0;
    this.#tryL1(() => this.#map.deleteIfVersion(this.#kEpoch, { versionKey: this.#kEpoch, version: e, compare: '===' }));
  }

  // A new epoch: L1 as the host knew it is gone (O(1): its keys are no longer reachable).
  #newEpoch(s, validUntil, why) {
    const map = this.#map;
    const prev = this.#epoch || map.get(this.#kEpoch);
    // Epochs never repeat: the counter never expires (ttl 0, whatever the map's maxAge), and
    // one recreated (evicted, the map cleared) starts past the clock in ms, beyond any epoch
    // handed out before (one flush a millisecond would be needed to catch up).
    let e = map.incr(this.#kEpochs, 1, 0);
    if (e < EPOCH_FLOOR) e = map.incr(this.#kEpochs, Date.now(), 0);
    map.set(this.#fk(e), s, 0);
    const ttl = Math.max(1, validUntil - this.#margin - Date.now());
    map.set(this.#kEpoch, e, ttl);
    this.#checkAt = 0;
    if (prev !== undefined && prev !== e) this.#tryL1(() => map.delete(this.#fk(prev)));
    this.#epoch = e;
    this.#lastSeen = s;
    this.#validUntil = validUntil;
    this.#stats.flushes++;
    if (why === 'gap') this.#stats.gaps++;
  }

  #onMessage(raw) {
    if (this.#setupQueue) { this.#setupQueue.push(raw); return; }
    if (!this.#subscribed) return;
    let m;
    try { m = JSON.parse(raw); } catch { return; }
    const seq = m && m.seq;
    if (!Number.isSafeInteger(seq) || seq <= this.#lastSeen) return;
    if (seq !== this.#lastSeen + 1) {
      // A message was lost: everything L1 holds may be stale.
      this.#newEpoch(seq, this.#validUntil, 'gap');
      return;
    }
    this.#lastSeen = seq;
    if (typeof m.key !== 'string' || !m.key.startsWith(this.#published)) return;
    const key = m.key.slice(this.#published.length);
    const e = this.#epoch;
    const map = this.#map;
    try {
      if (map.deleteIfVersion(this.#dk(e, key), this.#cond(e, key, seq, '<', true))) {
        this.#stats.invalidationsApplied++;
      } else if (map.get(this.#fk(e)) === undefined) {
        this.#newEpoch(seq, this.#validUntil, 'floor'); // the floor was evicted
      }
      map.delete(this.#gk(key));
    } catch {
      this.#newEpoch(seq, this.#validUntil, 'error');
    }
  }

  // The sequence check (every checkInterval): a lost last message is caught within two
  // checks, and the epoch's validity is extended only to what the check proves applied.
  async #poll() {
    const t0 = Date.now();
    const seen0 = this.#lastSeen; // published before the GET is sent, so s >= seen0
    let s;
    try {
      s = Number(await this.#cmd('GET', (c) => c.get(this.#seqKey)) || 0);
    } catch {
      return; // Redis is unreachable: the epoch runs out within maxStale
    }
    if (!this.#subscribed || this.#term === 0) return;
    const prev = this.#prevPoll;
    this.#prevPoll = { s, t0 };
    if (s < seen0) {
      this.#newEpoch(s, t0 + this.#o.maxStale, 'reset'); // Redis lost its data
      return;
    }
    let until;
    if (this.#lastSeen >= s) until = t0 + this.#o.maxStale;
    else if (prev && this.#lastSeen >= prev.s) until = prev.t0 + this.#o.maxStale;
    else {
      this.#newEpoch(s, t0 + this.#o.maxStale, 'gap');
      return;
    }
    const ttl = until - this.#margin - Date.now();
    const e = this.#epoch;
    const renewed = ttl > 0 && this.#map.get(this.#fk(e)) !== undefined &&
      this.#map.setIfVersion(this.#kEpoch, e, ttl, { versionKey: this.#kEpoch, version: e, compare: '===' });
    if (renewed) this.#validUntil = until;
    else this.#newEpoch(s, t0 + this.#o.maxStale, 'lapsed');
  }
}

// Connections that were ready once, and one pending "ready" promise per connection (so that
// waiting callers add no listeners of their own).
const wasReady = new WeakSet();
const readyPromise = new WeakMap();

function track(conn) {
  conn.on('error', () => {}); // reported by the commands that fail
  conn.on('ready', () => wasReady.add(conn));
  return conn;
}

function whenReady(conn) {
  let p = readyPromise.get(conn);
  if (!p) {
    p = new Promise((resolve, reject) => {
      const done = () => { conn.off('end', fail); readyPromise.delete(conn); resolve(); };
      const fail = () => { conn.off('ready', done); readyPromise.delete(conn); reject(new Error('connection closed')); };
      conn.once('ready', done);
      conn.once('end', fail);
    });
    p.catch(() => {});
    readyPromise.set(conn, p);
  }
  return p;
}

/** Creates a tier: see index.d.ts (adapters/redis.d.ts) and README.md. */
function createRedisTier(options) {
  return new RedisTier(options);
}

module.exports = { createRedisTier, RedisTier, encode, decode };
