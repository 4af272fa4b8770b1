'use strict';
// shmap/express-session against real express-session apps, driven with supertest: a Session
// instance is stored (a bare map refuses class instances), touch re-times without rewriting,
// destroy/all/length/clear by prefix, and sessions seen across 4 real processes.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');
const { fork } = require('child_process');
const { promisify } = require('util');
const express = require('express');
const session = require('express-session');
const request = require('supertest');
const { Shmap } = require('..');
const { ShmapSessionStore } = require('../adapters/express-session');
const { uniqueName, sleep } = require('./helpers');

function openMap(t) {
  const map = new Shmap(uniqueName(t, 'sess'), { reset: true, evict: false });
  t.after(() => map.close());
  return map;
}

function appWith(store, cookie = { maxAge: 60_000 }) {
  const app = express();
  app.use(session({ store, secret: 's', resave: false, saveUninitialized: false, cookie }));
  app.post('/login', (req, res) => { req.session.user = req.query.user; req.session.views = 0; res.json({ ok: true }); });
  app.get('/me', (req, res) => { req.session.views++; res.json({ user: req.session.user, views: req.session.views }); });
  app.get('/peek', (req, res) => res.json({ user: req.session.user || null }));
  app.post('/logout', (req, res) => req.session.destroy(() => res.end()));
  return app;
}

test('a login is stored: the Session instance goes into the map as JSON, with the cookie\'s TTL', async (t) => {
  const map = openMap(t);
  map.set('unrelated', 1);
  const store = new ShmapSessionStore(map);
  const agent = request.agent(appWith(store));
  await agent.post('/login?user=ada').expect(200);
  const keys = map.keys({ prefix: 'sess:' });
  assert.equal(keys.length, 1, 'the session is in the map (a store passing req.session to set() stored nothing)');
  const stored = JSON.parse(map.get(keys[0]));
  assert.equal(stored.user, 'ada');
  assert.ok(stored.cookie.expires, 'the cookie went along');
  const ttl = map.getRemainingTTL(keys[0]);
  assert.ok(ttl > 59_000 && ttl <= 60_000, `TTL from the cookie: ${ttl}`);
  assert.deepEqual((await agent.get('/me').expect(200)).body, { user: 'ada', views: 1 });
  assert.deepEqual((await agent.get('/me').expect(200)).body, { user: 'ada', views: 2 });
  // The bug the store avoids: a Session is a class instance, which the map refuses.
  await new Promise((resolve) => store.get(keys[0].slice(5), (err, sess) => {
    assert.equal(err, null);
    assert.equal(sess.views, 2);
    resolve();
  }));
});

test('touch re-times the session without rewriting it; an expired cookie deletes it', async (t) => {
  const map = openMap(t);
  const store = new ShmapSessionStore(map);
  const agent = request.agent(appWith(store, { maxAge: 2000 }));
  await agent.post('/login?user=bob').expect(200);
  const [key] = map.keys({ prefix: 'sess:' });
  const before = map.get(key);
  await sleep(300);
  const aged = map.getRemainingTTL(key);
  assert.ok(aged <= 1700, `aged ${aged}`);
  await agent.get('/peek').expect(200); // unmodified: express-session calls touch
  const touched = map.getRemainingTTL(key);
  assert.ok(touched > 1800, `touched ${touched}`);
  assert.equal(map.get(key), before, 'touch did not rewrite the session text');
  // A session whose cookie already expired is deleted rather than stored without a TTL.
  await promisify(store.set.bind(store))('old', { cookie: { expires: new Date(Date.now() - 1000) } });
  assert.equal(map.has('sess:old'), false);
  await promisify(store.touch.bind(store))(key.slice(5), { cookie: { expires: new Date(Date.now() - 1) } });
  assert.equal(map.has(key), false);
  // A browser-session cookie (no expiry) gets ttlMs: never the map's maxAge.
  const short = new ShmapSessionStore(map, { ttlMs: 5000, prefix: 'p2:' });
  await promisify(short.set.bind(short))('x', { cookie: { expires: null } });
  const left = map.getRemainingTTL('p2:x');
  assert.ok(left > 4000 && left <= 5000, `${left}`);
});

