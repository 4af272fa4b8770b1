'use strict';
// Many processes on one map: five forked workers reading and writing at once, and a worker
// killed with SIGKILL in the middle of its writes while the others carry on.
const test = require('node:test');
const assert = require('node:assert/strict');
const { Shmap } = require('..');
const { uniqueName, forkWorker, sleep } = require('./helpers');

const WORKERS = 5;

test('5 forked workers read and write one map', { timeout: 120_000 }, async (t) => {
  const name = uniqueName(t, 'cluster');
  const primary = new Shmap(name, { reset: true, maxSize: 64 << 20 });
  t.after(() => primary.close());
  const n = 400;
  const workers = Array.from({ length: WORKERS }, (_, id) =>
    forkWorker(t, 'readWrite', { name, id, n, workers: WORKERS }));
  await Promise.all(workers.map((w) => w.message('ready')));
  workers.forEach((w) => w.send({ t: 'go' }));
  const written = await Promise.all(workers.map((w) => w.message('written')));
  // Every entry, read by the primary.
  for (let id = 0; id < WORKERS; id++) {
    for (let k = 0; k < n; k++) {
      assert.deepEqual(primary.get(`w${id}:${k}`), { id, k, pad: 'x'.repeat(k % 64) });
    }
  }
  assert.equal(primary.get('total'), WORKERS * n, 'incr is atomic across processes');
  // And by every worker.
  workers.forEach((w) => w.send({ t: 'verify' }));
  const verified = await Promise.all(workers.map((w) => w.message('verified')));
  for (const v of verified) {
    assert.equal(v.ok, WORKERS * n);
    assert.equal(v.total, WORKERS * n);
  }
  const exits = await Promise.all(workers.map((w) => w.exited));
  assert.deepEqual(exits.map((e) => e.code), Array(WORKERS).fill(0));
  t.diagnostic(`entries seen while others were writing: ${written.map((w) => w.seen).join(', ')}`);
});

test('kill -9 of workers mid-write: the others carry on, acknowledged writes stay', { timeout: 120_000 }, async (t) => {
  const name = uniqueName(t, 'kill');
  const primary = new Shmap(name, { reset: true, maxSize: 512 << 20 });
  t.after(() => primary.close());
  const limit = 200_000; // more than a writer does during the test (then it idles)
  const acked = new Map(); // worker id -> highest acknowledged k
  const start = (id) => {
    const w = forkWorker(t, 'writer', { name, id, limit });
    w.id = id;
    acked.set(id, -1);
    w.on('message', (m) => { if (m.t === 'ack') acked.set(id, Math.max(acked.get(id), m.k)); });
    return w;
  };
  const live = Array.from({ length: WORKERS }, (_, id) => start(id));
  await Promise.all(live.map((w) => w.message('ready')));

  // Three rounds: kill one writer at a random moment while all five write, check that the
  // others keep going, and put a fresh writer in its place.
  const killed = [];
  for (let round = 0; round < 3; round++) {
    const victim = live[round];
    while (acked.get(victim.id) < 1000) await sleep(5);
    assert.ok(acked.get(victim.id) < limit - 64, 'the victim is still writing');
    await sleep(Math.floor(Math.random() * 30));
    victim.kill('SIGKILL');
    assert.equal((await victim.exited).signal, 'SIGKILL');
    killed.push({ id: victim.id, acked: acked.get(victim.id) });
    const others = live.filter((w) => w !== victim && acked.get(w.id) < limit - 64);
    const atKill = new Map(others.map((w) => [w.id, acked.get(w.id)]));
    const deadline = Date.now() + 60_000;
    while (others.some((w) => acked.get(w.id) < Math.min(atKill.get(w.id) + 1000, limit - 64))) {
      assert.ok(Date.now() < deadline, `writers stalled after killing ${victim.id}: ${[...acked]}`);
      await sleep(10);
    }
    live[round] = start(WORKERS + round);
    await live[round].message('ready');
  }
  live.forEach((w) => w.send({ t: 'stop' }));
  await Promise.all(live.map((w) => w.message('stopped')));
  const exits = await Promise.all(live.map((w) => w.exited));
  assert.deepEqual(exits.map((e) => e.code), Array(WORKERS).fill(0));

  // A new write completes...
  primary.set('after-kill', 'written');
  assert.equal(primary.get('after-kill'), 'written');
  // ...and every acknowledged write of every worker, the killed ones included, is intact.
  const value = (id, k) => `value ${id}:${k} ${'y'.repeat(k % 32)}`;
  for (const [id, last] of acked) {
    for (let k = 0; k <= last; k++) assert.equal(primary.get(`w${id}:${k}`), value(id, k), `w${id}:${k}`);
  }
  // A killed writer's next write may or may not have landed, but it is whole if it did.
  for (const { id, acked: last } of killed) {
    const next = primary.get(`w${id}:${last + 1}`);
    assert.ok(next === undefined || next === value(id, last + 1), `w${id}:${last + 1} is torn`);
  }
  t.diagnostic(`killed writers acknowledged ${killed.map((k) => k.acked + 1).join(', ')} writes; ` +
    `in all ${[...acked.values()].reduce((a, b) => a + b + 1, 0)} acknowledged writes checked`);
});
