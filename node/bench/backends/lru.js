'use strict';
// lru-cache (v11) inside the worker: the single-process ceiling. Nothing is shared — every worker
// builds its own cache holding the data set, and its sets change only its own copy — so with N
// workers this is what N private caches do on the same CPUs, not a shared store.
// Data: `setup` is told how the values were made (`make: { bytes }`, see values.js) when it can
// be, so a worker rebuilds them itself instead of receiving every value over IPC (10 x 1 MB per
// worker per run); otherwise the values travel in `opts`.
let made = null; // { bytes, value } cached per worker

function valueFor(make) {
  if (!made || made.bytes !== make.bytes || made.seed !== make.seed) {
    made = { ...make, value: require('../values').makeValue(make.bytes, make.seed) };
  }
  return made.value;
}

module.exports = {
  name: 'lru',
  async init() {
    try { require.resolve('lru-cache'); } catch { return 'the lru-cache package is not installed (npm install in node/bench)'; }
    return null;
  },
  async setup({ keys, values, make }) {
    if (make && values.every((v) => v === values[0])) return { keys, make };
    return { keys, values };
  },
  async open({ keys, values, make }) {
    const { LRUCache } = require('lru-cache');
    const cache = new LRUCache({ max: Math.max(1000, keys.length * 2) });
    keys.forEach((k, i) => cache.set(k, make ? valueFor(make) : values[i]));
    return { sync: true, get: (k) => cache.get(k), set: (k, v) => cache.set(k, v), close() { cache.clear(); } };
  },
};
