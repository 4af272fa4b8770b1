'use strict';
// Debian's redis-server for the tests and benchmarks that need a real one, and free loopback
// ports to start it (or anything else) on. One place for the install rule: when redis-server
// is missing and this process is root (as on CI), apt-get installs it (updating the package
// lists only if the first try fails); elsewhere callers skip with the reason returned.
const net = require('net');
const { spawnSync } = require('child_process');

const haveRedisServer = () => spawnSync('redis-server', ['--version']).status === 0;

/** null once redis-server is runnable (installing it if root), else why it is not. */
function ensureRedisServer(log = () => {}) {
  if (haveRedisServer()) return null;
  if (!process.getuid || process.getuid() !== 0) {
    return 'redis-server is not installed and this is not root (apt-get install redis-server)';
  }
  log('note: installing redis-server with apt-get ...');
  const apt = (...args) => spawnSync('apt-get', ['-qq', ...args], {
    stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  }).status === 0;
  if (!apt('install', '-y', 'redis-server')) apt('update') && apt('install', '-y', 'redis-server');
  return haveRedisServer() ? null : 'apt-get install redis-server failed';
}

/** A TCP port free on `host` right now. */
const freePort = (host = '127.0.0.1') => new Promise((resolve, reject) => {
  const s = net.createServer().on('error', reject).listen(0, host, () => {
    const { port } = s.address();
    s.close(() => resolve(port));
  });
});

module.exports = { ensureRedisServer, freePort };
