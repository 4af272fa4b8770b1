'use strict';
// A stand-in for the shmap package with the same API, one file per key in a directory under
// /dev/shm, so the harness's shmap path can be checked before the addon exists:
//   SHMAP_BENCH_PKG=node/bench/fake-shmap.js node node/bench/cluster.js --quick --backends shmap
// Its speed means nothing.
const fs = require('fs');
const path = require('path');

class Shmap {
  constructor(nameOrPath, { reset = false } = {}) {
    this.dir = nameOrPath.includes('/') ? nameOrPath : path.join('/dev/shm', nameOrPath);
    if (reset) fs.rmSync(this.dir, { recursive: true, force: true });
    fs.mkdirSync(this.dir, { recursive: true });
  }
  file(key) { return path.join(this.dir, encodeURIComponent(key)); }
  get(key) {
    try { return fs.readFileSync(this.file(key), 'utf8'); } catch { return undefined; }
  }
  set(key, value) {
    const tmp = `${this.file(key)}.${process.pid}`;
    fs.writeFileSync(tmp, value);
    fs.renameSync(tmp, this.file(key));
  }
  close() {}
}

module.exports = { Shmap };
