'use strict';
// getOrSet over the map's cross-process leases: the first process to miss takes the key's
// lease and runs the loader; the others wait (sleeping, with backoff) until the value appears
// or the lease expires (`leaseMs`; its owner died or is too slow), then take it themselves.
//
// The handle gives this module a `port` with the few private steps it needs:
//   get(key)                 the value, or undefined
//   lease(key)               {state: 0, value} | {state: 1, token} | {state: 2} (someone loads)
//   leaseHeld(key)           whether another loader's lease is live (lock-free: a waiter polls
//                            this, so a waiter stopped mid-wait holds no writer off)
//   store(key, value, ttl)   stores a loaded value
//   release(key, token)      gives a lease back (a failed load)
//   flightKey(key)           this key's name in `inflight`

const { isThenable } = require('./args');

const SLEEPER = new Int32Array(new SharedArrayBuffer(4));
const sleepSync = (ms) => Atomics.wait(SLEEPER, 0, 0, ms);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Keys being loaded in this thread ("<path>\0<key>"), from the loader's call until its value
// (or its Promise's) is stored: a getOrSet of such a key in this thread, nested in the loader
// or while its Promise is pending, must not wait for a lease that only this thread can end.
const inflight = new Set();

// A sync loader is waited for synchronously.
function getOrSetSync(port, key, loader, ttl) {
  let delay = 1;
  for (;;) {
    const v = port.get(key);
    if (v !== undefined) return v;
    if (inflight.has(port.flightKey(key))) {
      // This thread is loading the key: waiting here would wait for itself.
      return finishLoad(port, key, loader(key), ttl, 0);
    }
    const st = port.lease(key);
    if (st.state === 0) return st.value;
    if (st.state === 1) return load(port, key, loader, ttl, st.token);
    do {
      sleepSync(delay);
      delay = Math.min(delay * 2, 50);
    } while (port.get(key) === undefined && port.leaseHeld(key));
  }
}

// An async loader: waits with timers (for a load in this thread too: the wait does not block it).
async function getOrSetAsync(port, key, loader, ttl) {
  let delay = 1;
  for (;;) {
    const v = port.get(key);
    if (v !== undefined) return v;
    const st = port.lease(key);
    if (st.state === 0) return st.value;
    if (st.state === 1) return load(port, key, loader, ttl, st.token);
    do {
      await sleep(delay);
      delay = Math.min(delay * 2, 50);
    } while (port.get(key) === undefined && port.leaseHeld(key));
  }
}

// Runs the loader under the lease `token`; the key is in `inflight` until its value is stored
// or the load failed (then the lease is given back).
function load(port, key, loader, ttl, token) {
  const fk = port.flightKey(key);
  inflight.add(fk);
  let value;
  try {
    value = loader(key);
    if (isThenable(value)) {
      return Promise.resolve(value).then(
        (v) => finishLoad(port, key, v, ttl, token),
        (e) => { release(port, key, token); throw e; },
      ).finally(() => inflight.delete(fk));
    }
  } catch (e) {
    // The loader threw, or so did its result's `then` getter.
    inflight.delete(fk);
    release(port, key, token);
    throw e;
  }
  inflight.delete(fk);
  return finishLoad(port, key, value, ttl, token);
}

function finishLoad(port, key, value, ttl, token) {
  try {
    if (isThenable(value)) {
      return Promise.resolve(value).then((v) => finishLoad(port, key, v, ttl, token));
    }
    port.store(key, value, ttl);
  } catch (e) {
    release(port, key, token);
    throw e;
  }
  return value;
}

function release(port, key, token) {
  if (!token) return;
  try {
    port.release(key, token);
  } catch {
    // Closed meanwhile: the lease expires by itself.
  }
}

module.exports = { getOrSetSync, getOrSetAsync };
