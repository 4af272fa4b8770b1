'use strict';
// Redis from Debian (redis-server), started here on 127.0.0.1 at a free port without persistence
// (--save '' --appendonly no) and stopped at shutdown. ioredis, one connection per worker, each
// command awaited before the next (no pipelining).
const { spawn } = require('child_process');

const HOST = '127.0.0.1';
let server = null;
let admin = null;
let port = 0;

const { ensureRedisServer, freePort } = require('../../../scripts/redis-server');

const connect = (opts) => new (require('ioredis'))({ host: HOST, port, ...opts });

module.exports = {
  name: 'redis',
  async init() {
    try { require.resolve('ioredis'); } catch { return 'the ioredis package is not installed (npm install in node/bench)'; }
    const why = ensureRedisServer(console.log);
    if (why) return why;
    port = await freePort(HOST);
    server = spawn('redis-server', ['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no'],
      { stdio: ['ignore', 'ignore', 'inherit'] });
    process.on('exit', () => server && server.kill());
    admin = connect({ maxRetriesPerRequest: 50 });
    admin.on('error', () => {}); // retried until the server listens
    try { await admin.ping(); } catch (e) { return `redis-server did not answer: ${e.message}`; }
    return null;
  },
  async setup({ keys, values }) {
    await admin.flushall();
    await admin.mset(...keys.flatMap((k, i) => [k, values[i]]));
    return { port };
  },
  async open(opts) {
    port = opts.port;
    const c = connect({});
    await c.ping();
    return { sync: false, get: (k) => c.get(k), set: (k, v) => c.set(k, v), close: () => c.quit() };
  },
  async teardown() { await admin.flushall(); },
  /** The port of the server init() started (for other benches that bring their own client). */
  port: () => port,
  /** The server's pid (adapters.js counts its CPU time as the Redis stack's). */
  pid: () => server && server.pid,
  async shutdown() {
    if (admin) await admin.quit();
    if (server) server.kill();
    server = admin = null;
  },
};
