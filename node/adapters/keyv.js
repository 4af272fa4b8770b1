'use strict';
// shmap/keyv: a Keyv storage adapter (Keyv ^5.6, and so cache-manager 7) over a Shmap.
//
//   const Keyv = require('keyv');
//   const { KeyvShmap } = require('shmap/keyv');
//   const keyv = new Keyv({ store: new KeyvShmap('app-cache'), namespace: 'users' });
//
// Keyv serializes each value (with its `expires`) to a string; the adapter stores that string
// under Keyv's namespaced key (`<namespace>:<key>`) with Keyv's TTL as the entry's own shmap
// TTL, so expired entries are reclaimed by the map itself, in every process.

const { EventEmitter } = require('node:events');
const { openMap, optionsObject } = require('./common');
const { argType } = require('../lib/errors');

class KeyvShmap extends EventEmitter {
  /**
   * `map`: a Shmap, or a map name/path opened with `options.mapOptions`.
   * `options.namespace`: the namespace until Keyv sets its own (Keyv always does: 'keyv' by default).
   */
  constructor(map, options) {
    super();
    const o = optionsObject(options, 'options');
    this.map = openMap(map, o.mapOptions, 'KeyvShmap');
    this.namespace = o.namespace;
    // Keyv reads opts (and its serializer tests write to it). `dialect` names this store;
    // `url` is empty on purpose: stock Keyv 5.6 builds `keyv.iterator` only when the dialect
    // or url names one of its own stores (sqlite, redis, ...), and this is none of them.
    this.opts = { dialect: 'shmap', url: '' };
  }

  // The key prefix of the current namespace ('' without one).
  #prefix(namespace = this.namespace) {
    return namespace ? `${namespace}:` : '';
  }

  async get(key) {
    return this.map.get(key);
  }

  async getMany(keys) {
    if (!Array.isArray(keys)) throw argType('keys', 'an instance of Array', keys);
    return keys.map((k) => this.map.get(k));
  }

  /** Stores Keyv's serialized value; `ttl` (ms) becomes the entry's TTL, none = never expires. */
  async set(key, value, ttl) {
    this.map.set(key, value, ttlOf(ttl));
    return true;
  }

  async setMany(entries) {
    if (!Array.isArray(entries)) throw argType('entries', 'an instance of Array', entries);
    for (const { key, value, ttl } of entries) this.map.set(key, value, ttlOf(ttl));
    return entries.map(() => true);
  }

  async has(key) {
    return this.map.has(key);
  }

  async hasMany(keys) {
    if (!Array.isArray(keys)) throw argType('keys', 'an instance of Array', keys);
    return keys.map((k) => this.map.has(k));
  }

  async delete(key) {
    return this.map.delete(key);
  }

  /** True if any of `keys` was present. One call and one writer-lock hold. */
  async deleteMany(keys) {
    return this.map.deleteMany(keys) > 0;
  }

  /**
   * Removes the current namespace's keys only (in bounded batches); without a namespace,
   * every key of the map.
   */
  async clear() {
    const prefix = this.#prefix();
    if (prefix === '') this.map.clear();
    else this.map.deletePrefix(prefix);
  }

  /**
   * Yields `[key, serializedValue]` for the keys of `namespace` (every key without one), as
   * Keyv's `generateIterator` expects. A lazy scan: see the scan guarantees in README.md.
   */
  async* iterator(namespace) {
    for (const [key, value] of this.map.scan({ prefix: this.#prefix(namespace), values: true })) {
      yield [key, value];
    }
  }

  /** Nothing to release: the map stays open for the process's other users. */
  async disconnect() {}
}

// Keyv passes ms, or undefined for "no expiry": always an explicit TTL for the map.
function ttlOf(ttl) {
  return typeof ttl === 'number' && ttl > 0 ? ttl : 0;
}

module.exports = { KeyvShmap };
