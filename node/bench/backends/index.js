'use strict';
// Loads a backend module by name and fills in the optional hooks (see README.md).
const NOOP = async () => {};
const DEFAULTS = { init: async () => null, setup: async () => ({}), attach() {}, teardown: NOOP, shutdown: NOOP };

const NAMES = ['shmap', 'shmap-nodc', 'ipc', 'lmdb', 'redis', 'lru'];
const load = (name) => ({ ...DEFAULTS, ...require(`./${name}`) });

module.exports = { NAMES, load };
