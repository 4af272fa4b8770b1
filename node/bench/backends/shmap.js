'use strict';
// shmap itself, through the Node package (`require('..')` from node/bench, i.e. node/index.js).
// The primary creates the map with reset: true per data set; workers open it without reset.
// If the package cannot be loaded yet, init() returns a reason and the driver skips shmap.
// SHMAP_BENCH_PKG=<path> loads it from elsewhere instead (e.g. fake-shmap.js, to check the harness).
// `variant(name, openOptions)` makes another backend on its own map whose workers open it with
// extra options (shmap-nodc.js: the decode cache off).
const fs = require('fs');
const path = require('path');

const PKG = path.resolve(process.env.SHMAP_BENCH_PKG || path.join(__dirname, '..', '..'));
const MAX_SIZE = 256 << 20; // room for 1 MB values in later reports

function variant(backendName, openOptions = {}) {
  const NAME = `${backendName === 'shmap' ? 'shmap-bench' : `shmap-bench-${backendName}`}-${process.pid}`; // a bare name means /dev/shm/<name>
  let map = null;
  process.on('exit', () => fs.rmSync(`/dev/shm/${NAME}`, { recursive: true, force: true })); // also on ^C; a no-op in workers
  return {
    name: backendName,
    PKG, // the package's path, for report.js's memory and growth jobs
    variant,
    async init() {
      let mod;
      try { mod = require(PKG); } catch (e) {
        return `cannot load the shmap package (${PKG}): ${String(e.message).split('\n')[0]}`;
      }
      return typeof mod.Shmap === 'function' ? null : 'the package does not export Shmap yet';
    },
    async setup({ keys, values }) {
      const { Shmap } = require(PKG);
      map = new Shmap(NAME, { maxSize: MAX_SIZE, reset: true });
      keys.forEach((k, i) => map.set(k, values[i]));
      return { name: NAME, maxSize: MAX_SIZE };
    },
    async open({ name, maxSize }) {
      const { Shmap } = require(PKG);
      const m = new Shmap(name, { maxSize, ...openOptions });
      return { sync: true, get: (k) => m.get(k), set: (k, v) => m.set(k, v), close: () => m.close() };
    },
    async teardown() {
      if (map) map.close();
      map = null;
      fs.rmSync(`/dev/shm/${NAME}`, { recursive: true, force: true }); // recursive: for fake-shmap.js
    },
  };
}

module.exports = variant('shmap');
