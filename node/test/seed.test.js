'use strict';
// Seed compatibility: the original addon's README usage (fixtures/seed-shm-object.js, verbatim
// but for the require path) runs unchanged in a cluster app.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const { runNode } = require('./helpers');

test('the original README usage runs in a cluster', { timeout: 60_000 }, async (t) => {
  // The original hard-codes its map name ("Highscorev3"); the fixture adds this run's suffix.
  const suffix = `-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
  const file = `/dev/shm/Highscorev3${suffix}`;
  t.after(() => fs.rmSync(file, { force: true }));
  const r = await runNode([path.join(__dirname, 'fixtures', 'seed-app.js')],
    { env: { ...process.env, SHMAP_SEED_SUFFIX: suffix } });
  assert.ok(fs.existsSync(file), 'the map has the suffixed name');
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.reports.length, 3);
  for (const rep of out.reports) {
    assert.deepEqual(JSON.parse(rep.highscore), { name: 'ada', score: 100 });
    assert.equal(rep.own, `hello from worker ${rep.id}`);
  }
  assert.deepEqual(out.seen, out.reports.map((rep) => `hello from worker ${rep.id}`));
  assert.equal(out.stat.entries, 4);
});
