'use strict';
// shmap: a shared-memory key/value cache for the processes (and threads) of one machine.
//
// The JS layer, one concern a module (lib/):
//   native.js        loads the addon; the key and version buffers shared with it
//   errors.js        coded errors (ERR_INVALID_ARG_TYPE, ...)
//   args.js          argument checks: keys, TTLs, sizes
//   codec.js         value type tags and decoding
//   decode-cache.js  per-handle cache of decoded strings, validated by record version
//   lease.js         getOrSet over cross-process leases
//   shmap.js         the Shmap class
//   compat.js        NodeShareCache, the original addon's API

const { Shmap } = require('./lib/shmap');
const { NodeShareCache } = require('./lib/compat');

module.exports = { Shmap, NodeShareCache };
module.exports.default = module.exports;
