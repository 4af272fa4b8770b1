'use strict';
// The `shmap` command (bin/shmap.js): inspect, dump, load, ls and rm, backed by the core through the addon,
// so it needs no Rust toolchain. `shmap inspect` is the shmap-inspect tool itself (its library
// is linked into the addon): the same options, output and exit codes.

const fs = require('fs');
const path = require('path');

const VERSION = require('../package.json').version;
const SHM = '/dev/shm';

const HELP = {
  main: `\
usage: shmap COMMAND [OPTIONS]
commands:
  inspect NAME     summary, --verify, --keys, --dump of one map (read-only; shmap inspect --help)
  dump NAME        its live entries as JSON lines (shmap inspect --dump)
  load NAME [FILE] store the entries of a dump (FILE, or stdin) in a map
  ls [DIR]         the maps in DIR (default ${SHM}): size, owner, processes, last exit
  rm NAME...       remove maps that no process has open (--force: even if one has)
  help [COMMAND]   this text, or a command's
options:
  -h, --help       help (also after a command)
  -V, --version
NAME is a path, or a bare map name: /dev/shm/NAME, as new Shmap(NAME) resolves it.`,
  ls: `\
usage: shmap ls [--json] [DIR]
Lists the shmap maps in DIR (default ${SHM}), one a line: name, apparent and allocated size,
owner and mode, the processes attached (pids), how the map was last left, live entries.
Files that are not maps are skipped; maps that cannot be read are listed with the reason.
Read-only, like shmap inspect.
options:
  --json       one JSON object a map, one a line
  -h, --help   this text
Exit status: 0, or 2 if DIR cannot be read or the command line is bad.`,
  dump: `\
usage: shmap dump [--prefix P] [--limit N] NAME
The map's live, unexpired entries, one JSON object a line: key, value (UTF-8, base64 or a
counter's integer), flags (the type of the value) and expiry, exactly as stored. The same as
shmap inspect --dump (read-only; see shmap inspect --help). shmap load reads it back.
Exit status: 0, 1 if damaged entries were left out (listed on stderr), 2 if NAME cannot be read.`,
  load: `\
usage: shmap load [--reset] [--max-size BYTES] NAME [FILE]
Stores every entry of a dump (shmap dump, or shmap inspect --dump, of this or an earlier
release) in the map NAME, creating it if needed: keys, values, types and expiries as they
were; entries that expired since the dump are left out. This is how a map's contents move to
a new format version, which refuses older files:
  npx shmap@OLD dump NAME > NAME.ndjson     # with the release that wrote the map
  npx shmap load --reset NAME NAME.ndjson   # with this one
A line that is not an entry, or an entry the map cannot store (say, it is full), stops the
load; the entries before it are stored, and the line is named.
options:
  --reset            re-create NAME empty first (needed when it is of an older version)
  --max-size BYTES   the map's maxSize, if it is created here
  -h, --help         this text
Exit status: 0 all stored, 1 stopped at a line, 2 NAME or FILE cannot be opened or bad usage.`,
  rm: `\
usage: shmap rm [--force] NAME...
Removes each map file, only when no process has it open: it takes the map's exclusive lock
without waiting (every process that has the map open holds a shared one), then unlinks the
file while holding it; a process opening the map meanwhile notices and opens the new one. A
map that is open is left alone, and the processes that have it open are named. Symbolic
links are not followed, and files that are not shmap maps are never removed.
options:
  -f, --force  unlink the file even if processes have it open: they keep using their copy
               (it disappears when the last one closes it), and the next open creates a new
               map, so processes that opened it before and after no longer share entries
  -h, --help   this text
Exit status: 0 all removed, 1 some map is open (not removed), 2 not found, not a map, error.`,
};