test('destroy, all, length and clear stay within the prefix', async (t) => {
  const map = openMap(t);
  const a = new ShmapSessionStore(map, { prefix: 'a:' });
  const b = new ShmapSessionStore(map, { prefix: 'b:' });
  const set = (s, sid, user) => promisify(s.set.bind(s))(sid, { user, cookie: { expires: new Date(Date.now() + 60_000) } });
  for (let i = 0; i < 10; i++) { await set(a, `s${i}`, `u${i}`); await set(b, `s${i}`, `v${i}`); }
  map.set('other', 'x');
  assert.equal(await promisify(a.length.bind(a))(), 10);
  const all = await promisify(a.all.bind(a))();
  assert.deepEqual(Object.keys(all).sort(), Array.from({ length: 10 }, (_, i) => `s${i}`).sort());
  assert.equal(all.s3.user, 'u3');
  await promisify(a.destroy.bind(a))('s3');
  assert.equal(await promisify(a.length.bind(a))(), 9);
  await promisify(a.clear.bind(a))();
  assert.equal(await promisify(a.length.bind(a))(), 0);
  assert.equal(await promisify(b.length.bind(b))(), 10);
  assert.equal(map.get('other'), 'x');
  // Errors go to the callback, never thrown: a full map (eviction off) is ERR_SHMAP_FULL.
  const tiny = new Shmap(uniqueName(t, 'sess'), { reset: true, evict: false, maxSize: 1 << 20, initialSize: 1 << 20 });
  t.after(() => tiny.close());
  const full = new ShmapSessionStore(tiny);
  let err;
  for (let i = 0; i < 10_000 && !err; i++) {
    err = await new Promise((resolve) => full.set(`s${i}`, { pad: 'x'.repeat(1000), cookie: {} }, resolve));
  }
  assert.equal(err && err.code, 'ERR_SHMAP_FULL');
});

test('4 processes serve one set of sessions: each login is seen, and counted, everywhere', { timeout: 60_000 }, async (t) => {
  const map = openMap(t);
  const store = new ShmapSessionStore(map);
  const apps = await Promise.all([0, 1, 2, 3].map(() => new Promise((resolve, reject) => {
    const c = fork(path.join(__dirname, 'fixtures', 'adapters', 'session-app.js'), [map.path], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    t.after(() => c.kill('SIGKILL'));
    c.once('message', (m) => resolve({ url: `http://127.0.0.1:${m.port}`, child: c }));
    c.once('exit', (code) => reject(new Error(`app exited ${code}`)));
  })));
  const users = Array.from({ length: 12 }, (_, i) => `user${i}`);
  const cookies = {};
  for (const [i, user] of users.entries()) {
    const r = await request(apps[i % 4].url).post(`/login?user=${user}`).expect(200);
    cookies[user] = r.headers['set-cookie'][0].split(';')[0];
  }
  // Each user makes 2 requests on every process, in turn: views count across them.
  const pids = new Set();
  for (let round = 0; round < 2; round++) {
    for (const app of apps) {
      for (const user of users) {
        const r = await request(app.url).get('/me').set('Cookie', cookies[user]).expect(200);
        assert.equal(r.body.user, user);
        pids.add(r.body.pid);
      }
    }
  }
  assert.equal(pids.size, 4, 'served by 4 processes');
  for (const user of users) {
    const r = await request(apps[0].url).get('/me').set('Cookie', cookies[user]).expect(200);
    assert.equal(r.body.views, 9, `${user}: 8 views across processes, then this one`);
  }
  assert.equal(await promisify(store.length.bind(store))(), 12, 'the parent sees every session');
  await request(apps[3].url).post('/logout').set('Cookie', cookies.user0).expect(200);
  await request(apps[1].url).get('/me').set('Cookie', cookies.user0).expect(401);
  assert.equal(await promisify(store.length.bind(store))(), 11);
});
