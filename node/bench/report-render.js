'use strict';
// Renders report.js's data into report.md, data.json and hand-written SVG charts.
// write(outDir, data) is all there is; `node report.js --render data.json [--out DIR]` calls it alone.
const fs = require('fs');
const path = require('path');

const MiB = 1 << 20;
const MIXES = ['read-only', 'read+write', 'read-first'];
const MIX_TEXT = { 'read-only': 'read-only (all gets)', 'read+write': 'read+write (1 get : 1 set)', 'read-first': 'read-first (10 gets : 1 set)' };
const ORDER = ['shmap', 'lru', 'lmdb', 'redis', 'ipc'];
const COLORS = { shmap: '#1f5fbf', lru: '#9a9a9a', lmdb: '#2e9e44', redis: '#d43d2f', ipc: '#f08c00' };
const LABEL = { shmap: 'shmap', lru: 'lru-cache (private, 1 process)', lmdb: 'lmdb-js', redis: 'Redis (ioredis)', ipc: 'process.send IPC' };
const SHORT = { shmap: 'shmap', lru: 'lru-cache', lmdb: 'lmdb-js', redis: 'Redis', ipc: 'IPC' };

// ------------------------------------------------------------------ number formats
function compact(x) {
  if (x == null || !Number.isFinite(x)) return '—';
  const a = Math.abs(x);
  const f = (v, s) => `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)}${s}`;
  if (a >= 1e9) return f(x / 1e9, 'G');
  if (a >= 1e6) return f(x / 1e6, 'M');
  if (a >= 1e3) return f(x / 1e3, 'k');
  return a >= 100 ? x.toFixed(0) : a >= 10 ? x.toFixed(1) : x.toFixed(2);
}
const int = (x) => (x == null ? '—' : Math.round(x).toLocaleString('en-US'));
const mib = (x, d = 1) => (x == null ? '—' : (x / MiB).toFixed(d));
const ratio = (a, b) => (a && b ? `${(a / b) >= 10 ? (a / b).toFixed(0) : (a / b).toFixed(1)}×` : '—');
const us = (ns) => (ns == null ? '—' : ns < 10e3 ? (ns / 1e3).toFixed(2) : ns < 100e3 ? (ns / 1e3).toFixed(1) : int(ns / 1e3));
const spread = (c) => (c.rounds.length > 1 && c.perProcess ? `±${Math.round(((c.max - c.min) / 2 / c.perProcess) * 100)}%` : '');
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

