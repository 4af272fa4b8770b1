'use strict';
// shmap/redis against a real redis-server: two "hosts" on this machine (two map names), each
// with several forked processes using the tier. Skipped, with the reason printed, when neither
// redis-server nor root to install it is at hand.
const test = require('node:test');
const assert = require('node:assert');
const path = require('node:path');
const { fork } = require('node:child_process');
const { Worker } = require('node:worker_threads');
const { Shmap } = require('..');
const { uniqueName } = require('./helpers');
const { redisUnavailable, startRedis } = require('./redis-server');

const why = redisUnavailable();
if (why) console.log(`# shmap/redis tests skipped: ${why}`);
const rtest = (name, fn) => test(name, { skip: why || false, timeout: 90_000 }, fn);

const WORKER = path.join(__dirname, 'fixtures', 'redis-worker.js');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// Fast settings so the tests run quickly; the README's bound is maxStale.
const OPTS = { checkInterval: 50, redisTimeout: 200, maxStale: 600, electionTtl: 400 };
// For tests of values, not of timing: a command bound that only a hang exceeds (a busy CI
// machine once took over 200 ms for a SET, and the round-trip test failed on it).
const RELAXED = { ...OPTS, redisTimeout: 5000, maxStale: 12000, electionTtl: 10000 };

/** A forked process with a tier on map `map`; `call(op, ...args)` runs a tier operation. */
async function proc(t, cfg) {
  const child = fork(WORKER, [JSON.stringify({ options: OPTS, ...cfg })], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced',
  });
  let next = 0;
  const pending = new Map();
  const events = [];
  const eventWaiters = [];
  child.on('message', (m) => {
    if (m.t) {
      const w = eventWaiters.findIndex((x) => x.t === m.t);
      if (w >= 0) eventWaiters.splice(w, 1)[0].resolve(m); else events.push(m);
      return;
    }
    const p = pending.get(m.id);
    pending.delete(m.id);
    if (m.ok) p.resolve(m.value);
    else p.reject(Object.assign(new Error(m.message), { code: m.code }));
  });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => {
    for (const p of pending.values()) p.reject(new Error(`worker exited (${code}, ${signal})`));
    resolve({ code, signal });
  }));
  t.after(() => child.kill('SIGKILL'));
  const event = (type) => {
    const i = events.findIndex((m) => m.t === type);
    if (i >= 0) return Promise.resolve(events.splice(i, 1)[0]);
    return new Promise((resolve) => eventWaiters.push({ t: type, resolve }));
  };
  await event('ready');
  return {
    child, exited, event,
    call: (op, ...args) => new Promise((resolve, reject) => {
      const id = ++next;
      pending.set(id, { resolve, reject });
      child.send({ id, op, args });
    }),
  };
}

async function host(t, port, n, extra = {}) {
  const map = uniqueName(t, 'tier');
  const procs = [];
  for (let i = 0; i < n; i++) procs.push(await proc(t, { map, port, ...extra }));
  return { map, procs };
}

