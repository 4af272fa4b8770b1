'use strict';
// shmap/rate-limiter-flexible with the real library: consume, get, penalty, reward, block,
// delete, blockDuration, set, an insurance limiter for a full map, and exactly `points`
// consumed across 4 real processes.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');
const { RateLimiterRes, RateLimiterMemory } = require('rate-limiter-flexible');
const { Shmap } = require('..');
const { RateLimiterShmap } = require('../adapters/rate-limiter-flexible');
const { uniqueName, runNode, sleep } = require('./helpers');

function openMap(t, options = {}) {
  const map = new Shmap(uniqueName(t, 'rlf'), { reset: true, evict: false, ...options });
  t.after(() => map.close());
  return map;
}

test('consume, get, penalty, reward, delete', async (t) => {
  const map = openMap(t);
  const limiter = new RateLimiterShmap({ storeClient: map, points: 3, duration: 1, keyPrefix: 'p' });
  const r1 = await limiter.consume('u');
  assert.ok(r1 instanceof RateLimiterRes);
  assert.equal(r1.consumedPoints, 1);
  assert.equal(r1.remainingPoints, 2);
  assert.equal(r1.isFirstInDuration, true);
  assert.ok(r1.msBeforeNext > 900 && r1.msBeforeNext <= 1000, `${r1.msBeforeNext}`);
  const r2 = await limiter.consume('u', 2);
  assert.equal(r2.remainingPoints, 0);
  assert.equal(r2.isFirstInDuration, false);
  await assert.rejects(limiter.consume('u'), (res) => res instanceof RateLimiterRes && res.remainingPoints === 0 && res.consumedPoints === 4);
  const got = await limiter.get('u');
  assert.equal(got.consumedPoints, 4);
  assert.ok(got.msBeforeNext > 0 && got.msBeforeNext <= 1000);
  assert.equal(map.get('p:u'), 4, 'the counter is in the map under keyPrefix:key');
  const rewarded = await limiter.reward('u', 2);
  assert.equal(rewarded.consumedPoints, 2);
  const penalized = await limiter.penalty('u', 1);
  assert.equal(penalized.consumedPoints, 3);
  assert.equal(await limiter.delete('u'), true);
  assert.equal(await limiter.delete('u'), false);
  assert.equal(await limiter.get('u'), null);
  await limiter.consume('w');
  await sleep(1050);
  assert.equal(await limiter.get('w'), null, 'the window expired in the map');
  assert.equal((await limiter.consume('w')).consumedPoints, 1);
});

test('block and blockDuration; duration 0 never expires; set', async (t) => {
  const map = openMap(t);
  const limiter = new RateLimiterShmap({ storeClient: map, points: 2, duration: 1, blockDuration: 3, keyPrefix: 'b' });
  await limiter.consume('x');
  await limiter.consume('x');
  await assert.rejects(limiter.consume('x'), (res) => res instanceof RateLimiterRes);
  const left = map.getRemainingTTL('b:x');
  assert.ok(left > 2000 && left <= 3000, `blocked for blockDuration: ${left}`);
  await sleep(1100);
  await assert.rejects(limiter.consume('x'), 'still blocked after the 1 s window');
  const blocked = await limiter.block('y', 5);
  assert.equal(blocked.msBeforeNext, 5000);
  await assert.rejects(limiter.consume('y'));
  const forever = new RateLimiterShmap({ storeClient: map, points: 5, duration: 0, keyPrefix: 'f' });
  const r = await forever.consume('z');
  assert.equal(r.msBeforeNext, -1);
  assert.equal(map.getRemainingTTL('f:z'), Infinity);
  const s = await limiter.set('q', 7, 2);
  assert.equal(s.consumedPoints, 7);
  assert.equal((await limiter.get('q')).consumedPoints, 7);
});

test('a full map (evict: false) goes to the insurance limiter, or rejects with the error', async (t) => {
  const map = openMap(t, { maxSize: 1 << 20, initialSize: 1 << 20 });
  for (let i = 0; ; i++) {
    try { map.set(`pad${i}`, 'x'.repeat(4000)); } catch (e) { assert.equal(e.code, 'ERR_SHMAP_FULL'); break; }
  }
  const insured = new RateLimiterShmap({
    storeClient: map, points: 1, duration: 1, insuranceLimiter: new RateLimiterMemory({ points: 1, duration: 1 }),
  });
  assert.equal((await insured.consume('k')).consumedPoints, 1);
  await assert.rejects(insured.consume('k'), (res) => res instanceof RateLimiterRes, 'the insurance limiter counts');
  const bare = new RateLimiterShmap({ storeClient: map, points: 1, duration: 1 });
  await assert.rejects(bare.consume('k'), (e) => e.code === 'ERR_SHMAP_FULL');
});

test('4 processes x 100 consumes against 150 points: exactly 150 allowed', { timeout: 60_000 }, async (t) => {
  const map = openMap(t);
  const runs = await Promise.all([0, 1, 2, 3].map(() => runNode([path.join(__dirname, 'fixtures', 'adapters', 'rflex-child.js'), map.path, '100'])));
  let allowed = 0;
  let rejected = 0;
  for (const r of runs) {
    assert.equal(r.code, 0, r.stderr);
    const c = JSON.parse(r.stdout);
    allowed += c.allowed;
    rejected += c.rejected;
  }
  assert.equal(allowed, 150);
  assert.equal(rejected, 250);
  assert.equal(map.get('api:client-1'), 400);
});

test('storeClient is required', () => {
  assert.throws(() => new RateLimiterShmap({ points: 1, duration: 1 }), { code: 'ERR_INVALID_ARG_TYPE' });
});