// ------------------------------------------------------------------ SVG
// A grid of bar-chart panels sharing one y axis (log or linear). Each panel has groups of bars;
// a bar is { key, v, lo, hi, base, label } (lo/hi: a whisker; base: a lighter part from 0).
function barChart({ title, subtitle, rows, series, yLabel, log = true, fmt = compact, barW = 11, note }) {
  const all = rows.flat().flatMap((p) => p.groups.flatMap((g) => g.bars)).filter((b) => b.v > 0);
  const vals = all.flatMap((b) => [b.v, b.lo, b.hi].filter((x) => x > 0));
  let y0, y1;
  if (log) {
    y0 = 10 ** Math.floor(Math.log10(Math.min(...vals)));
    y1 = 10 ** Math.ceil(Math.log10(Math.max(...vals) * 1.6));
  } else {
    y0 = 0;
    const m = Math.max(...vals) * 1.12, step = 10 ** Math.floor(Math.log10(m));
    y1 = Math.ceil(m / step) * step;
  }
  const plotH = 250, left = 64, gap = 14, groupGap = 14, top = 70 + Math.ceil(series.length / 4) * 16, rowGap = 64;
  const panelW = (p) => p.groups.length * (p.groups[0].bars.length * barW + groupGap) + groupGap;
  const rowW = (r) => r.reduce((a, p) => a + panelW(p) + gap, 0);
  const width = Math.max(left + Math.max(...rows.map(rowW)) + 10, 560);
  const height = top + rows.length * (plotH + rowGap) + (note ? 18 : 0) + 10;
  const Y = (v) => plotH - (log ? (Math.log10(Math.max(v, y0)) - Math.log10(y0)) / (Math.log10(y1) - Math.log10(y0)) : (v - y0) / (y1 - y0)) * plotH;
  const o = [];
  o.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="11">`);
  o.push(`<rect width="100%" height="100%" fill="#fff"/>`);
  o.push(`<text x="${left}" y="22" font-size="15" font-weight="bold">${esc(title)}</text>`);
  if (subtitle) o.push(`<text x="${left}" y="40" fill="#555">${esc(subtitle)}</text>`);
  series.forEach((s, i) => {
    const x = left + (i % 4) * 190, y = 58 + Math.floor(i / 4) * 16;
    o.push(`<rect x="${x}" y="${y - 9}" width="11" height="11" fill="${s.color}"/><text x="${x + 16}" y="${y}">${esc(s.name)}</text>`);
  });
  rows.forEach((row, ri) => {
    const ty = top + ri * (plotH + rowGap);
    // y axis and grid
    const ticks = [];
    if (log) {
      for (let d = y0; d <= y1 * 1.0001; d *= 10) {
        ticks.push([d, true]);
        if (d < y1) for (const m of [2, 5]) ticks.push([d * m, false]);
      }
    } else {
      const step = (y1 - y0) / 5;
      for (let v = y0; v <= y1 + 1e-9; v += step) ticks.push([v, true]);
    }
    const totalW = rowW(row) - gap;
    for (const [v, major] of ticks) {
      const y = ty + Y(v);
      o.push(`<line x1="${left}" x2="${left + totalW}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" stroke="${major ? '#ccc' : '#eee'}"/>`);
      if (major) o.push(`<text x="${left - 6}" y="${(y + 4).toFixed(1)}" text-anchor="end" fill="#333">${esc(fmt(v))}</text>`);
    }
    o.push(`<text transform="translate(14 ${ty + plotH / 2}) rotate(-90)" text-anchor="middle" fill="#333">${esc(yLabel)}</text>`);
    let px = left;
    for (const p of row) {
      const w = panelW(p);
      o.push(`<rect x="${px}" y="${ty}" width="${w}" height="${plotH}" fill="none" stroke="#999"/>`);
      o.push(`<text x="${px + w / 2}" y="${ty + plotH + 34}" text-anchor="middle" font-weight="bold">${esc(p.title)}</text>`);
      let gx = px + groupGap;
      for (const g of p.groups) {
        o.push(`<text x="${gx + (g.bars.length * barW) / 2}" y="${ty + plotH + 15}" text-anchor="middle" fill="#333">${esc(g.label)}</text>`);
        g.bars.forEach((b, bi) => {
          const x = gx + bi * barW;
          const s = series.find((q) => q.key === b.key);
          if (!(b.v > 0)) {
            o.push(`<text x="${x + barW / 2}" y="${ty + plotH - 4}" text-anchor="middle" font-size="8" fill="#999">–</text>`);
            return;
          }
          const y = ty + Y(b.v);
          o.push(`<rect x="${x + 0.5}" y="${y.toFixed(1)}" width="${barW - 1}" height="${(ty + plotH - y).toFixed(1)}" fill="${s.color}"><title>${esc(`${s.name} ${g.label}: ${b.label || fmt(b.v)}`)}</title></rect>`);
          if (b.base > 0) {
            const yb = ty + Y(b.base);
            o.push(`<rect x="${x + 0.5}" y="${yb.toFixed(1)}" width="${barW - 1}" height="${(ty + plotH - yb).toFixed(1)}" fill="#fff" fill-opacity="0.55"/>`);
          }
          if (b.lo > 0 && b.hi > 0) {
            const cx = x + barW / 2;
            o.push(`<path d="M${cx} ${(ty + Y(b.lo)).toFixed(1)}V${(ty + Y(b.hi)).toFixed(1)}M${cx - 2.5} ${(ty + Y(b.lo)).toFixed(1)}h5M${cx - 2.5} ${(ty + Y(b.hi)).toFixed(1)}h5" stroke="#222" stroke-width="0.8" fill="none"/>`);
          }
          const ly = Math.min(y, b.hi > 0 ? ty + Y(b.hi) : y) - 3;
          o.push(`<text transform="translate(${x + barW / 2 + 3} ${ly.toFixed(1)}) rotate(-90)" font-size="8.5" fill="#222">${esc(b.label || fmt(b.v))}</text>`);
        });
        gx += g.bars.length * barW + groupGap;
      }
      px += w + gap;
    }
  });
  if (note) o.push(`<text x="${left}" y="${height - 10}" fill="#555" font-size="10">${esc(note)}</text>`);
  o.push('</svg>');
  return `${o.join('\n')}\n`;
}

// A line chart: series of points {x, y}, log y axis, linear x.
function lineChart({ title, subtitle, series, xLabel, yLabel, note }) {
  const width = 760, height = 380, left = 70, top = 64, plotW = width - left - 30, plotH = height - top - 70;
  const pts = series.flatMap((s) => s.points);
  const xs = pts.map((p) => p.x), ys = pts.map((p) => p.y).filter((y) => y > 0);
  const x1 = Math.max(...xs) * 1.02 || 1;
  const y0 = 2 ** Math.floor(Math.log2(Math.min(...ys))), y1 = 2 ** Math.ceil(Math.log2(Math.max(...ys) * 1.1));
  const X = (x) => left + (x / x1) * plotW;
  const Y = (y) => top + plotH - ((Math.log2(Math.max(y, y0)) - Math.log2(y0)) / (Math.log2(y1) - Math.log2(y0))) * plotH;
  const o = [`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="${left}" y="22" font-size="15" font-weight="bold">${esc(title)}</text>`];
  if (subtitle) o.push(`<text x="${left}" y="40" fill="#555">${esc(subtitle)}</text>`);
  series.forEach((s, i) => o.push(`<rect x="${left + i * 170}" y="${48}" width="11" height="3" fill="${s.color}"/><text x="${left + i * 170 + 16}" y="${54}">${esc(s.name)}</text>`));
  for (let y = y0; y <= y1; y *= 2) {
    o.push(`<line x1="${left}" x2="${left + plotW}" y1="${Y(y).toFixed(1)}" y2="${Y(y).toFixed(1)}" stroke="#e4e4e4"/>`);
    o.push(`<text x="${left - 6}" y="${(Y(y) + 4).toFixed(1)}" text-anchor="end">${esc(y >= 1024 ? `${y / 1024} GiB` : `${y} MiB`)}</text>`);
  }
  const xstep = 10 ** Math.floor(Math.log10(x1 / 2)) * (x1 / 10 ** Math.floor(Math.log10(x1 / 2)) > 10 ? 5 : 1);
  for (let x = 0; x <= x1; x += xstep) {
    o.push(`<line x1="${X(x).toFixed(1)}" x2="${X(x).toFixed(1)}" y1="${top}" y2="${top + plotH}" stroke="#eee"/>`);
    o.push(`<text x="${X(x).toFixed(1)}" y="${top + plotH + 16}" text-anchor="middle">${esc(+x.toFixed(3))}</text>`);
  }
  o.push(`<rect x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="#999"/>`);
  o.push(`<text x="${left + plotW / 2}" y="${top + plotH + 36}" text-anchor="middle">${esc(xLabel)}</text>`);
  o.push(`<text transform="translate(16 ${top + plotH / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`);
  for (const s of series) {
    const d = s.points.map((p, i) => `${i ? 'L' : 'M'}${X(p.x).toFixed(1)} ${Y(p.y).toFixed(1)}`).join('');
    o.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.8"${s.dash ? ' stroke-dasharray="5 3"' : ''}/>`);
    for (const p of s.points) o.push(`<circle cx="${X(p.x).toFixed(1)}" cy="${Y(p.y).toFixed(1)}" r="2.4" fill="${s.color}"/>`);
  }
  if (note) o.push(`<text x="${left}" y="${height - 10}" fill="#555" font-size="10">${esc(note)}</text>`);
  o.push('</svg>');
  return `${o.join('\n')}\n`;
}

