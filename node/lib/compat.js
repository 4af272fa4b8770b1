'use strict';
// The original C++ addon's API (../shared/seed/README.md), for code written against it.

const { MIN_SIZE } = require('./native');
const { argType } = require('./errors');
const { ttlArg, sizeArg } = require('./args');
const { Shmap } = require('./shmap');

/**
 * `new NodeShareCache(name, size, reset)`. `size` is the map's initial size in bytes (it grows
 * by itself up to setMaxSize, 800 MB by default); entries expire after setMaxAge ms (default
 * 2000) unless set() is given its own; setLock(false) makes the handle read-only.
 */
class NodeShareCache {
  #map;
  #maxAge = 2000;

  constructor(name, size, reset) {
    if (typeof name !== 'string') throw argType('name', 'of type string', name);
    const initialSize = size === undefined ? MIN_SIZE : Math.max(sizeArg(size, 'size'), MIN_SIZE);
    const opts = { initialSize, reset: Boolean(reset) };
    if (initialSize > 800 * 1024 * 1024) opts.maxSize = initialSize;
    this.#map = new Shmap(name, opts);
  }

  /** The Shmap behind this cache, for the rest of the API. */
  get shmap() { return this.#map; }

  get(key) { return this.#map.get(key); }

  set(key, value, maxAgeMs) {
    this.#map.set(key, value, maxAgeMs === undefined ? this.#maxAge : maxAgeMs);
    return true;
  }

  del(key) { return this.#map.delete(key); }

  /** Time to live in ms of entries this handle sets (default 2000; 0 = never expire). */
  setMaxAge(ms) {
    if (ms === undefined) throw argType('ms', 'of type number', ms);
    this.#maxAge = ttlArg(ms, 'ms');
  }

  setMaxSize(bytes) { this.#map.setMaxSize(bytes); }

  setLock(on) { this.#map.setLock(on); }

  stat() { return this.#map.stats(); }

  /** Closes this handle (the map and its data stay for the other processes). */
  destroy() { this.#map.close(); }
}

module.exports = { NodeShareCache };