// Output sinks: { out(str|Buffer), err(str|Buffer) }.
function main(argv, io) {
  const [cmd, ...rest] = argv;
  const say = (s) => io.out(`${s}\n`);
  const complain = (s) => io.err(`${s}\n`);
  if (cmd === undefined) {
    complain(HELP.main);
    return 2;
  }
  if (cmd === '-h' || cmd === '--help') return say(HELP.main), 0;
  if (cmd === '-V' || cmd === '--version') return say(`shmap ${VERSION}`), 0;
  if (cmd === 'help') {
    const topic = rest[0];
    if (topic === 'inspect') return inspect(['--help'], io);
    if (topic && !HELP[topic]) return complain(`shmap: no command ${topic}\n\n${HELP.main}`), 2;
    return say(HELP[topic || 'main']), 0;
  }
  if (cmd === 'inspect') return inspect(rest, io);
  if (cmd === 'dump') return dump(rest, io);
  if (cmd === 'load') return load(rest, io);
  if (cmd === 'ls') return ls(rest, io);
  if (cmd === 'rm') return rm(rest, io);
  complain(`shmap: unknown command ${cmd}\n\n${HELP.main}`);
  return 2;
}

function native() {
  return require('./native').native;
}

// Runs the inspection tool with `args`; its output goes to io as it is produced.
function inspect(args, io) {
  return native().inspectCli(args.map(String), (fd, chunk) => (fd === 1 ? io.out : io.err)(chunk));
}

// `shmap dump`: the tool's --dump (its --help is ours).
function dump(args, io) {
  if (args.includes('-h') || args.includes('--help')) return io.out(`${HELP.dump}\n`), 0;
  if (!args.some((a) => !a.startsWith('-'))) return usageFailed(new UsageError('no NAME given', 'dump'), io);
  return inspect(['--dump', ...args], io);
}

function load(args, io) {
  const o = { reset: false, maxSize: undefined, operands: [] };
  try {
    for (let i = 0; i < args.length; i++) {
      const a = args[i];
      if (a === '-h' || a === '--help') return io.out(`${HELP.load}\n`), 0;
      if (a === '--reset') o.reset = true;
      else if (a === '--max-size') {
        const n = Number(args[++i]);
        if (!Number.isSafeInteger(n) || n <= 0) throw new UsageError(`--max-size needs a number of bytes, not ${args[i]}`, 'load');
        o.maxSize = n;
      } else if (a.startsWith('-') && a !== '-') throw new UsageError(`unknown option ${a}`, 'load');
      else o.operands.push(a);
    }
    if (o.operands.length < 1 || o.operands.length > 2) throw new UsageError('give NAME, and FILE or nothing (stdin)', 'load');
  } catch (e) {
    return usageFailed(e, io);
  }
  const [name, file] = o.operands;
  let r;
  try {
    r = native().loadCli(resolve(name), file === undefined || file === '-' ? undefined : file, o.reset, o.maxSize);
  } catch (e) {
    io.err(`shmap load: ${e.message}${e.code === 'ERR_SHMAP_VERSION' ? ' (--reset re-creates it)' : ''}\n`);
    return 2;
  }
  const summary = `${r.entries} entries stored${r.expired ? `, ${r.expired} expired since the dump left out` : ''}`;
  if (r.failedLine !== undefined && r.failedLine !== null) {
    io.err(`shmap load: line ${r.failedLine}: ${r.error} (${r.errorCode}); ${summary} before it\n`);
    return 1;
  }
  io.out(`${summary}\n`);
  return 0;
}

// The tool's --json summary of one file, or { error, error_kind } when it cannot be read.
function summaryOf(file) {
  const out = [];
  const err = [];
  const code = native().inspectCli(['--json', '--', file], (fd, chunk) => {
    (fd === 1 ? out : err).push(chunk);
  });
  const text = Buffer.concat(out).toString('utf8');
  try {
    return { code, ...JSON.parse(text) };
  } catch {
    return { code, error: Buffer.concat(err).toString('utf8').trim(), error_kind: 'other' };
  }
}

// Splits argv into flags (from `known`, by long or short name) and operands.
function parseFlags(args, known, cmd) {
  const flags = {};
  const operands = [];
  let onlyOperands = false;
  for (const a of args) {
    if (onlyOperands || !a.startsWith('-') || a === '-') {
      operands.push(a);
    } else if (a === '--') {
      onlyOperands = true;
    } else {
      const k = known[a];
      if (!k) throw new UsageError(`unknown option ${a}`, cmd);
      flags[k] = true;
    }
  }
  return { flags, operands };
}