// ------------------------------------------------------------------ charts from data
const backendsOf = (data) => ORDER.filter((b) => (data.backends || []).includes(b));
const sizesOf = (cells) => [...new Set(cells.map((c) => c.size))];

function throughputCharts(data) {
  const T = data.throughput;
  if (!T || !T.cells.length) return {};
  const backends = backendsOf(data), out = {};
  for (const mix of MIXES) {
    const cells = T.cells.filter((c) => c.mix === mix);
    if (!cells.length) continue;
    const panels = sizesOf(cells).map((size) => ({
      title: `${size} values (${int(cells.find((c) => c.size === size).valueBytes)} B)`,
      groups: T.workers.map((n) => ({
        label: `${n} worker${n > 1 ? 's' : ''}`,
        bars: backends.map((b) => {
          const c = cells.find((x) => x.size === size && x.workers === n && x.backend === b);
          return c ? { key: b, v: c.perProcess, lo: c.min, hi: c.max } : { key: b, v: 0 };
        }),
      })),
    }));
    out[`throughput-${mix.replace('+', '-')}.svg`] = barChart({
      title: `${MIX_TEXT[mix]}: operations per second per process`,
      subtitle: `${T.keys} keys; median of ${T.rounds} rounds (whiskers: min–max); ${T.seconds.join('/')} s runs; log scale; ${data.meta.machine.nproc} cpus, ${data.meta.date.slice(0, 10)}`,
      rows: [panels],
      series: backends.map((b) => ({ key: b, name: LABEL[b], color: COLORS[b] })),
      yLabel: 'ops/s per process',
      note: 'lru-cache is a private in-process cache per worker (nothing shared): the single-process ceiling.',
    });
  }
  return out;
}