/** Polls `fn` until it returns a truthy value; fails after `ms` (a hang bound, not a speed check). */
async function until(what, fn, ms = 10_000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

const subscriberOf = async (h) => {
  const s = await Promise.all(h.procs.map((p) => p.call('stats')));
  const i = s.findIndex((x) => x.subscriber);
  return i >= 0 ? { i, count: s.filter((x) => x.subscriber).length } : null;
};
const entryValues = (name) => {
  const m = new Shmap(name);
  try { return m.entries().map(([, v]) => v); } finally { m.close(); }
};

rtest('a set on host A is seen by host B, its old value gone from B\'s map; one subscriber per host', async (t) => {
  const r = await startRedis(t);
  const A = await host(t, r.port, 2);
  const B = await host(t, r.port, 3);
  await until('a subscriber on each host', async () => (await subscriberOf(A)) && (await subscriberOf(B)));
  assert.equal((await subscriberOf(B)).count, 1, 'exactly one subscriber on host B');
  await A.procs[0].call('set', 'user:1', { name: 'old' });
  for (const p of B.procs) assert.deepEqual(await p.call('get', 'user:1'), { name: 'old' });
  await until('B to serve from L1', async () => (await B.procs[2].call('get', 'user:1')) && (await B.procs[2].call('stats')).l1Hits > 0);
  assert.ok(entryValues(B.map).some((v) => v && v.name === 'old'), 'B\'s map holds the value');
  await A.procs[1].call('set', 'user:1', { name: 'new' });
  for (const p of B.procs) {
    await until('B to see the new value', async () => (await p.call('get', 'user:1')).name === 'new');
  }
  assert.ok(!entryValues(B.map).some((v) => v && v.name === 'old'), 'the old value is gone from B\'s map');
  // A host reads its own writes at once.
  await A.procs[0].call('set', 'k', 'mine');
  assert.equal(await A.procs[0].call('get', 'k'), 'mine');
  await A.procs[0].call('delete', 'k');
  assert.equal(await A.procs[1].call('get', 'k'), undefined);
  // Two maps are two hosts, with ids of their own.
  assert.notEqual(await A.procs[0].call('origin'), await B.procs[0].call('origin'));
  assert.equal(await A.procs[0].call('origin'), await A.procs[1].call('origin'));
});

rtest('SIGKILL of B\'s subscriber: another process of B takes over and B stays coherent', async (t) => {
  const r = await startRedis(t);
  const A = await host(t, r.port, 1);
  const B = await host(t, r.port, 3);
  const sub = await until('B\'s subscriber', () => subscriberOf(B));
  await A.procs[0].call('set', 'k', 1);
  assert.equal(await B.procs[(sub.i + 1) % 3].call('get', 'k'), 1);
  B.procs[sub.i].child.kill('SIGKILL');
  await B.procs[sub.i].exited;
  const live = B.procs.filter((_, i) => i !== sub.i);
  const started = Date.now();
  await until('a new subscriber on B', async () => {
    const s = await Promise.all(live.map((p) => p.call('stats')));
    return s.filter((x) => x.subscriber).length === 1;
  });
  const took = Date.now() - started;
  // The documented bound is electionTtl + checkInterval (+ the subscribe round trip).
  assert.ok(took < 5000, `takeover took ${took} ms`);
  await A.procs[0].call('set', 'k', 2);
  for (const p of live) await until('B to see 2', async () => (await p.call('get', 'k')) === 2);
  // close() hands the role over at once.
  const s2 = live[0];
  const st = await s2.call('stats');
  const [closer, other] = st.subscriber ? [live[0], live[1]] : [live[1], live[0]];
  await closer.call('close');
  await until('the other process to take over', async () => (await other.call('stats')).subscriber, 3000);
});

rtest('Redis killed: writes fail fast with ERR_SHMAP_TIER_UNAVAILABLE; restarted empty, B serves nothing stale', async (t) => {
  const r = await startRedis(t);
  const A = await host(t, r.port, 1);
  const B = await host(t, r.port, 2);
  await until('subscribers', async () => (await subscriberOf(A)) && (await subscriberOf(B)));
  await A.procs[0].call('set', 'k', 'before');
  for (const p of B.procs) assert.equal(await p.call('get', 'k'), 'before');
  await r.kill();
  const t0 = Date.now();
  await assert.rejects(A.procs[0].call('set', 'k', 'during'), (e) => e.code === 'ERR_SHMAP_TIER_UNAVAILABLE');
  assert.ok(Date.now() - t0 < 3000, 'the write failed fast');
  // Past the staleness bound, B no longer serves its L1 (no staleIfError): reads fail, typed.
  await sleep(OPTS.maxStale + 100);
  for (const p of B.procs) {
    await assert.rejects(p.call('get', 'k'), (e) => e.code === 'ERR_SHMAP_TIER_UNAVAILABLE');
  }
  await r.restart();
  await until('B to resubscribe', async () => (await subscriberOf(B)) && (await B.procs[0].call('stats')).epoch !== undefined);
  for (const p of B.procs) {
    await until('B to read the empty Redis', async () => {
      try { return (await p.call('get', 'k')) === undefined; } catch { return false; }
    });
  }
  await until('A to write again', async () => A.procs[0].call('set', 'k', 'after').then(() => true, () => false));
  for (const p of B.procs) await until('B to see the new write', async () => (await p.call('get', 'k')) === 'after');
});

rtest('a lost invalidation is caught by the sequence check within maxStale', async (t) => {
  const r = await startRedis(t);
  const B = await host(t, r.port, 2);
  await until('a subscriber', () => subscriberOf(B));
  const Redis = require('ioredis');
  const other = new Redis({ port: r.port });
  t.after(() => other.disconnect());
  // Another program writes in the documented format and publishes.
  await other.eval("redis.call('SET', KEYS[1], ARGV[1]); local s = redis.call('INCR', KEYS[2]); " +
    "redis.call('PUBLISH', ARGV[2], '{\"seq\":' .. s .. ',\"key\":\"t:k\",\"origin\":\"other\",\"op\":\"set\"}')",
  2, 't:k', 'shmap:t:\0seq', 'sold', 'shmap:t:');
  for (const p of B.procs) await until('B to read it', async () => (await p.call('get', 'k')) === 'old');
  await until('B to serve it from L1', async () => (await B.procs[1].call('get', 'k')) === 'old' && (await B.procs[1].call('stats')).l1Hits > 0);
  // ... then writes again, but the message is lost (no PUBLISH).
  await other.set('t:k', 'snew');
  await other.incr('shmap:t:\0seq');
  const t0 = Date.now();
  for (const p of B.procs) await until('B to see the new value', async () => (await p.call('get', 'k')) === 'new');
  const took = Date.now() - t0;
  assert.ok(took <= OPTS.maxStale + 500, `stale for ${took} ms (bound ${OPTS.maxStale} ms)`);
  const s = await Promise.all(B.procs.map((p) => p.call('stats')));
  assert.ok(s.some((x) => x.gaps > 0), 'the subscriber counted a gap');
});

rtest('a fill that read Redis before an invalidation does not put the old value back', async (t) => {
  const r = await startRedis(t);
  const A = await host(t, r.port, 1);
  const map = uniqueName(t, 'tier');
  const sub = await proc(t, { map, port: r.port });
  await until('B\'s subscriber', async () => (await sub.call('stats')).subscriber);
  const filler = await proc(t, { map, port: r.port, pauseFills: true });
  await A.procs[0].call('set', 'k', 'old');
  const got = filler.call('get', 'k'); // reads 'old' from Redis, then pauses before filling L1
  await filler.event('paused');
  const applied = (await sub.call('stats')).invalidationsApplied;
  await A.procs[0].call('set', 'k', 'new');
  await until('B to apply the invalidation', async () => (await sub.call('stats')).invalidationsApplied > applied);
  assert.equal(await filler.call('resume'), true);
  assert.equal(await got, 'old', 'the slow read returns what it read');
  assert.ok(!entryValues(map).includes('old'), 'the old value was not put back into L1');
  assert.equal(await sub.call('get', 'k'), 'new');
  assert.equal(await sub.call('get', 'k'), 'new');
});

rtest('a fill stalled past versionTtl (the key\'s version entry gone) does not put the old value back: the floor guards it', async (t) => {
  const r = await startRedis(t);
  const VT = 300;
  const A = await host(t, r.port, 1);
  const map = uniqueName(t, 'tier');
  const options = { ...OPTS, versionTtl: VT };
  const sub = await proc(t, { map, port: r.port, options });
  await until('B\'s subscriber', async () => (await sub.call('stats')).subscriber);
  const filler = await proc(t, { map, port: r.port, options, pauseFills: true });
  await A.procs[0].call('set', 'k', 'old');
  const got = filler.call('get', 'k');
  await filler.event('paused');
  const applied = (await sub.call('stats')).invalidationsApplied;
  await A.procs[0].call('set', 'k', 'new');
  await until('B to apply the invalidation', async () => (await sub.call('stats')).invalidationsApplied > applied);
  await sleep(VT + 200); // the invalidation's version entry has expired
  assert.equal(await filler.call('resume'), true);
  assert.equal(await got, 'old', 'the slow read returns what it read');
  assert.ok(!entryValues(map).includes('old'), 'the old value was not put back into L1');
  assert.equal(await sub.call('get', 'k'), 'new');
  assert.equal(await filler.call('get', 'k'), 'new');
});

rtest('getOrSet from both hosts at once runs the loader once', async (t) => {
  const r = await startRedis(t);
  const A = await host(t, r.port, 3);
  const B = await host(t, r.port, 3);
  await until('subscribers', async () => (await subscriberOf(A)) && (await subscriberOf(B)));
  const all = [...A.procs, ...B.procs];
  const results = await Promise.all(all.map((p, i) => p.call('getOrSet', 'g', `from ${i}`, 300)));
  assert.equal(new Set(results).size, 1, `everyone got the same value: ${results}`);
  const loads = await Promise.all(all.map((p) => p.call('loads')));
  assert.equal(loads.reduce((a, b) => a + b, 0), 1, `loader runs: ${loads}`);
  const Redis = require('ioredis');
  const c = new Redis({ port: r.port });
  assert.equal(await c.get('g:loads'), '1');
  c.disconnect();
});

rtest('staleness bound: with B\'s subscriber stopped, B returns the old value for at most maxStale', async (t) => {
  const r = await startRedis(t);
  const A = await host(t, r.port, 1);
  const B = await host(t, r.port, 2);
  const sub = await until('B\'s subscriber', () => subscriberOf(B));
  const reader = B.procs[1 - sub.i];
  await A.procs[0].call('set', 'k', 'old');
  await until('B to serve it from L1', async () => (await reader.call('get', 'k')) === 'old' && (await reader.call('stats')).l1Hits > 0);
  B.procs[sub.i].child.kill('SIGSTOP');
  t.after(() => B.procs[sub.i].child.kill('SIGCONT'));
  await A.procs[0].call('set', 'k', 'new');
  const acked = Date.now();
  await until('B to return the new value', async () => (await reader.call('get', 'k')) === 'new');
  const stale = Date.now() - acked;
  assert.ok(stale <= OPTS.maxStale + 300, `stale for ${stale} ms (bound ${OPTS.maxStale} ms + 300 ms of test polling)`);
  B.procs[sub.i].child.kill('SIGCONT');
  // The stalled subscriber resumes, finds its lease gone, and steps down (or keeps it, alone).
  await until('one subscriber again', async () => (await subscriberOf(B))?.count === 1);
  await A.procs[0].call('set', 'k', 'newer');
  for (const p of B.procs) await until('B coherent again', async () => (await p.call('get', 'k')) === 'newer');
});

rtest('values round-trip through Redis; tiers with other prefixes share a map; worker threads', async (t) => {
  const r = await startRedis(t);
  const Redis = require('ioredis');
  const { createRedisTier } = require('shmap/redis');
  const name = uniqueName(t, 'tier');
  const map = new Shmap(name);
  const clients = [new Redis({ port: r.port }), new Redis({ port: r.port })];
  const t1 = createRedisTier({ map, redis: clients[0], prefix: 'one:', ...RELAXED });
  const t2 = createRedisTier({ map, redis: clients[1], prefix: 'two:', ...RELAXED });
  t.after(async () => { await t1.close(); await t2.close(); clients.forEach((c) => c.disconnect()); map.close(); });
  const values = ['ascii', 'ünïcødé ✓', 'lone \ud800', '', 42, -0, NaN, Infinity, -Infinity, 0.1, 2 ** 60,
    true, false, null, Buffer.from([0, 1, 255]), new Uint8Array([7, 8]), [1, 'two', null], { a: { b: [true] } }];
  const direct = new Redis({ port: r.port });
  t.after(() => direct.disconnect());
  for (const v of values) {
    await t1.set('v', v);
    assert.deepStrictEqual(await t1.get('v'), v, 'through L1');
    const raw = await direct.getBuffer('one:v');
    assert.deepStrictEqual(require('shmap/redis').decode(raw), v, 'through Redis');
    assert.ok(raw.equals(require('shmap/redis').encode(v)), `the documented bytes for ${String(v)}`);
  }
  await t1.set('same', 1);
  await t2.set('same', 2);
  assert.equal(await t1.get('same'), 1);
  assert.equal(await t2.get('same'), 2);
  await assert.rejects(t1.get(5), { code: 'ERR_INVALID_ARG_TYPE' });
  await assert.rejects(t1.set('k', undefined), { code: 'ERR_INVALID_ARG_TYPE' });
  assert.throws(() => createRedisTier({ map, redis: clients[0] }), { code: 'ERR_INVALID_ARG_TYPE' });
  // A worker thread's tier on the same map is one more process of this host.
  const w = new Worker(`
    const { parentPort, workerData } = require('node:worker_threads');
    const { Shmap } = require(workerData.shmap);
    const { createRedisTier } = require('shmap/redis');
    const Redis = require('ioredis');
    (async () => {
      const map = new Shmap(workerData.name);
      const redis = new Redis({ port: workerData.port });
      const tier = createRedisTier({ map, redis, prefix: 'one:', ...workerData.opts });
      await tier.set('from-thread', 'hello');
      const v = await tier.get('same');
      await tier.close(); redis.disconnect(); map.close();
      parentPort.postMessage(v);
    })().catch((e) => parentPort.postMessage('error: ' + e.message));
  `, { eval: true, workerData: { name, port: r.port, opts: RELAXED, shmap: path.join(__dirname, '..') } });
  const fromThread = await new Promise((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
  assert.equal(fromThread, 1);
  await until('the thread\'s write', async () => (await t1.get('from-thread')) === 'hello');
});

rtest('after a flush, re-reading or rewriting a key leaves one copy of it in the map, not one per epoch', async (t) => {
  const r = await startRedis(t);
  const Redis = require('ioredis');
  const { createRedisTier } = require('shmap/redis');
  const name = uniqueName(t, 'tier');
  const map = new Shmap(name);
  const client = new Redis({ port: r.port });
  const admin = new Redis({ port: r.port });
  const tier = createRedisTier({ map, redis: client, prefix: 'f:', ...OPTS });
  t.after(async () => { await tier.close(); client.disconnect(); admin.disconnect(); map.close(); });
  await until('an epoch', () => tier.stats().epoch !== undefined);
  await tier.set('read', 'r1');
  await tier.set('written', 'w1');
  await until('L1 hits', async () => (await tier.get('read')) === 'r1' && tier.stats().l1Hits > 0);
  const copies = (key) => map.keys().filter((k) => k.startsWith('f:\0d') && k.endsWith(`\0${key}`)).length;
  assert.equal(copies('read'), 1);
  for (let flush = 0; flush < 2; flush++) {
    const e = tier.stats().epoch;
    // The subscription breaks: the subscriber starts a new epoch (a flush).
    await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    await until('a new epoch', () => { const n = tier.stats().epoch; return n !== undefined && n !== e; });
    assert.equal(await tier.get('read'), 'r1'); // from Redis, filling the new epoch
    await tier.set('written', `w${flush + 2}`);
    assert.equal(copies('read'), 1, 'the fill dropped the dead epoch\'s copy');
    assert.equal(copies('written'), 1, 'the write dropped the dead epoch\'s copy');
  }
  assert.equal(await tier.get('written'), 'w3');
  // get() is a plain function returning a promise: errors reject, they are never thrown.
  map.close();
  const p = tier.get('read');
  assert.ok(p instanceof Promise);
  await assert.rejects(p, { code: 'ERR_SHMAP_CLOSED' });
  // A write reaches Redis (then fails on the closed map), and its invalidation reaches this
  // process's subscriber, which must not crash the process applying it to the closed map.
  await assert.rejects(tier.set('after-close', 1), { code: 'ERR_SHMAP_CLOSED' });
  await until('the invalidation to arrive', async () => (await admin.get('shmap:f:\0seq')) === '5');
  await sleep(200);
});

rtest('staleIfError: with Redis down, L1 is served within the window (even by a process idle before), rejected beyond it', async (t) => {
  const r = await startRedis(t);
  const STALE = 2000;
  const A = await host(t, r.port, 1);
  const B = await host(t, r.port, 2, { options: { ...OPTS, staleIfError: STALE } });
  await until('subscribers', async () => (await subscriberOf(A)) && (await subscriberOf(B)));
  await A.procs[0].call('set', 'k', 'before');
  for (const p of B.procs) {
    await until('B to serve it from L1', async () => (await p.call('get', 'k')) === 'before' && (await p.call('stats')).l1Hits > 0);
  }
  // B reads nothing for longer than the window: its window must count from when it last saw
  // the epoch valid (it looks every checkInterval), not from its last read.
  await sleep(STALE + 300);
  await r.kill();
  const killed = Date.now();
  await assert.rejects(A.procs[0].call('set', 'k', 'during'), (e) => e.code === 'ERR_SHMAP_TIER_UNAVAILABLE');
  await sleep(OPTS.maxStale + 100); // past the staleness bound: L1 is served only by staleIfError
  for (const p of B.procs) {
    assert.equal(await p.call('get', 'k'), 'before', 'served from L1 within the window');
    await assert.rejects(p.call('get', 'never-cached'), (e) => e.code === 'ERR_SHMAP_TIER_UNAVAILABLE');
  }
  assert.ok(Date.now() - killed < STALE - 200, 'the checks above ran inside the window');
  // Beyond the window (counted from the last valid epoch seen, at most checkInterval before
  // the kill): rejected, typed.
  await sleep(Math.max(0, killed + STALE + OPTS.checkInterval + 200 - Date.now()));
  for (const p of B.procs) {
    await assert.rejects(p.call('get', 'k'), (e) => e.code === 'ERR_SHMAP_TIER_UNAVAILABLE');
  }
});

// Two hosts (two maps) on one redis-server, in this process.
async function twoHosts(t, r, { redis = {}, mapA = {} } = {}) {
  const Redis = require('ioredis');
  const { createRedisTier } = require('shmap/redis');
  const host = async (tag, mopts) => {
    const map = new Shmap(uniqueName(t, tag), { reset: true, ...mopts });
    const client = new Redis({ port: r.port, ...redis });
    const tier = createRedisTier({ map, redis: client, prefix: 'rv:', ...OPTS });
    t.after(async () => { await tier.close(); client.disconnect(); map.close(); });
    await until(`${tag}'s epoch`, () => tier.stats().epoch !== undefined);
    return { map, tier };
  };
  return [await host('a', mapA), await host('b', {})];
}

rtest('a value read in its last millisecond in Redis is not kept in L1 past its expiry', async (t) => {
  // Redis answers GET for a key whose PTTL is 0 (its last millisecond): that is a TTL, not
  // none. Before the fix such a fill got the whole l1Ttl (60 s) and was served long expired.
  const r = await startRedis(t);
  const [A, B] = await twoHosts(t, r);
  const served = [];
  await Promise.all(Array.from({ length: 20 }, async (_, i) => {
    const k = `ttl${i}`;
    await B.tier.set(k, 'v', 200);
    const start = Date.now();
    while (Date.now() - start < 260) { await A.tier.get(k); await sleep(1); }
    if ((await A.tier.get(k)) !== undefined) served.push(k);
  }));
  assert.deepEqual(served, [], 'served after their expiry in Redis');
});

rtest('an ioredis client with keyPrefix still gets its invalidations', async (t) => {
  // The published key carries the client's keyPrefix; before the fix every invalidation was
  // dropped as another tier's, and host A read v1 until l1Ttl after host B wrote v2.
  const r = await startRedis(t);
  const [A, B] = await twoHosts(t, r, { redis: { keyPrefix: 'app:' } });
  await B.tier.set('k', 'v1');
  assert.equal(await A.tier.get('k'), 'v1');
  await until('L1 serves it', async () => (await A.tier.get('k')) === 'v1' && A.tier.stats().l1Hits > 0);
  await B.tier.set('k', 'v2');
  await until('A sees v2 within maxStale', async () => (await A.tier.get('k')) === 'v2', 600 + 2000);
  assert.ok(A.tier.stats().invalidationsApplied > 0);
});

rtest('epoch numbers are never reused, even after the map\'s maxAge (old L1 copies stay unreachable)', async (t) => {
  // The epoch counter took the map's maxAge: it expired, the next flush began at epoch 1 again,
  // and copies filled in the first epoch 1 (v1, after B wrote v2) were served again.
  const r = await startRedis(t);
  const Redis = require('ioredis');
  const admin = new Redis({ port: r.port });
  t.after(() => admin.disconnect());
  const [A, B] = await twoHosts(t, r, { mapA: { maxAge: 1000 } });
  const e1 = A.tier.stats().epoch;
  await B.tier.set('k', 'v1');
  assert.equal(await A.tier.get('k'), 'v1');
  await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
  await until('a second epoch', () => ![undefined, e1].includes(A.tier.stats().epoch));
  const e2 = A.tier.stats().epoch;
  await B.tier.set('k', 'v2');
  await sleep(1200); // past maxAge
  await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
  await until('a third epoch', () => ![undefined, e2].includes(A.tier.stats().epoch));
  assert.notEqual(A.tier.stats().epoch, e1, 'an epoch number came back');
  assert.equal(await A.tier.get('k'), 'v2');
});

rtest('a lazyConnect client works: the tier connects its own connections', async (t) => {
  // The duplicates inherited lazyConnect and nothing ever connected them: every call failed
  // with ERR_SHMAP_TIER_UNAVAILABLE while Redis was up.
  const r = await startRedis(t);
  const [A, B] = await twoHosts(t, r, { redis: { lazyConnect: true } });
  await B.tier.set('k', 'v');
  assert.equal(await A.tier.get('k'), 'v');
});

rtest('a foreign value whose tag letter does not fit its bytes reads as the bytes, never a SyntaxError', async (t) => {
  const r = await startRedis(t);
  const Redis = require('ioredis');
  const admin = new Redis({ port: r.port });
  t.after(() => admin.disconnect());
  const [A] = await twoHosts(t, r);
  for (const raw of ['joe', 'false-ish', 'tomorrow', 'zebra', 'nope']) {
    await admin.set(`rv:${raw}`, raw);
    const v = await A.tier.get(raw);
    assert.ok(Buffer.isBuffer(v), `${raw} read as ${typeof v} ${String(v)}`);
    assert.equal(v.toString(), raw);
  }
  // What the tier writes still reads back typed.
  await A.tier.set('typed', { j: 1 });
  assert.deepEqual(await A.tier.get('typed'), { j: 1 });
  await A.tier.set('n', 12.5);
  assert.equal(await A.tier.get('n'), 12.5);
});
