'use strict';
// Shared by the tests: unique map names (cleaned up), forked workers with a message API.
const fs = require('fs');
const os = require('os');
const path = require('path');
const { fork } = require('child_process');

let counter = 0;

/** A fresh map name (so /dev/shm/<name>), removed when test `t` ends. */
function uniqueName(t, tag = 'map') {
  const name = `shmap-test-${tag}-${process.pid}-${++counter}-${Math.random().toString(36).slice(2, 8)}`;
  t.after(() => fs.rmSync(`/dev/shm/${name}`, { force: true }));
  return name;
}

/** A fresh directory on disk (under the OS temp dir), removed when test `t` ends. */
function tempDir(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shmap-test-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Asserts that `fn` throws an error with `code` (and of class `Ctor`, if given). */
// Asserts that fn throws a `Ctor` with `code`; returns what it threw.
function throwsCode(assert, fn, code, Ctor = Error) {
  let thrown;
  assert.throws(fn, (e) => {
    thrown = e;
    assert.ok(e instanceof Ctor, `expected a ${Ctor.name}, got ${e && e.constructor && e.constructor.name}: ${e && e.message}`);
    assert.equal(e.code, code, `expected code ${code}, got ${e.code}: ${e.message}`);
    return true;
  });
  return thrown;
}

const WORKER = path.join(__dirname, 'fixtures', 'worker.js');

/**
 * Forks fixtures/worker.js running `scenario` with `args`. The returned child has
 * `message(type)`: a promise of the next message `{t: type}` (rejected if the child exits
 * first), `send(obj)`, and `exited`: a promise of `{code, signal}`. Killed when `t` ends.
 */
function forkWorker(t, scenario, args = {}) {
  const child = fork(WORKER, [scenario, JSON.stringify(args)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv: [],
  });
  const queue = [];
  const waiters = [];
  let exitInfo = null;
  child.exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      exitInfo = { code, signal };
      for (const w of waiters.splice(0)) {
        w.reject(new Error(`worker ${scenario} exited (code ${code}, signal ${signal}) before sending '${w.type}'`));
      }
      resolve(exitInfo);
    });
  });
  child.on('message', (m) => {
    if (m && m.t === 'error') {
      const err = new Error(`worker ${scenario} failed: ${m.message}`);
      for (const w of waiters.splice(0)) w.reject(err);
      queue.push(m);
      return;
    }
    const i = waiters.findIndex((w) => w.type === m.t);
    if (i >= 0) waiters.splice(i, 1)[0].resolve(m);
    else queue.push(m);
  });
  child.message = (type) => {
    const i = queue.findIndex((m) => m.t === type || m.t === 'error');
    if (i >= 0) {
      const m = queue.splice(i, 1)[0];
      return m.t === 'error' ? Promise.reject(new Error(`worker ${scenario} failed: ${m.message}`)) : Promise.resolve(m);
    }
    if (exitInfo) {
      return Promise.reject(new Error(`worker ${scenario} exited (code ${exitInfo.code}, signal ${exitInfo.signal}) before sending '${type}'`));
    }
    return new Promise((resolve, reject) => waiters.push({ type, resolve, reject }));
  };
  t.after(() => { if (!exitInfo) child.kill('SIGKILL'); });
  return child;
}

/** Runs a node script to completion; resolves to {code, signal, stdout, stderr}. */
function runNode(args, options = {}) {
  const { spawn } = require('child_process');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

module.exports = { uniqueName, tempDir, throwsCode, forkWorker, runNode, sleep };
