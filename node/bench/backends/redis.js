'use strict';
// Redis from Debian (redis-server), started here on 127.0.0.1 at a free port without persistence
// (--save '' --appendonly no) and stopped at shutdown. ioredis, one connection per worker, each
// command awaited before the next (no pipelining).
const net = require('net');
const { spawn, spawnSync } = require('child_process');

const HOST = '127.0.0.1';
let server = null;
let admin = null;
let port = 0;

const haveRedis = () => spawnSync('redis-server', ['--version']).status === 0;

function installRedis() {
  if (!process.getuid || process.getuid() !== 0) return 'redis-server is not installed and this is not root (apt-get install redis-server)';
  console.log('note: installing redis-server with apt-get ...');
  const apt = (...args) => spawnSync('apt-get', ['-qq', ...args], {
    stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  }).status === 0;
  if (!apt('install', '-y', 'redis-server')) apt('update') && apt('install', '-y', 'redis-server');
  return haveRedis() ? null : 'apt-get install redis-server failed';
}

const freePort = () => new Promise((resolve, reject) => {
  const s = net.createServer().on('error', reject).listen(0, HOST, () => {
    const { port } = s.address();
    s.close(() => resolve(port));
  });
});

const connect = (opts) => new (require('ioredis'))({ host: HOST, port, ...opts });

module.exports = {
  name: 'redis',
  async init() {
    try { require.resolve('ioredis'); } catch { return 'the ioredis package is not installed (npm install in node/bench)'; }
    const why = haveRedis() ? null : installRedis();
    if (why) return why;
    port = await freePort();
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
  async shutdown() {
    if (admin) await admin.quit();
    if (server) server.kill();
    server = admin = null;
  },
};