function memoryChart(data) {
  const M = data.memory;
  if (!M || !M.cells.length) return {};
  const ns = [...new Set(M.cells.map((c) => c.workers))];
  const kinds = ['shmap', 'lru'].filter((k) => M.cells.some((c) => c.kind === k));
  return {
    'memory-pss.svg': barChart({
      title: `Total PSS of a primary + N workers holding ${int(M.entries)} entries of ~${int(M.valueBytes)} B`,
      subtitle: 'Proportional Set Size summed over all processes (/proc/PID/smaps_rollup); the light part is the same processes before loading the data',
      rows: [[{ title: 'workers', groups: ns.map((n) => ({ label: `${n}`, bars: kinds.map((k) => {
        const c = M.cells.find((x) => x.workers === n && x.kind === k);
        return c ? { key: k, v: c.pss / MiB, base: c.idlePss / MiB, label: `${(c.pss / MiB).toFixed(0)} MiB` } : { key: k, v: 0 };
      }) })) }]],
      series: kinds.map((k) => ({ key: k, name: k === 'shmap' ? 'shmap (one shared copy)' : 'lru-cache (one copy per worker)', color: COLORS[k] })),
      yLabel: 'MiB', log: false, barW: 30, fmt: (v) => `${Math.round(v)}`,
    }),
  };
}

function latencyChart(data) {
  const L = data.latency;
  if (!L || !L.cells.length) return {};
  const backends = backendsOf(data).filter((b) => L.cells.some((c) => c.backend === b));
  const pcts = [['p50', 'p50', '#9ecae1'], ['p99', 'p99', '#4292c6'], ['p999', 'p99.9', '#08519c'], ['max', 'max', '#222']];
  const rows = L.workers.map((n) => sizesOf(L.cells).flatMap((size) => ['get', 'set'].map((op) => ({
    title: `${op}, ${size}, ${n} workers`,
    groups: backends.map((b) => {
      const c = L.cells.find((x) => x.workers === n && x.size === size && x.backend === b);
      return { label: SHORT[b], bars: pcts.map(([k]) => ({ key: k, v: c && c[op] ? c[op][k] / 1e3 : 0 })) };
    }),
  }))));
  return {
    'latency.svg': barChart({
      title: 'Latency of get and set under read+write (1:1), per operation',
      subtitle: `process.hrtime.bigint() around every operation in every worker, ${L.seconds} s per backend; log scale, µs`,
      rows, barW: 7,
      series: pcts.map(([key, name, color]) => ({ key, name, color })),
      yLabel: 'µs',
      fmt: (v) => (v >= 1000 ? `${compact(v * 1e3 / 1e3)}` : v >= 1 ? `${+v.toFixed(1)}` : `${+v.toFixed(2)}`),
      note: 'lru-cache sets change only the worker\'s own copy; IPC and Redis include the round trip and an event-loop turn.',
    }),
  };
}

function growthChart(data) {
  const G = data.growth && data.growth.grow;
  if (!G) return {};
  const pts = [{ ...G.first, ms: 0 }, ...G.steps, G.grown];
  const line = (k) => pts.map((p) => ({ x: p.ms / 1e3, y: p[k] / MiB }));
  return {
    'growth.svg': lineChart({
      title: `Growth: ${int(G.sets)} sets of ${int(G.valueBytes)} B into a map created at 1 MiB`,
      subtitle: `a point per generation switch; ${G.steps.length} switches, ${(G.grown.bytesCopied / G.grown.bytesWritten).toFixed(2)} bytes copied per byte written`,
      series: [
        { name: 'file allocated', color: '#d43d2f', points: line('fileAllocatedBytes') },
        { name: 'file length', color: '#999', points: line('fileBytes'), dash: true },
        { name: 'ring capacity', color: '#2e9e44', points: line('logCapacity') },
        { name: 'live bytes', color: '#1f5fbf', points: line('liveBytes') },
      ],
      xLabel: 'seconds since the first set', yLabel: 'size (log scale)',
    }),
  };
}

