'use strict';
// No process can freeze the others (real processes, real SIGSTOP): a process stopped in the
// middle of a set loop delays other processes' writes at most lockTimeout (then
// ERR_SHMAP_LOCK_TIMEOUT, nothing changed), and after SIGCONT every acknowledged write is
// present; a process stopped while waiting in getOrSet delays no write at all.
// A writer stopped while it holds the writer lock (the parent stops it until the lock word in
// the file names a holder) times other processes' writes out naming its pid; a process stopped
// in the middle of keys()/entries() over 200,000 entries delays no write.
const test = require('node:test');
const assert = require('node:assert');
const path = require('path');
const fs = require('fs');
const { fork, spawnSync } = require('child_process');
const { Shmap } = require('..');
const { uniqueName, sleep } = require('./helpers');

const WORKER = path.join(__dirname, 'fixtures', 'stall-worker.js');
const HANG_MS = 8000; // only detects a hang; the assertions are about outcomes

// Shard 0's writer-lock word (format.md: the shard table at byte 12288, 512 bytes an entry, the
// lock word at its offset 64; 0 = free, otherwise the holder's process slot and incarnation).
// Maps of this release have one shard.
const WRITER_LOCK_OFF = 12288 + 64;
function writerLockWord(name) {
  const fd = fs.openSync(`/dev/shm/${name}`, 'r');
  try {
    const b = Buffer.alloc(4);
    fs.readSync(fd, b, 0, 4, WRITER_LOCK_OFF);
    return b.readUInt32LE(0);
  } finally {
    fs.closeSync(fd);
  }
}

// Whether process `pid` is stopped (state T in /proc/<pid>/stat, after the parenthesised name).
function isStopped(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).startsWith('T');
}

async function stop(child) {
  child.kill('SIGSTOP');
  const t0 = Date.now();
  while (!isStopped(child.pid)) {
    if (Date.now() - t0 > HANG_MS) throw new Error('SIGSTOP did not land');
    await sleep(1);
  }
}

// `shmap-inspect --verify` on the map, when the workspace build produced it (npm test does).
function verifyWithInspect(t, name) {
  const tool = path.join(__dirname, '..', '..', 'target', 'release', 'shmap-inspect');
  if (!fs.existsSync(tool)) {
    t.diagnostic(`skipped shmap-inspect --verify: ${tool} is not built`);
    return;
  }
  const r = spawnSync(tool, ['--verify', `/dev/shm/${name}`], { encoding: 'utf8', timeout: 30000 });
  assert.equal(r.status, 0, `shmap-inspect --verify: ${r.stdout}${r.stderr}`);
}

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

test('a writer stopped while it holds the writer lock times others out naming its pid; its writes survive', async (t) => {
  const name = uniqueName(t, 'stall-held');
  const m = new Shmap(name, { lockTimeout: 300, maxSize: 64 << 20 });
  const child = spawn(t, 'bigSetLoop', { name });
  await child.next('ready');
  const acks = [];
  child.on('message', (msg) => { if (msg.t === 'ack') acks.push(msg.i); });
  // Stop the child at random until the stop lands inside its critical section: the lock word
  // names a holder, and nobody but the stopped child writes. Each miss is resumed at once.
  let held = 0;
  let tries = 0;
  while (held < 3) {
    assert.ok(++tries < 500, `in ${tries} stops the child was never inside the writer lock`);
    await sleep(Math.floor(Math.random() * 4));
    await stop(child);
    if (writerLockWord(name) === 0) {
      child.kill('SIGCONT');
      continue;
    }
    held++;
    for (let j = 0; j < 3; j++) {
      const t0 = Date.now();
      assert.throws(() => m.set(`blocked${held}-${j}`, 'x'), (e) => {
        assert.equal(e.code, 'ERR_SHMAP_LOCK_TIMEOUT', e.message);
        assert.match(e.message, new RegExp(`held by pid ${child.pid}\\b`));
        return true;
      });
      assert.ok(Date.now() - t0 < HANG_MS, 'the wait was not bounded');
      assert.equal(m.get(`blocked${held}-${j}`), undefined, 'a timed-out write happened');
    }
    assert.ok(isStopped(child.pid));
    child.kill('SIGCONT');
    const before = acks.length;
    const t0 = Date.now();
    while (acks.length < before + 5) {
      assert.ok(Date.now() - t0 < 30000, 'the child made no progress after SIGCONT');
      await sleep(2);
    }
  }
  child.kill('SIGKILL');
  await new Promise((resolve) => child.once('exit', resolve));
  t.diagnostic(`${tries} stops, ${held} inside the writer lock; the child acknowledged ${acks.length} sets`);
  // Every acknowledged write is present: each key holds its last acknowledged value or a later
  // one (a set the kill cut off after it was done, before its ack).
  const last = new Map();
  for (const i of acks) last.set(i % 4, Math.max(last.get(i % 4) ?? -1, i));
  for (const [k, i] of last) {
    const v = m.get(`big${k}`);
    assert.ok(Buffer.isBuffer(v) && v.length === 1 << 20, `big${k} is missing`);
    const got = v.readUInt32LE(0);
    assert.ok(got >= i && got % 4 === k, `big${k} holds write ${got}, acknowledged ${i}`);
    assert.equal(v[v.length - 1], got & 0xff, `big${k} is torn`);
  }
  // The killed child may have held the lock: the next write recovers, then the map verifies.
  assert.ok(timedSet(m, 'after'));
  verifyWithInspect(t, name);
  m.close();
});

test('a process stopped in the middle of keys()/entries() over 200,000 entries delays no write', async (t) => {
  const name = uniqueName(t, 'stall-scan');
  const m = new Shmap(name, { lockTimeout: 3000 });
  const N = 200000;
  for (let i = 0; i < N; i++) m.set(`big${i}`, i);
  const child = spawn(t, 'scanner', { name });
  await child.next('ready');
  const first = await child.next('scan');
  assert.ok(first.n >= N, `a scan missed entries present throughout: ${first.n}`);
  for (let round = 0; round < 8; round++) {
    // Somewhere in the middle of a scan (one takes tens to hundreds of ms at this size).
    await sleep(Math.floor(Math.random() * 100));
    await stop(child);
    for (let j = 0; j < 20; j++) {
      // Overwrites and new keys: appends, cleaning, growth.
      assert.ok(timedSet(m, `big${((round * 20 + j) * 997) % N}`), 'a stopped scanner delayed a write past lockTimeout');
      assert.ok(timedSet(m, `new${round}-${j}`), 'a stopped scanner delayed a write past lockTimeout');
    }
    child.kill('SIGCONT');
  }
  // Every scan that completed saw every entry present throughout.
  const after = await child.next('scan');
  assert.ok(after.n >= N, `a scan missed entries present throughout: ${after.n}`);
  child.kill('SIGKILL');
  await new Promise((resolve) => child.once('exit', resolve));
  verifyWithInspect(t, name);
  m.close();
});
