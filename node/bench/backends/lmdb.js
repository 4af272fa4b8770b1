'use strict';
// lmdb-js on tmpfs (/dev/shm) with noSync: true. Every worker opens the same environment.
// useWritemap: true writes pages straight into the shared mapping, as shmap does (no malloc'd page
//   copies and pwrite()s at commit); on tmpfs with noSync it costs no durability, and measured here
//   it made writes 25-40 % faster with 5 workers (README.md).
// Reads: encoding 'string', so get() is getString(): one native call copying the UTF-8 bytes into a
//   JS string (no msgpack), the same work shmap's get does. No `cache` (lmdb-js's JS-side cache).
// Writes: putSync by default — one synchronous write transaction per set, committed (visible to
//   all processes) before it returns, like shmap's set. That is the fastest fair mode. The other
//   mode, `--lmdb-write put`, awaits each put(): lmdb-js queues it for its write thread, which
//   commits once per event turn, so a one-at-a-time writer pays a thread hand-off and an event-loop
//   turn per set (see README.md for the numbers).
// Note on reads in a synchronous loop: lmdb-js keeps its read transaction (snapshot) until the next
//   timer tick or its own next commit, so a read-only loop reuses one snapshot — as a request
//   handler would within one event turn.
const fs = require('fs');

const DIR = `/dev/shm/shmap-bench-lmdb-${process.pid}`;
const OPTIONS = { noSync: true, useWritemap: true, encoding: 'string' };
let write = 'putSync';
let db = null;
process.on('exit', () => fs.rmSync(DIR, { recursive: true, force: true })); // also on ^C; a no-op in workers

module.exports = {
  name: 'lmdb',
  async init(cfg) {
    try { require.resolve('lmdb'); } catch { return 'the lmdb package is not installed (npm install in node/bench)'; }
    write = (cfg && cfg.lmdbWrite) || write;
    return ['putSync', 'put'].includes(write) ? null : `unknown lmdb write mode ${write}`;
  },
  async setup({ keys, values }) {
    fs.rmSync(DIR, { recursive: true, force: true });
    db = require('lmdb').open({ path: DIR, ...OPTIONS });
    keys.forEach((k, i) => db.putSync(k, values[i]));
    return { path: DIR, write };
  },
  async open({ path, write }) {
    const env = require('lmdb').open({ path, ...OPTIONS });
    const sync = write === 'putSync';
    return {
      sync,
      get: (k) => env.get(k),
      set: sync ? (k, v) => env.putSync(k, v) : (k, v) => env.put(k, v),
      close: () => env.close(),
    };
  },
  async teardown() {
    if (db) await db.close();
    db = null;
    fs.rmSync(DIR, { recursive: true, force: true });
  },
};