// ------------------------------------------------------------------ markdown
function markdown(data, charts) {
  const m = data.meta, M = m.machine, o = [];
  const backends = backendsOf(data);
  const wall = m.wallSeconds ? `${Math.floor(m.wallSeconds / 60)} min ${Math.round(m.wallSeconds % 60)} s` : '?';
  o.push('# shmap performance report', '');
  if (m.quick) o.push('> **Smoke run (`--quick`)**: tiny runs that only check that the script works. These numbers mean nothing.', '');
  o.push(`Generated by \`${m.command}\` on ${m.date.replace('T', ' ').slice(0, 16)} UTC, wall time ${wall}. ` +
    'Every number on this page comes from that one run; [`data.json`](data.json) holds all of them, every round of every worker included. ' +
    'Regenerate with the same command (it installs its npm dependencies, Redis from Debian if missing, and builds the addon if it is older than its sources).', '');
  o.push('## Machine', '');
  o.push('| | |', '|---|---|');
  o.push(`| CPUs (nproc) | ${M.nproc} × ${M.cpuModel} |`, `| memory | ${M.memGiB} GiB |`, `| OS | ${M.os}, Linux ${M.kernel} |`,
    `| Node | ${M.node} |`, `| Rust | ${M.rustc || '—'} |`,
    `| load average (1/5/15 min) | ${m.loadavgStart.join(' / ')} at start, ${(m.loadavgEnd || []).join(' / ')} at end |`,
    `| baselines | lmdb-js ${M.versions.lmdb || '—'}, ioredis ${M.versions.ioredis || '—'}, redis-server ${M.versions['redis-server'] || '—'}, lru-cache ${M.versions['lru-cache'] || '—'} |`,
    `| shmap | \`${M.commit || '?'}\`; addon: ${m.addon} |`);
  o.push('', '**Caveat.** This is a shared 2-core virtual machine: other work runs on the same cores at ' +
    'unpredictable times (see the load average). Every figure is a median of alternating rounds, with the ' +
    'spread beside it; compare backends within this run, never absolute numbers across runs. Nothing here is asserted.', '');
  if (data.skipped && Object.keys(data.skipped).length) {
    o.push(`**Skipped:** ${Object.entries(data.skipped).map(([k, v]) => `${k} (${v})`).join('; ')}.`, '');
  }

  const T = data.throughput;
  const cell = (size, n, mix, b) => T && T.cells.find((c) => c.size === size && c.workers === n && c.mix === mix && c.backend === b);
  // ---- headlines
  o.push('## Headlines', '');
  if (T && T.cells.length) {
    const maxN = Math.max(...T.workers);
    const others = backends.filter((b) => b !== 'shmap');
    o.push(`shmap's operations per second per process, and how many times that is each alternative's, with ${maxN} worker${maxN > 1 ? 's' : ''} ` +
      `(on ${M.nproc} cores) and with 1:`, '');
    o.push(`| scenario | values | shmap, ${maxN} workers | ${others.map((b) => `× ${SHORT[b]}`).join(' | ')} | shmap, 1 worker | ${others.map((b) => `× ${SHORT[b]}`).join(' | ')} |`);
    o.push(`|---|---|---:|${others.map(() => '---:|').join('')}---:|${others.map(() => '---:|').join('')}`);
    for (const size of sizesOf(T.cells)) {
      for (const mix of MIXES) {
        const row = (n) => {
          const s = cell(size, n, mix, 'shmap');
          return [s ? compact(s.perProcess) : '—', ...others.map((b) => { const c = cell(size, n, mix, b); return s && c ? ratio(s.perProcess, c.perProcess) : '—'; })];
        };
        o.push(`| ${mix} | ${size} | ${[...row(maxN), ...(T.workers.includes(1) ? row(1) : others.map(() => '—').concat('—'))].join(' | ')} |`);
      }
    }
    o.push('', `(× X = shmap's ops/s per process divided by X's in the same cell of this run. lru-cache is a private cache in each process, not shared: the ceiling of an in-process Map-like cache.)`, '');
  }
  const Mem = data.memory;
  if (Mem && Mem.cells.length) {
    const n = Math.max(...Mem.cells.map((c) => c.workers));
    const s = Mem.cells.find((c) => c.workers === n && c.kind === 'shmap'), l = Mem.cells.find((c) => c.workers === n && c.kind === 'lru');
    if (s && l) {
      o.push(`- **Memory**, a primary + ${n} workers holding ${int(Mem.entries)} entries of ~${int(Mem.valueBytes)} B: total PSS ${mib(s.pss, 0)} MiB with shmap against ${mib(l.pss, 0)} MiB with lru-cache ` +
        `(${ratio(l.pss, s.pss)}); above the same processes idle: ${mib(s.pss - s.idlePss, 0)} MiB against ${mib(l.pss - l.idlePss, 0)} MiB (${ratio(l.pss - l.idlePss, s.pss - s.idlePss)}).`);
    }
  }
  const L = data.latency;
  if (L && L.cells.length) {
    for (const n of L.workers) {
      const c = L.cells.find((x) => x.workers === n && x.backend === 'shmap' && x.size === sizesOf(L.cells)[0]);
      if (c) o.push(`- **Latency**, read+write ${c.size}, ${n} workers, shmap: get p50 ${us(c.get.p50)} µs, p99 ${us(c.get.p99)} µs, p99.9 ${us(c.get.p999)} µs, max ${us(c.get.max)} µs; ` +
        `set p50 ${us(c.set.p50)} µs, p99 ${us(c.set.p99)} µs, p99.9 ${us(c.set.p999)} µs, max ${us(c.set.max)} µs.`);
    }
  }
  const G = data.growth && data.growth.grow;
  if (G) {
    o.push(`- **Growth** from 1 MiB to a ${mib(G.grown.fileBytes, 0)} MiB file: ${int(G.sets)} sets in ${(G.growMs / 1e3).toFixed(2)} s ` +
      `(${G.steps.length} switches, ${(G.grown.bytesCopied / G.grown.bytesWritten).toFixed(2)} B copied per B written, longest set ${G.maxSetMs.toFixed(1)} ms); ` +
      `the same sets into a map created at full size: ${(data.growth.presized.growMs / 1e3).toFixed(2)} s.`);
    const s = G.shrink;
    if (s) {
      o.push(`- **Shrink**: deleting ${int(s.deleted)} of ${int(G.sets)} entries took the allocated memory from ${mib(G.settled.fileAllocatedBytes, 0)} MiB to ` +
        `${mib(s.afterGrace.fileAllocatedBytes, 0)} MiB once the 1 s grace period passed (${mib(G.settled.fileAllocatedBytes - s.afterGrace.fileAllocatedBytes, 0)} MiB returned).`);
    }
  }
  o.push('');

  // ---- 1. throughput
  if (T && T.cells.length) {
    o.push('## 1. Throughput', '');
    for (const mix of MIXES) {
      const f = `throughput-${mix.replace('+', '-')}.svg`;
      if (charts[f]) o.push(`![${mix}](${f})`, '');
    }
    o.push(`**How.** ${T.keys} keys (\`key:0\`..\`key:9\`), every one holding the same JSON string of the size shown (values.js: a ` +
      'session record, an order, an order with ~5,000 line items), loaded by the primary. Each worker is a `child_process.fork()`; ' +
      'for every (value size, worker count, scenario, round, backend) every worker opens the backend, waits for one common `go`, runs ' +
      `its loop for ${T.seconds.join(' / ')} s (100 B / 10 KB / 1 MB), closes and reports. Workers visit keys in their own random order; sets write the same value back. ` +
      `Within a round each backend runs once, in an order rotated per round; ${T.rounds} rounds. ops/s per process = median over rounds of the mean over workers; ` +
      'aggregate = median over rounds of the sum; ± = half the range of the rounds over the median. Synchronous clients (shmap, lmdb `putSync`, lru-cache) run ' +
      'a tight loop; asynchronous ones (IPC, Redis) keep one request in flight per worker. The backends and their settings: `node/bench/README.md`.', '');
    for (const size of sizesOf(T.cells)) {
      const vb = T.cells.find((c) => c.size === size).valueBytes;
      o.push(`### ${size} values (${int(vb)} B)`, '');
      const others = backends.filter((b) => b !== 'shmap');
      o.push(`| scenario | workers | ${backends.map((b) => `${SHORT[b]} ops/s/proc`).join(' | ')} | ${others.map((b) => `shmap / ${SHORT[b]}`).join(' | ')} | shmap aggregate | shmap MB/s/proc |`);
      o.push(`|---|---:|${backends.map(() => '---:|').join('')}${others.map(() => '---:|').join('')}---:|---:|`);
      for (const mix of MIXES) {
        for (const n of T.workers) {
          const cs = backends.map((b) => cell(size, n, mix, b));
          if (cs.every((c) => !c)) continue;
          const s = cell(size, n, mix, 'shmap');
          const miss = cs.some((c) => c && c.misses) ? ' (misses!)' : '';
          o.push(`| ${mix}${miss} | ${n} | ${cs.map((c) => (c ? `${compact(c.perProcess)} ${spread(c)}` : '—')).join(' | ')} | ` +
            `${others.map((b) => { const c = cell(size, n, mix, b); return s && c ? ratio(s.perProcess, c.perProcess) : '—'; }).join(' | ')} | ` +
            `${s ? compact(s.aggregate) : '—'} | ${s ? s.mbPerProcess.toFixed(s.mbPerProcess < 10 ? 1 : 0) : '—'} |`);
        }
      }
      o.push('');
    }
  }

  // ---- 2. memory
  if (Mem && Mem.cells.length) {
    o.push('## 2. Memory', '');
    if (charts['memory-pss.svg']) o.push('![memory](memory-pss.svg)', '');
    o.push(`**How.** Fresh processes (a primary and N workers, \`fork()\`ed with \`--expose-gc\`) load the code they need, and their PSS ` +
      '(`Pss:` of `/proc/PID/smaps_rollup`, which divides every shared page among the processes mapping it) is summed: the *idle* column. ' +
      `Then with **shmap** the primary creates a map and stores ${int(Mem.entries)} entries (\`item:N\` → a distinct ~${int(Mem.valueBytes)} B JSON string), ` +
      'waits out the 1 s grace period and calls `flush()` so regions retired by growth are returned; each worker opens the map and reads every entry once. ' +
      'With **lru-cache** each worker builds its own `LRUCache` of the same entries (the primary holds nothing). Both sides run two `gc()`s, then PSS is summed again.', '');
    o.push('| workers | shmap total PSS | lru-cache total PSS | lru / shmap | shmap above idle | lru-cache above idle | lru / shmap above idle | shmap primary PSS | shmap file allocated | shmap live bytes |');
    o.push('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const n of [...new Set(Mem.cells.map((c) => c.workers))]) {
      const s = Mem.cells.find((c) => c.workers === n && c.kind === 'shmap'), l = Mem.cells.find((c) => c.workers === n && c.kind === 'lru');
      o.push(`| ${n} | ${s ? `${mib(s.pss)} MiB` : '—'} | ${l ? `${mib(l.pss)} MiB` : '—'} | ${s && l ? ratio(l.pss, s.pss) : '—'} | ` +
        `${s ? `${mib(s.pss - s.idlePss)} MiB` : '—'} | ${l ? `${mib(l.pss - l.idlePss)} MiB` : '—'} | ${s && l ? ratio(l.pss - l.idlePss, s.pss - s.idlePss) : '—'} | ` +
        `${s ? `${mib(s.primaryPss)} MiB` : '—'} | ${s ? `${mib(s.fileAllocatedBytes)} MiB` : '—'} | ${s ? `${mib(s.liveBytes)} MiB` : '—'} |`);
    }
    o.push('');
  }

  // ---- 3. latency
  if (L && L.cells.length) {
    o.push('## 3. Latency under read+write', '');
    if (charts['latency.svg']) o.push('![latency](latency.svg)', '');
    o.push(`**How.** The read+write (1:1) scenario with ${L.workers.join(' and ')} workers, ${L.seconds} s per backend, alternating backends. ` +
      'Every operation of every worker is timed with `process.hrtime.bigint()` before and after it, into a log-linear histogram ' +
      `(buckets ≤ 3.1 % wide; the maximum is exact), merged over workers. The two clock reads themselves cost ~${Math.round(m.timerOverheadNs)} ns (median, included in every figure). ` +
      'For IPC and Redis a get or set is an awaited round trip. lru-cache sets change only the worker\'s own copy.', '');
    o.push('| values | workers | backend | operations | get p50 µs | get p99 | get p99.9 | get max | set p50 µs | set p99 | set p99.9 | set max |');
    o.push('|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const size of sizesOf(L.cells)) {
      for (const n of L.workers) {
        for (const b of backends) {
          const c = L.cells.find((x) => x.size === size && x.workers === n && x.backend === b);
          if (!c) continue;
          const p = (h) => (h ? [us(h.p50), us(h.p99), us(h.p999), us(h.max)] : ['—', '—', '—', '—']);
          o.push(`| ${size} | ${n} | ${SHORT[b]} | ${int(c.ops)} | ${[...p(c.get), ...p(c.set)].join(' | ')} |`);
        }
      }
    }
    o.push('');
  }

  // ---- 4. growth
  if (data.growth) {
    o.push('## 4. Growth and shrink', '');
    if (data.growth.note) o.push(data.growth.note, '');
    if (G) {
      if (charts['growth.svg']) o.push('![growth](growth.svg)', '');
      const P = data.growth.presized;
      o.push(`**How.** One process creates a map with \`initialSize: 1 MiB\` (\`maxSize\` far above) and sets distinct keys (\`grow:N\`, ${int(G.valueBytes)} B values) ` +
        `until the file reaches ${mib(G.until, 0)} MiB, reading \`stats()\` every 64 sets (\`switches\`, \`bytesWritten\`, \`bytesCopied\`, \`fileBytes\`, \`fileAllocatedBytes\`, ...) ` +
        'and timing every set. The same number of sets then goes into a fresh map created at its final size (`initialSize` ≈ the grown file), for the cost of growing. ' +
        'Then 19 of every 20 keys are deleted (a map shrinks itself when live data falls under 1/8 of its ring); regions retired by a switch keep their pages for a 1 s grace period ' +
        '(readers may still be in them), after which `flush()` returns them.', '');
      o.push('| | sets | time | sets/s | MB/s written | switches | bytes written | bytes copied | copied / written | longest set |');
      o.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
      const row = (name, r) => {
        const g = r.grown, w = g.bytesWritten - r.first.bytesWritten, cp = g.bytesCopied - r.first.bytesCopied;
        o.push(`| ${name} | ${int(r.sets)} | ${(r.growMs / 1e3).toFixed(2)} s | ${compact(r.sets / (r.growMs / 1e3))} | ${(w / 1e6 / (r.growMs / 1e3)).toFixed(0)} | ` +
          `${g.switches - r.first.switches} | ${mib(w)} MiB | ${mib(cp)} MiB | ${(cp / w).toFixed(2)} | ${r.maxSetMs.toFixed(2)} ms |`);
      };
      row('growing from 1 MiB', G);
      if (P) row('created at full size', P);
      o.push('', 'Each switch of the growing map (a point of the chart):', '');
      o.push('| after set | at | live | ring capacity | index slots | file length | file allocated | copied so far | longest set in its 64 |');
      o.push('|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
      for (const s of G.steps) {
        o.push(`| ${int(s.sets)} | ${(s.ms / 1e3).toFixed(3)} s | ${mib(s.liveBytes)} MiB | ${mib(s.logCapacity)} MiB | ${int(s.indexSlots)} | ${mib(s.fileBytes)} MiB | ` +
          `${mib(s.fileAllocatedBytes)} MiB | ${mib(s.bytesCopied)} MiB | ${s.maxSetMs.toFixed(2)} ms |`);
      }
      const S = G.shrink;
      if (S) {
        o.push('', '**Shrink.**', '');
        o.push('| | entries | live | ring capacity | file length | file allocated |', '|---|---:|---:|---:|---:|---:|');
        const r = (name, s) => o.push(`| ${name} | ${int(s.entries)} | ${mib(s.liveBytes)} MiB | ${mib(s.logCapacity)} MiB | ${mib(s.fileBytes)} MiB | ${mib(s.fileAllocatedBytes)} MiB |`);
        r('grown, just after the last set', G.grown);
        r('grown, after the grace period + flush()', G.settled);
        r(`after deleting ${int(S.deleted)} (${S.steps.length} shrink switches, ${(S.deleteMs / 1e3).toFixed(2)} s, longest delete ${S.maxDeleteMs.toFixed(1)} ms)`, S.afterDelete);
        r('after the grace period + flush()', S.afterGrace);
        o.push('', `Returned to the OS: ${mib(G.settled.fileAllocatedBytes - S.afterGrace.fileAllocatedBytes)} MiB of ${mib(G.settled.fileAllocatedBytes)} MiB ` +
          '(the file keeps its length — the hole is punched, the length never shrinks while mapped).', '');
      }
    }
  }

  // ---- 5. rust
  if (data.rust) {
    o.push('## 5. Rust level (`benches/throughput.rs`)', '');
    o.push(`\`${data.rust.command}\` (${(data.rust.ms / 1e3).toFixed(0)} s, build included), LMDB through \`heed\` as the baseline; what it measures: \`benches/README.md\`.`, '');
    if (data.rust.note) o.push(`Not available: ${data.rust.note}`, '');
    if (data.rust.output) o.push('```', data.rust.output, '```', '');
  }

  o.push('## Phases', '', '| phase | seconds | load average at its end |', '|---|---:|---|');
  for (const p of m.phases || []) o.push(`| ${p.name} | ${p.seconds.toFixed(0)} | ${p.loadavgEnd.join(' / ')} |`);
  o.push('');
  return `${o.join('\n')}\n`;
}

function write(outDir, data) {
  fs.mkdirSync(outDir, { recursive: true });
  const charts = { ...throughputCharts(data), ...memoryChart(data), ...latencyChart(data), ...growthChart(data) };
  for (const [f, svg] of Object.entries(charts)) fs.writeFileSync(path.join(outDir, f), svg);
  fs.writeFileSync(path.join(outDir, 'report.md'), markdown(data, charts));
  fs.writeFileSync(path.join(outDir, 'data.json'), `${JSON.stringify(data, null, 1)}\n`);
}

module.exports = { write, barChart, lineChart };
