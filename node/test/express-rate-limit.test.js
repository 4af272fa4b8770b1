'use strict';
// shmap/express-rate-limit against real express-rate-limit apps driven with supertest: the
// whole Store interface, windows that are not extended by hits, decrement that never creates,
// passOnStoreError on a full map, no validation warnings, and exactly `limit` requests let
// through across 4 real processes.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');
const { fork } = require('child_process');
const express = require('express');
const { rateLimit } = require('express-rate-limit');
const request = require('supertest');
const { Shmap } = require('..');
const { ShmapStore } = require('../adapters/express-rate-limit');
const { uniqueName, sleep } = require('./helpers');

function openMap(t, options = {}) {
  const map = new Shmap(uniqueName(t, 'rl'), { reset: true, evict: false, ...options });
  t.after(() => map.close());
  return map;
}

// Captures console.error/warn (where express-rate-limit reports failed validations) during fn.
async function quietly(fn) {
  const said = [];
  const { error, warn } = console;
  const say = (...a) => said.push(a.map((x) => (x && x.code ? `${x.code} ${x.message}` : String(x))).join(' '));
  console.error = say;
  console.warn = say;
  try {
    await fn();
  } finally {
    console.error = error;
    console.warn = warn;
  }
  return said;
}

function appWith(store, options = {}) {
  const app = express();
  // A window long enough for four requests on a busy CI core.
  app.use(rateLimit({ windowMs: 1000, limit: 3, standardHeaders: 'draft-8', legacyHeaders: false, store, ...options }));
  app.get('/', (req, res) => res.send('ok'));
  app.get('/fail', (req, res) => res.status(500).send('no'));
  return app;
}

test('a fixed window: limit hits, then 429 with the window\'s reset; hits do not extend it', async (t) => {
  const map = openMap(t);
  const store = new ShmapStore(map);
  const app = appWith(store);
  const said = await quietly(async () => {
    for (let i = 1; i <= 3; i++) {
      const r = await request(app).get('/').expect(200);
      assert.match(r.headers.ratelimit, new RegExp(`r=${3 - i}`));
    }
    const r = await request(app).get('/').expect(429);
    assert.match(r.headers.ratelimit, /t=\d/, 'a reset time is sent');
    const info = store.get('::ffff:127.0.0.1') || store.get('127.0.0.1') || store.get('::1');
    assert.ok(info, `a counter: ${map.keys()}`);
    assert.equal(info.totalHits, 4);
    assert.ok(info.resetTime instanceof Date);
    await sleep(1050);
    await request(app).get('/').expect(200); // a new window
  });
  assert.deepEqual(said, [], 'express-rate-limit\'s validations printed nothing');
});

test('increment: count and resetTime from one step; init(windowMs); decrement never creates', async (t) => {
  const map = openMap(t);
  const store = new ShmapStore(map, { prefix: 'x:' });
  store.init({ windowMs: 400 });
  const a = store.increment('k');
  assert.equal(a.totalHits, 1);
  const end = a.resetTime.getTime();
  assert.ok(end > Date.now() && end <= Date.now() + 400);
  await sleep(40);
  assert.equal(store.increment('k').resetTime.getTime(), end, 'later hits do not move the window');
  store.decrement('k');
  assert.equal(store.get('k').totalHits, 1);
  while (Date.now() <= end) await sleep(end - Date.now() + 5);
  store.decrement('k'); // after the window: must not recreate the counter at -1 without TTL
  assert.equal(map.has('x:k'), false);
  assert.equal(store.get('k'), undefined);
  assert.equal(store.increment('k').totalHits, 1, 'the next hit starts a window at 1');
  store.resetKey('k');
  assert.equal(store.get('k'), undefined);
  for (let i = 0; i < 20; i++) store.increment(`c${i}`);
  map.set('other', 1);
  store.resetAll();
  assert.deepEqual(map.keys(), ['other'], 'resetAll clears this prefix only');
  assert.equal(store.localKeys, false);
  assert.equal(store.prefix, 'x:');
});

test('skipFailedRequests takes hits back through decrement', async (t) => {
  const map = openMap(t);
  const app = appWith(new ShmapStore(map), { skipFailedRequests: true });
  const said = await quietly(async () => {
    for (let i = 0; i < 5; i++) await request(app).get('/fail').expect(500);
    await sleep(20); // decrement runs when the response finishes
    for (let i = 0; i < 3; i++) await request(app).get('/').expect(200);
    await request(app).get('/').expect(429);
  });
  assert.deepEqual(said, []);
});

test('a full map (evict: false) is a store error: passOnStoreError lets requests through', async (t) => {
  const map = openMap(t, { maxSize: 1 << 20, initialSize: 1 << 20 });
  for (let i = 0; ; i++) {
    try { map.set(`pad${i}`, 'x'.repeat(4000)); } catch (e) { assert.equal(e.code, 'ERR_SHMAP_FULL'); break; }
  }
  const said = await quietly(async () => {
    await request(appWith(new ShmapStore(map, { prefix: 'a:' }), { passOnStoreError: true })).get('/').expect(200);
    await request(appWith(new ShmapStore(map, { prefix: 'b:' }))).get('/').expect(500);
  });
  assert.ok(said.some((s) => s.includes('ERR_SHMAP_FULL') && s.includes('allowing request')), `passOnStoreError logs the error it passed on: ${said}`);
});

test('4 processes x 100 requests against a limit of 150 per window: exactly 150 allowed', { timeout: 60_000 }, async (t) => {
  const map = openMap(t);
  const apps = await Promise.all([0, 1, 2, 3].map(() => new Promise((resolve, reject) => {
    const c = fork(path.join(__dirname, 'fixtures', 'adapters', 'rate-limit-app.js'), [map.path, '150', '60000'], { stdio: ['ignore', 'inherit', 'pipe', 'ipc'] });
    let stderr = '';
    c.stderr.on('data', (d) => { stderr += d; });
    t.after(() => c.kill('SIGKILL'));
    c.once('message', (m) => resolve({ url: `http://127.0.0.1:${m.port}`, stderr: () => stderr }));
    c.once('exit', (code) => reject(new Error(`app exited ${code}: ${stderr}`)));
  })));
  const counts = await Promise.all(apps.map(async (app) => {
    let ok = 0;
    let limited = 0;
    const agent = request(app.url);
    for (let batch = 0; batch < 10; batch++) {
      const rs = await Promise.all(Array.from({ length: 10 }, () => agent.get('/')));
      for (const r of rs) {
        if (r.status === 200) ok++;
        else if (r.status === 429) limited++;
        else assert.fail(`status ${r.status}`);
      }
    }
    return { ok, limited };
  }));
  const ok = counts.reduce((a, c) => a + c.ok, 0);
  const limited = counts.reduce((a, c) => a + c.limited, 0);
  assert.equal(ok, 150, `allowed per process: ${counts.map((c) => c.ok)}`);
  assert.equal(limited, 250);
  const [key] = map.keys({ prefix: 'rl:' });
  assert.equal(map.get(key), 400);
  for (const app of apps) assert.equal(app.stderr(), '', 'no validation warnings in any process');
});