class UsageError extends Error {
  constructor(message, cmd) {
    super(message);
    this.cmd = cmd;
  }
}

function usageFailed(e, io) {
  if (!(e instanceof UsageError)) throw e;
  io.err(`shmap ${e.cmd}: ${e.message}\n\n${HELP[e.cmd]}\n`);
  return 2;
}

// A bare name is /dev/shm/NAME (as the core resolves it); anything with a / is a path.
function resolve(name) {
  if (name.includes('/')) return name;
  return path.join(fs.existsSync(SHM) ? SHM : require('os').tmpdir(), name);
}

// uid -> user name, from /etc/passwd (no spawn; the uid when it is not listed).
function userNames() {
  const names = new Map();
  try {
    for (const line of fs.readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f.length > 2) names.set(Number(f[2]), f[0]);
    }
  } catch {
    // no /etc/passwd: show uids
  }
  return (uid) => names.get(uid) || String(uid);
}

// The processes that have files mapped or open, from /proc: "dev:ino" -> [{ pid, cmd }].
// Processes of other users are invisible unless we run as root.
function openers() {
  const byFile = new Map();
  let pids = [];
  try {
    pids = fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return byFile;
  }
  const note = (key, pid) => {
    const list = byFile.get(key) || [];
    if (!list.includes(pid)) list.push(pid);
    byFile.set(key, list);
  };
  for (const pid of pids) {
    if (Number(pid) === process.pid) continue;
    try {
      for (const line of fs.readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n')) {
        // address perms offset dev inode path
        const f = line.split(/\s+/);
        if (f.length < 6 || f[4] === '0') continue;
        const [maj, min] = f[3].split(':').map((h) => parseInt(h, 16));
        note(`${devOf(maj, min)}:${f[4]}`, Number(pid));
      }
    } catch {
      // gone, or not ours to read
    }
  }
  return byFile;
}

// st_dev as Node reports it (Linux's encoding of major:minor).
function devOf(major, minor) {
  return ((major & 0xfff) << 8) | (minor & 0xff) | ((minor & ~0xff) << 12) | ((major & ~0xfff) * 2 ** 32);
}

function commandOf(pid) {
  try {
    const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    return cmd.join(' ').slice(0, 80);
  } catch {
    return '?';
  }
}

// Who has a file open: `pids` (from the map's process table) and every process that maps it
// (also one without a process slot, such as an inspector), as [{ pid, cmd }].
function holdersOf(st, pids, mapped) {
  const all = new Set(pids.filter((p) => p > 0));
  for (const pid of mapped.get(`${st.dev}:${st.ino}`) || []) all.add(pid);
  return [...all].sort((a, b) => a - b).map((pid) => ({ pid, cmd: commandOf(pid) }));
}

function bytes(n) {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = -1;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u += 1;
  }
  return `${v.toFixed(1)} ${units[u]}`;
}

