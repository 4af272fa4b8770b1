'use strict';
// A real redis-server for the shmap/redis tests: started on a free loopback port in a temp
// dir, without persistence; killable (SIGKILL) and restartable (empty) on the same port.
// Installed with apt-get when missing and running as root (CI); otherwise the tests skip with
// the reason this returns.
const fs = require('fs');
const os = require('os');
const net = require('net');
const path = require('path');
const { spawn } = require('child_process');

const HOST = '127.0.0.1';
const { ensureRedisServer, freePort } = require('../../scripts/redis-server');

/** null if redis-server and ioredis are usable (installing redis-server if root), else why not. */
function redisUnavailable() {
  try { require.resolve('ioredis'); } catch { return 'ioredis is not installed (npm install in node/)'; }
  return ensureRedisServer();
}

/** Starts redis-server; `t.after` kills it. Returns { port, kill(), restart() }. */
async function startRedis(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shmap-redis-'));
  const port = await freePort(HOST);
  let proc = null;
  const start = async () => {
    proc = spawn('redis-server', ['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no', '--dir', dir],
      { stdio: ['ignore', 'ignore', 'inherit'] });
    const until = Date.now() + 10_000;
    for (;;) {
      const ok = await new Promise((resolve) => {
        const s = net.connect(port, HOST, () => { s.end(); resolve(true); }).on('error', () => resolve(false));
      });
      if (ok) return;
      if (Date.now() > until) throw new Error('redis-server did not start within 10 s');
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  await start();
  const kill = () => new Promise((resolve) => {
    // Exited already (a signal leaves exitCode null and sets signalCode): a second kill()
    // (t.after's, after the test's own) must not wait for an 'exit' that has been.
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) { resolve(); return; }
    proc.once('exit', () => resolve());
    proc.kill('SIGKILL');
  });
  t.after(async () => { await kill(); fs.rmSync(dir, { recursive: true, force: true }); });
  return { port, host: HOST, kill, restart: start };
}

module.exports = { redisUnavailable, startRedis };
