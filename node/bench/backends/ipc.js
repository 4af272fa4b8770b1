'use strict';
// Baseline "no shared store": the primary holds a Map; each worker sends {op, key, value} over the
// child_process.fork() IPC channel (default 'json' serialization) and awaits the reply, one
// request outstanding per worker.
let store = new Map();

module.exports = {
  name: 'ipc',
  async setup({ keys, values }) {
    store = new Map(keys.map((k, i) => [k, values[i]]));
    return {};
  },
  attach(child) {
    child.on('message', (m) => {
      if (m.t !== 'ipc') return;
      if (m.op === 'get') child.send({ t: 'ipc', value: store.get(m.key) });
      else { store.set(m.key, m.value); child.send({ t: 'ipc' }); }
    });
  },
  async open() {
    let pending = null;
    const onMessage = (m) => { if (m.t === 'ipc') pending(m.value); };
    process.on('message', onMessage);
    const call = (msg) => new Promise((resolve) => { pending = resolve; process.send(msg); });
    return {
      sync: false,
      get: (key) => call({ t: 'ipc', op: 'get', key }),
      set: (key, value) => call({ t: 'ipc', op: 'set', key, value }),
      async close() { process.off('message', onMessage); },
    };
  },
  async teardown() { store = new Map(); },
};
