'use strict';
// No process can freeze the others (real processes, real SIGSTOP): a process stopped in the
// middle of a set loop delays other processes' writes at most lockTimeout (then
// ERR_SHMAP_LOCK_TIMEOUT, nothing changed), and after SIGCONT every acknowledged write is
// present; a process stopped while waiting in getOrSet delays no write at all.
const test = require('node:test');
const assert = require('node:assert');
const path = require('path');
const { fork } = require('child_process');
const { Shmap } = require('..');
const { uniqueName, sleep } = require('./helpers');

const WORKER = path.join(__dirname, 'fixtures', 'stall-worker.js');
const HANG_MS = 8000; // only detects a hang; the assertions are about outcomes

function spawn(t, scenario, args) {
  const child = fork(WORKER, [scenario, JSON.stringify(args)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const seen = [];
  child.on('message', (m) => seen.push(m));
  child.next = async (type) => {
    const t0 = Date.now();
    for (;;) {
      const i = seen.findIndex((m) => m.t === type);
      if (i >= 0) return seen.splice(i, 1)[0];
      if (Date.now() - t0 > 30000) throw new Error(`worker never sent ${type}`);
      await sleep(2);
    }
  };
  child.acked = () => {
    let upTo = -1;
    for (const m of seen) if (m.t === 'ack') upTo = Math.max(upTo, m.upTo);
    return upTo;
  };
  t.after(() => child.kill('SIGKILL'));
  return child;
}

// One write; true if acknowledged, false if it timed out (the only accepted failure).
function timedSet(m, key) {
  const t0 = Date.now();
  try {
    m.set(key, 'parent');
    return true;
  } catch (e) {
    assert.equal(e.code, 'ERR_SHMAP_LOCK_TIMEOUT', e.message);
    assert.match(e.message, /pid/);
    return false;
  } finally {
    assert.ok(Date.now() - t0 < HANG_MS, `a set hung for ${Date.now() - t0} ms`);
  }
}

test('a writer stopped mid-set delays others at most lockTimeout; no acknowledged write is lost', async (t) => {
  const name = uniqueName(t, 'stall');
  const m = new Shmap(name, { lockTimeout: 300 });
  const child = spawn(t, 'setLoop', { name });
  await child.next('ready');
  const mine = [];
  let timeouts = 0;
  for (let round = 0; round < 10; round++) {
    await sleep(5 + Math.floor(Math.random() * 30));
    child.kill('SIGSTOP');
    for (let j = 0; j < 5; j++) {
      const key = `p${round}-${j}`;
      if (timedSet(m, key)) mine.push(key); else timeouts++;
    }
    child.kill('SIGCONT');
  }
  await sleep(50);
  child.kill('SIGKILL');
  await new Promise((resolve) => child.once('exit', resolve));
  const upTo = child.acked();
  assert.ok(upTo > 0, 'the child acknowledged nothing');
  for (const key of mine) assert.equal(m.get(key), 'parent');
  for (let i = 0; i <= upTo; i++) assert.equal(m.get(`c${i}`), `v${i}`.repeat(8), `acknowledged c${i} is missing`);
  // A write after the kill recovers whatever the killed child held.
  assert.ok(timedSet(m, 'after'));
  t.diagnostic(`${mine.length} parent writes acknowledged, ${timeouts} timed out; child acknowledged ${upTo + 1}`);
  m.close();
});

test('a process stopped while waiting in getOrSet delays no write', async (t) => {
  const name = uniqueName(t, 'stall-lease');
  const m = new Shmap(name, { lockTimeout: 3000 });
  let finish;
  const loading = m.getOrSet('slow', () => new Promise((resolve) => { finish = resolve; }));
  const child = spawn(t, 'waiter', { name });
  await child.next('waiting');
  for (let round = 0; round < 8; round++) {
    await sleep(Math.floor(Math.random() * 30));
    child.kill('SIGSTOP');
    for (let j = 0; j < 20; j++) {
      assert.ok(timedSet(m, `w${round}-${j}`), 'a stopped getOrSet waiter held a write off');
    }
    child.kill('SIGCONT');
  }
  finish('loaded');
  assert.equal(await loading, 'loaded');
  const got = await child.next('got');
  assert.equal(got.v, 'loaded');
  m.close();
});