function ls(args, io) {
  let parsed;
  try {
    parsed = parseFlags(args, { '--json': 'json', '-h': 'help', '--help': 'help' }, 'ls');
    if (parsed.operands.length > 1) throw new UsageError('more than one DIR given', 'ls');
  } catch (e) {
    return usageFailed(e, io);
  }
  if (parsed.flags.help) return io.out(`${HELP.ls}\n`), 0;
  const dir = parsed.operands[0] || SHM;
  let names;
  try {
    names = fs.readdirSync(dir).sort();
  } catch (e) {
    io.err(`shmap ls: ${dir}: ${e.message}\n`);
    return 2;
  }
  const user = userNames();
  const mapped = openers();
  const rows = [];
  let unreadable = 0;
  for (const name of names) {
    const file = path.join(dir, name);
    let st;
    try {
      st = fs.lstatSync(file);
    } catch {
      continue; // removed meanwhile
    }
    if (!st.isFile()) continue;
    const s = summaryOf(file);
    if (s.error_kind === 'not_a_map') continue;
    if (s.error_kind === 'io' && st.uid !== process.getuid()) {
      unreadable += 1; // another user's file, maybe not a map at all
      continue;
    }
    const row = {
      name,
      path: file,
      apparent_bytes: st.size,
      allocated_bytes: st.blocks * 512,
      owner: user(st.uid),
      uid: st.uid,
      mode: (st.mode & 0o7777).toString(8).padStart(4, '0'),
      processes: holdersOf(st, s.error ? [] : (s.processes || []).map((p) => p.pid), mapped)
        .map((h) => h.pid),
      last_exit: s.error ? null : s.last_exit,
      live_entries: s.error ? null : s.entries && s.entries.live,
      problems: s.error ? null : (s.problems || []).length,
      error: s.error || null,
      error_kind: s.error_kind || null,
    };
    rows.push(row);
  }
  if (parsed.flags.json) {
    for (const r of rows) io.out(`${JSON.stringify(r)}\n`);
    return 0;
  }
  const others = unreadable
    ? `${unreadable} file${unreadable > 1 ? 's' : ''} of other users could not be read (not listed)\n`
    : '';
  if (!rows.length) {
    io.out(`no shmap maps in ${dir}\n${others}`);
    return 0;
  }
  const table = [['NAME', 'SIZE', 'ALLOCATED', 'OWNER', 'MODE', 'PROCESSES', 'LAST EXIT', 'ENTRIES']];
  for (const r of rows) {
    table.push([
      r.name, bytes(r.apparent_bytes), bytes(r.allocated_bytes), r.owner, r.mode,
      r.processes.length ? r.processes.join(',') : '-',
      r.error ? `unreadable (${r.error_kind})` : r.last_exit.replace(/_/g, ' '),
      r.live_entries == null ? '-' : String(r.live_entries),
    ]);
  }
  const widths = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)));
  for (const row of table) {
    io.out(`${row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]))).join('  ')}\n`);
  }
  io.out(others);
  return 0;
}

function rm(args, io) {
  let parsed;
  try {
    parsed = parseFlags(args, {
      '-f': 'force', '--force': 'force', '-h': 'help', '--help': 'help',
    }, 'rm');
    if (!parsed.flags.help && !parsed.operands.length) throw new UsageError('no NAME given', 'rm');
  } catch (e) {
    return usageFailed(e, io);
  }
  if (parsed.flags.help) return io.out(`${HELP.rm}\n`), 0;
  const { removeMap } = native();
  const force = Boolean(parsed.flags.force);
  let status = 0;
  const worst = (c) => {
    status = Math.max(status, c);
  };
  for (const name of parsed.operands) {
    const file = resolve(name);
    // Who has it open, for the message: read before the removal (the core's process table
    // gives the attached pids; /proc also shows processes that map the file without a slot).
    let st = null;
    try {
      st = fs.lstatSync(file);
    } catch {
      // absent: removeMap says so
    }
    const mapped = st ? openers() : new Map();
    let result;
    try {
      result = removeMap(file, force);
    } catch (e) {
      const why = e.code === 'ERR_SHMAP_NOT_A_MAP' ? 'not a shmap map' : e.message;
      io.err(`shmap rm: ${file}: ${why}; not removed\n`);
      worst(2);
      continue;
    }
    if (result.state === 1) {
      io.err(`shmap rm: ${file}: no such map\n`);
      worst(2);
      continue;
    }
    const holders = st ? holdersOf(st, result.pids, mapped) : [];
    const who = holders.length
      ? holders.map((h) => `pid ${h.pid} (${h.cmd})`).join(', ')
      : 'a process this user cannot see (another user\'s, or one still attaching)';
    if (result.state === 2) {
      io.err(`shmap rm: ${file} is open by ${who}; not removed (--force removes it anyway)\n`);
      worst(1);
      continue;
    }
    io.out(result.pids.length || (force && holders.length)
      ? `removed ${file} (--force; it was open by ${who}, which keep their copy)\n`
      : `removed ${file}\n`);
  }
  return status;
}

module.exports = { main, HELP };
