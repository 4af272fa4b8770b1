'use strict';
// What every adapter shares: each subpath loads from require and import (the same class),
// and every write passes an explicit TTL, never the map's maxAge.
const test = require('node:test');
const assert = require('node:assert/strict');
const { promisify } = require('util');
const { Shmap } = require('..');
const { uniqueName } = require('./helpers');

const SUBPATHS = {
  'shmap/keyv': 'KeyvShmap',
  'shmap/express-session': 'ShmapSessionStore',
  'shmap/express-rate-limit': 'ShmapStore',
  'shmap/rate-limiter-flexible': 'RateLimiterShmap',
};

test('each adapter loads from require and import, as the same class', async () => {
  for (const [sub, name] of Object.entries(SUBPATHS)) {
    const cjs = require(sub)[name];
    const esm = (await import(sub))[name];
    assert.equal(typeof cjs, 'function', sub);
    assert.equal(esm, cjs, `${sub}: import and require give the same class`);
  }
});

test('no adapter lets an entry inherit the map\'s maxAge', async (t) => {
  const map = new Shmap(uniqueName(t, 'ttl'), { reset: true, maxAge: 5 });
  t.after(() => map.close());
  const { KeyvShmap } = require('shmap/keyv');
  const { ShmapSessionStore } = require('shmap/express-session');
  const { ShmapStore } = require('shmap/express-rate-limit');
  const { RateLimiterShmap } = require('shmap/rate-limiter-flexible');
  const { default: Keyv } = await import('keyv');

  await new Keyv({ store: new KeyvShmap(map), namespace: 'kv' }).set('k', 'v'); // no TTL: never
  assert.equal(map.getRemainingTTL('kv:k'), Infinity);

  const sessions = new ShmapSessionStore(map);
  await promisify(sessions.set.bind(sessions))('s', { cookie: { expires: new Date(Date.now() + 60_000) } });
  assert.ok(map.getRemainingTTL('sess:s') > 59_000, 'the cookie\'s expiry');
  await promisify(sessions.set.bind(sessions))('b', { cookie: {} });
  assert.ok(map.getRemainingTTL('sess:b') > 86_000_000, 'ttlMs for a browser-session cookie');

  const rl = new ShmapStore(map);
  rl.init({ windowMs: 60_000 });
  rl.increment('ip');
  assert.ok(map.getRemainingTTL('rl:ip') > 59_000, 'windowMs');

  await new RateLimiterShmap({ storeClient: map, points: 5, duration: 60, keyPrefix: 'f' }).consume('ip');
  assert.ok(map.getRemainingTTL('f:ip') > 59_000, 'duration');
});
