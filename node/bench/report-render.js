'use strict';
// Renders report.js's data into report.md, data.json and hand-written SVG charts.
// write(outDir, data) is all there is; `node report.js --render data.json [--out DIR]` calls it alone.
const fs = require('fs');
const path = require('path');

const MiB = 1 << 20;
const MIXES = ['read-only', 'read+write', 'read-first'];
const MIX_TEXT = { 'read-only': 'read-only (all gets)', 'read+write': 'read+write (1 get : 1 set)', 'read-first': 'read-first (10 gets : 1 set)' };
const ORDER = ['shmap', 'shmap-nodc', 'lru', 'lmdb', 'redis', 'ipc'];
const COLORS = { shmap: '#1f5fbf', 'shmap-nodc': '#7fa7e0', lru: '#9a9a9a', lmdb: '#2e9e44', redis: '#d43d2f', ipc: '#f08c00' };
const LABEL = { shmap: 'shmap', 'shmap-nodc': 'shmap, decodeCache: 0', lru: 'lru-cache (a private copy per process)', lmdb: 'lmdb-js', redis: 'Redis (ioredis)', ipc: 'process.send IPC' };
const SHORT = { shmap: 'shmap', 'shmap-nodc': 'shmap dc0', lru: 'lru-cache', lmdb: 'lmdb-js', redis: 'Redis', ipc: 'IPC' };

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
const ratio = (a, b) => {
  if (!a || !b) return '—';
  const r = a / b;
  return `${r >= 10 ? r.toFixed(0) : r >= 1 ? r.toFixed(1) : r.toPrecision(2)}×`;
};
// Axis ticks: 10, 100, 1k, 10k, 1M (no trailing zeros).
const tick = (v) => {
  for (const [d, s] of [[1e9, 'G'], [1e6, 'M'], [1e3, 'k']]) if (v >= d) return `${+(v / d).toPrecision(3)}${s}`;
  return `${+v.toPrecision(3)}`;
};
const us = (ns) => (ns == null ? '—' : ns < 10e3 ? (ns / 1e3).toFixed(2) : ns < 100e3 ? (ns / 1e3).toFixed(1) : int(ns / 1e3));
const median = (xs) => { const a = [...xs].sort((x, y) => x - y), h = a.length >> 1; return a.length % 2 ? a[h] : (a[h - 1] + a[h]) / 2; };
// shmap over another backend: the median of the per-round ratios (see report.js pairedRatio).
const paired = (a, b) => (a.rounds.length === b.rounds.length ? median(a.rounds.map((x, i) => x / b.rounds[i])) : a.perProcess / b.perProcess);
const pratio = (a, b) => (a && b ? ratio(paired(a, b), 1) : '—');
const spread = (c) => (c.rounds.length > 1 && c.perProcess ? `±${Math.round(((c.max - c.min) / 2 / c.perProcess) * 100)}%` : '');
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

// ------------------------------------------------------------------ SVG
// A grid of bar-chart panels sharing one y axis (log or linear). Each panel has groups of bars;
// a bar is { key, v, lo, hi, base, label } (lo/hi: a whisker; base: a lighter part from 0).
function barChart({ title, subtitle, rows, series, yLabel, log = true, fmt = compact, tickFmt = tick, barW = 11, groupGap = 14, minPanelW = 180, legendW, note }) {
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
  const plotH = 250, left = 64, gap = 14, rowGap = 64;
  const panelW = (p) => Math.max(minPanelW, p.groups.length * (p.groups[0].bars.length * barW + groupGap) + groupGap);
  const rowW = (r) => r.reduce((a, p) => a + panelW(p) + gap, 0);
  const width = Math.max(left + Math.max(...rows.map(rowW)) + 10, 6.1 * Math.max(title.length * 1.45, (subtitle || '').length, (note || '').length * 0.9) + left);
  legendW = legendW || Math.max(...series.map((q) => q.name.length)) * 6.4 + 34;
  const perLine = Math.max(1, Math.floor((width - left) / legendW));
  const top = 64 + Math.ceil(series.length / perLine) * 16;
  const height = top + rows.length * (plotH + rowGap) + (note ? 18 : 0) + 10;
  const Y = (v) => plotH - (log ? (Math.log10(Math.max(v, y0)) - Math.log10(y0)) / (Math.log10(y1) - Math.log10(y0)) : (v - y0) / (y1 - y0)) * plotH;
  const o = [];
  o.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="11">`);
  o.push(`<rect width="100%" height="100%" fill="#fff"/>`);
  o.push(`<text x="${left}" y="22" font-size="15" font-weight="bold">${esc(title)}</text>`);
  if (subtitle) o.push(`<text x="${left}" y="40" fill="#555">${esc(subtitle)}</text>`);
  series.forEach((s, i) => {
    const x = left + (i % perLine) * legendW, y = 58 + Math.floor(i / perLine) * 16;
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
      if (major) o.push(`<text x="${left - 6}" y="${(y + 4).toFixed(1)}" text-anchor="end" fill="#333">${esc(tickFmt(v))}</text>`);
    }
    o.push(`<text transform="translate(14 ${ty + plotH / 2}) rotate(-90)" text-anchor="middle" fill="#333">${esc(yLabel)}</text>`);
    let px = left;
    for (const p of row) {
      const w = panelW(p);
      o.push(`<rect x="${px}" y="${ty}" width="${w}" height="${plotH}" fill="none" stroke="#999"/>`);
      o.push(`<text x="${px + w / 2}" y="${ty + plotH + 34}" text-anchor="middle" font-weight="bold">${esc(p.title)}</text>`);
      let gx = px + (w - (p.groups.length * (p.groups[0].bars.length * barW + groupGap) - groupGap)) / 2;
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

// A line chart: series of points {x, y}, log-2 axes (powers of two as grid lines).
function lineChart({ title, subtitle, series, xLabel, yLabel, xFmt = String, yFmt = String, note }) {
  const width = 760, height = 400, left = 70, top = 76, plotW = width - left - 30, plotH = height - top - 76;
  for (const s of series) s.points = s.points.filter((p) => p.x > 0 && p.y > 0);
  const pts = series.flatMap((s) => s.points);
  const lim = (vs, pad) => [2 ** Math.floor(Math.log2(Math.min(...vs))), 2 ** Math.ceil(Math.log2(Math.max(...vs) * pad))];
  const [x0, x1] = lim(pts.map((p) => p.x), 1.05), [y0, y1] = lim(pts.map((p) => p.y), 1.1);
  const X = (x) => left + ((Math.log2(x) - Math.log2(x0)) / (Math.log2(x1) - Math.log2(x0))) * plotW;
  const Y = (y) => top + plotH - ((Math.log2(y) - Math.log2(y0)) / (Math.log2(y1) - Math.log2(y0))) * plotH;
  const o = [`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="${left}" y="22" font-size="15" font-weight="bold">${esc(title)}</text>`];
  if (subtitle) o.push(`<text x="${left}" y="40" fill="#555">${esc(subtitle)}</text>`);
  series.forEach((s, i) => o.push(`<rect x="${left + i * 230}" y="${54}" width="11" height="3" fill="${s.color}"/><text x="${left + i * 230 + 16}" y="${60}">${esc(s.name)}</text>`));
  for (let y = y0; y <= y1; y *= 2) {
    o.push(`<line x1="${left}" x2="${left + plotW}" y1="${Y(y).toFixed(1)}" y2="${Y(y).toFixed(1)}" stroke="#e4e4e4"/>`);
    o.push(`<text x="${left - 6}" y="${(Y(y) + 4).toFixed(1)}" text-anchor="end">${esc(yFmt(y))}</text>`);
  }
  for (let x = x0; x <= x1; x *= 2) {
    o.push(`<line x1="${X(x).toFixed(1)}" x2="${X(x).toFixed(1)}" y1="${top}" y2="${top + plotH}" stroke="#eee"/>`);
    o.push(`<text x="${X(x).toFixed(1)}" y="${top + plotH + 16}" text-anchor="middle">${esc(xFmt(x))}</text>`);
  }
  o.push(`<rect x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="#999"/>`);
  o.push(`<text x="${left + plotW / 2}" y="${top + plotH + 36}" text-anchor="middle">${esc(xLabel)}</text>`);
  o.push(`<text transform="translate(16 ${top + plotH / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`);
  for (const s of series) {
    const d = s.points.map((p, i) => `${i ? 'L' : 'M'}${X(p.x).toFixed(1)} ${Y(p.y).toFixed(1)}`).join('');
    o.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.8"${s.dash ? ' stroke-dasharray="5 3"' : ''}/>`);
    for (const p of s.points) {
      o.push(`<circle cx="${X(p.x).toFixed(1)}" cy="${Y(p.y).toFixed(1)}" r="2.6" fill="${s.color}"/>`);
      if (p.label) o.push(`<text x="${(X(p.x) - 4).toFixed(1)}" y="${(Y(p.y) - 7).toFixed(1)}" text-anchor="end" font-size="9" fill="#333">${esc(p.label)}</text>`);
    }
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
  const bars = [['shmap', 'pss', 'shmap: PSS (one shared copy)', COLORS.shmap], ['shmap', 'used', 'shmap: PSS + the file\'s unmapped pages', '#7fa7e0'],
    ['lru', 'pss', 'lru-cache: PSS (one copy per worker)', COLORS.lru]].filter(([k]) => kinds.includes(k));
  return {
    'memory-pss.svg': barChart({
      title: `Total PSS of a primary + N workers holding ${int(M.entries)} entries of ~${int(M.meanValueBytes || M.valueBytes)} B`,
      subtitle: 'Proportional Set Size summed over all processes (/proc/PID/smaps_rollup); the light part is the same processes before loading the data',
      rows: [[{ title: 'workers', groups: ns.map((n) => ({ label: `${n}`, bars: bars.map(([k, f], i) => {
        const c = M.cells.find((x) => x.workers === n && x.kind === k);
        const v = c && (c[f] || c.pss);
        return c ? { key: i, v: v / MiB, base: c.idlePss / MiB, label: `${(v / MiB).toFixed(0)} MiB` } : { key: i, v: 0 };
      }) })) }]],
      series: bars.map(([, , name, color], i) => ({ key: i, name, color })),
      yLabel: 'MiB', log: false, barW: 40, groupGap: 60, fmt: (v) => `${Math.round(v)}`, tickFmt: (v) => `${Math.round(v)}`,
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
      rows, barW: 9, groupGap: 22, 
      series: pcts.map(([key, name, color]) => ({ key, name, color })),
      yLabel: 'µs',
      fmt: (v) => (v >= 1000 ? compact(v) : v >= 1 ? `${+v.toFixed(1)}` : `${+v.toFixed(2)}`),
      note: 'lru-cache sets change only the worker\'s own copy; IPC and Redis include the round trip and an event-loop turn.',
    }),
  };
}

function growthChart(data) {
  const G = data.growth && data.growth.grow;
  if (!G || !G.steps.length) return {};
  const ms = (v) => (v >= 1 ? `${v} ms` : `${v * 1e3} µs`);
  const size = (v) => (v >= 1024 ? `${v / 1024} GiB` : v >= 1 ? `${v} MiB` : `${v * 1024} KiB`);
  return {
    'growth.svg': lineChart({
      title: 'Growth: the set that switches to a doubled generation waits for the whole copy',
      subtitle: `${int(G.sets)} sets of ${int(G.valueBytes)} B into a map created at 1 MiB; a point per switch (${G.steps.length}); ` +
        `${(G.grown.bytesCopied / G.grown.bytesWritten).toFixed(2)} B copied per B written`,
      series: [
        { name: 'longest set in the 64 around the switch', color: '#d43d2f',
          points: G.steps.map((p) => ({ x: p.liveBytes / MiB, y: p.maxSetMs, label: p === G.steps[G.steps.length - 1] ? `${p.maxSetMs.toFixed(0)} ms` : '' })) },
      ],
      xLabel: 'live data when the map switched (log scale)', yLabel: 'set duration (log scale)', xFmt: size, yFmt: ms,
      note: 'Other writers wait for that set (they need the writer lock); readers do not (see "A reader meanwhile" in report.md).',
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
    (m.base ? 'It re-measured some sections of an earlier full run (below); ' : 'Every number on this page comes from that one run; ') +
    '[`data.json`](data.json) holds all of them, every round of every worker included. ' +
    'Regenerate with the same command (it installs its npm dependencies, Redis from Debian if missing, and builds the addon if it is older than its sources).', '');
  if (m.base && m.remeasured) {
    o.push(`**Merged report.** ${m.remeasured.map((r) => `Sections ${r.sections.join(', ')} were re-measured by \`${r.command}\` on ${r.date.replace('T', ' ').slice(0, 16)} UTC (\`${r.commit || '?'}\`)`).join('; ')}; ` +
      `the rest comes from \`${m.base.command}\` on ${m.base.date.replace('T', ' ').slice(0, 16)} UTC (\`${m.base.commit || '?'}\`). ` +
      'Ratios are only ever taken within one run.', '');
  }
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
    const vs = ['lmdb', 'redis', 'ipc'].filter((b) => backends.includes(b));
    const ns = [...new Set([Math.max(...T.workers), Math.min(...T.workers)])];
    for (const n of ns) {
      o.push(`**${n} worker${n > 1 ? 's' : ''}** (on ${M.nproc} cores): operations per second per process, and shmap's over ${vs.map((b) => SHORT[b]).join(' / ')}:`, '');
      o.push(`| scenario | values | ${backends.map((b) => SHORT[b]).join(' | ')} | shmap × ${vs.map((b) => SHORT[b]).join(' / ')} |${backends.includes('shmap-nodc') ? ` shmap dc0 × ${vs.map((b) => SHORT[b]).join(' / ')} |` : ''}`);
      o.push(`|---|---|${backends.map(() => '---:|').join('')}---:|${backends.includes('shmap-nodc') ? '---:|' : ''}`);
      for (const size of sizesOf(T.cells)) {
        for (const mix of MIXES) {
          const c = (b) => cell(size, n, mix, b);
          const rs = (a) => vs.map((b) => pratio(c(a), c(b))).join(' / ');
          o.push(`| ${mix} | ${size} | ${backends.map((b) => (c(b) ? compact(c(b).perProcess) : '—')).join(' | ')} | ${rs('shmap')} |${backends.includes('shmap-nodc') ? ` ${rs('shmap-nodc')} |` : ''}`);
        }
      }
      o.push('');
    }
    o.push(`(× X = ops/s per process over X's in the same cell of this run: the median over rounds of the ratio within each round. ` +
      '*shmap* is the package as shipped: each handle keeps up to 8 MiB of decoded strings and returns one unchanged since it was read without copying (the 10 keys here always fit, the 1 MB ones partly); ' +
      '*shmap dc0* is `decodeCache: 0`: every get copies the value out of the map and makes a new string — what keys the cache cannot hold cost. ' +
      'lru-cache is a private cache in each process, not shared: the ceiling of an in-process cache, whose get returns the stored string itself.)', '');
  }
  const Mem = data.memory;
  if (Mem && Mem.cells.length) {
    const n = Math.max(...Mem.cells.map((c) => c.workers));
    const s = Mem.cells.find((c) => c.workers === n && c.kind === 'shmap'), l = Mem.cells.find((c) => c.workers === n && c.kind === 'lru');
    if (s && l) {
      o.push(`- **Memory**, a primary + ${n} workers holding ${int(Mem.entries)} entries of ~${int(Mem.meanValueBytes || Mem.valueBytes)} B: total PSS ${mib(s.pss, 0)} MiB with shmap against ${mib(l.pss, 0)} MiB with lru-cache ` +
        `(${ratio(l.pss, s.pss)}); above the same processes idle: ${mib(s.pss - s.idlePss, 0)} MiB against ${mib(l.pss - l.idlePss, 0)} MiB (${ratio(l.pss - l.idlePss, s.pss - s.idlePss)}). ` +
        (s.used ? `Counting the map file's pages no process maps (its ring is allocated whole): shmap ${mib(s.used, 0)} MiB (lru-cache / shmap ${ratio(l.pss, s.used)}).` : ''));
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
      `the same sets into a map created at full size: ${(data.growth.presized.growMs / 1e3).toFixed(2)} s (+ ${(data.growth.presized.createMs || 0).toFixed(0)} ms to create it).` +
      (G.reader && G.reader.get ? ` Meanwhile another process read the map: get p50 ${us(G.reader.get.p50)} µs, p99 ${us(G.reader.get.p99)} µs, max ${us(G.reader.get.max)} µs.` : ''));
    const s = G.shrink;
    if (s) {
      o.push(`- **Shrink**: deleting ${int(s.deleted)} of ${int(G.sets)} entries took the allocated memory from ${mib(G.settled.fileAllocatedBytes, 0)} MiB to ` +
        `${mib(s.afterGrace.fileAllocatedBytes, 0)} MiB ${s.afterGrace.settleSeconds ? `within ${s.afterGrace.settleSeconds.toFixed(1)} s (one shrink per 1 s grace period, then a flush)` : 'once the 1 s grace period passed'} (${mib(G.settled.fileAllocatedBytes - s.afterGrace.fileAllocatedBytes, 0)} MiB returned).`);
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
      'a tight loop; asynchronous ones (IPC, Redis) keep one request in flight per worker. The backends and their settings: `node/bench/README.md`. ' +
      '*CPU µs/op*: the shmap workers\' CPU time (user + system) per operation, median over rounds — it barely depends on how much CPU the machine had left. ' +
      `*cores used / vCPUs available*, per round of the shmap runs: the CPU time the shmap workers got per second of wall time, and the CPU time the machine\'s ` +
      `${M.nproc} vCPUs accounted in all (\`/proc/stat\`, idle included) per second: below ${M.nproc} the hypervisor did not run our vCPUs all the time (the host ` +
      `was busy with other guests; this guest sees no steal time). With N workers the first should be min(N, available): less means the workers waited (e.g. for ` +
      'the writer lock) or other processes of this machine ran.', '');
    for (const size of sizesOf(T.cells)) {
      const vb = T.cells.find((c) => c.size === size).valueBytes;
      o.push(`### ${size} values (${int(vb)} B)`, '');
      const others = backends.filter((b) => b !== 'shmap');
      o.push(`| scenario | workers | ${backends.map((b) => `${SHORT[b]} ops/s/proc`).join(' | ')} | ${others.map((b) => `shmap / ${SHORT[b]}`).join(' | ')} | shmap aggregate | shmap MB/s/proc | shmap CPU µs/op | shmap runs: cores used / vCPUs available |`);
      o.push(`|---|---:|${backends.map(() => '---:|').join('')}${others.map(() => '---:|').join('')}---:|---:|---:|---|`);
      for (const mix of MIXES) {
        for (const n of T.workers) {
          const cs = backends.map((b) => cell(size, n, mix, b));
          if (cs.every((c) => !c)) continue;
          const s = cell(size, n, mix, 'shmap');
          const miss = cs.some((c) => c && c.misses) ? ' (misses!)' : '';
          o.push(`| ${mix}${miss} | ${n} | ${cs.map((c) => (c ? `${compact(c.perProcess)} ${spread(c)}` : '—')).join(' | ')} | ` +
            `${others.map((b) => pratio(s, cell(size, n, mix, b))).join(' | ')} | ` +
            `${s ? compact(s.aggregate) : '—'} | ${s ? s.mbPerProcess.toFixed(s.mbPerProcess < 10 ? 1 : 0) : '—'} | ` +
            `${s ? (s.cpuPerOpUs < 10 ? s.cpuPerOpUs.toFixed(2) : s.cpuPerOpUs.toFixed(0)) : '—'} | ` +
            `${s && s.cores ? s.cores.map((x, i) => `${x.toFixed(1)}${s.vcpus && s.vcpus[i] ? `/${s.vcpus[i].available.toFixed(1)}` : ''}`).join(' ') : '—'} |`);
        }
      }
      o.push('');
    }
  }

  // ---- 2. memory
  if (Mem && Mem.cells.length) {
    o.push('## 2. Memory', '');
    if (charts['memory-pss.svg']) o.push('![memory](memory-pss.svg)', '');
    o.push(`**How.** Fresh processes (a primary and N workers, \`fork()\`ed with \`${(Mem.nodeArgs || ['--expose-gc']).join(' ')}\`) load the code they need, and their PSS ` +
      '(`Pss:` of `/proc/PID/smaps_rollup`, which divides every shared page among the processes mapping it) is summed: the *idle* column. ' +
      `Then with **shmap** the primary creates a map and stores ${int(Mem.entries)} entries (\`item:N\` → a distinct JSON string of ${int(Mem.meanValueBytes || Mem.valueBytes)} B on average), ` +
      'waits out the 1 s grace period and calls `flush()` so regions retired by growth are returned; each worker opens the map and reads every entry once. ' +
      'With **lru-cache** each worker builds its own `LRUCache` of the same entries (the primary holds nothing). Both sides run two `gc()`s, then PSS is summed again. ' +
      '`--max-semi-space-size=1` keeps V8\'s young generation at its smallest on both sides: it grows with recent allocation (to 32 MiB per worker after reading the ' +
      '100 MB of values once) and stays committed, which made a worker\'s PSS vary by ~35 MiB with its allocation history rather than with the data it holds.', '');
    o.push('PSS counts a page only where some process maps it. The map\'s file may hold more: its whole ring is allocated when a ' +
      'generation is built (after growth the ring is at most half full), and pages that no process has touched are in no PSS. They are memory all ' +
      'the same, so the column *shmap memory used* adds them: the PSS of the processes without their shared-memory part, plus the file\'s allocated bytes.', '');
    o.push('Each shmap handle also keeps up to 8 MiB of decoded strings (its decode cache, per process, filled here by the read-through): the last column sums them over the workers.', '');
    o.push('| workers | shmap total PSS | shmap memory used | lru-cache total PSS | lru PSS / shmap PSS | lru PSS / shmap used | shmap PSS above idle | lru-cache above idle | shmap primary PSS | shmap file allocated | shmap live bytes | shmap decode caches |');
    o.push('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const n of [...new Set(Mem.cells.map((c) => c.workers))]) {
      const s = Mem.cells.find((c) => c.workers === n && c.kind === 'shmap'), l = Mem.cells.find((c) => c.workers === n && c.kind === 'lru');
      o.push(`| ${n} | ${s ? `${mib(s.pss)} MiB` : '—'} | ${s && s.used ? `${mib(s.used)} MiB` : '—'} | ${l ? `${mib(l.pss)} MiB` : '—'} | ${s && l ? ratio(l.pss, s.pss) : '—'} | ${s && l && s.used ? ratio(l.pss, s.used) : '—'} | ` +
        `${s ? `${mib(s.pss - s.idlePss)} MiB` : '—'} | ${l ? `${mib(l.pss - l.idlePss)} MiB` : '—'} | ` +
        `${s ? `${mib(s.primaryPss)} MiB` : '—'} | ${s ? `${mib(s.fileAllocatedBytes)} MiB` : '—'} | ${s ? `${mib(s.liveBytes)} MiB` : '—'} | ` +
        `${s && s.decodeCacheBytes != null ? `${mib(s.decodeCacheBytes)} MiB` : '—'} |`);
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
    o.push('| values | workers | backend | operations | get p50 µs | get p99 | get p99.9 | get max | set p50 µs | set p99 | set p99.9 | set max | cores used / vCPUs available |');
    o.push('|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|');
    for (const size of sizesOf(L.cells)) {
      for (const n of L.workers) {
        for (const b of backends) {
          const c = L.cells.find((x) => x.size === size && x.workers === n && x.backend === b);
          if (!c) continue;
          const p = (h) => (h ? [us(h.p50), us(h.p99), us(h.p999), us(h.max)] : ['—', '—', '—', '—']);
          o.push(`| ${size} | ${n} | ${SHORT[b]} | ${int(c.ops)} | ${[...p(c.get), ...p(c.set)].join(' | ')} | ` +
            `${c.vcpus ? c.vcpus.map((v) => `${v.workers.toFixed(1)}/${v.available.toFixed(1)}`).join(' ') : '—'} |`);
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
      o.push('| | create | sets | time | sets/s | MB/s written | switches | bytes written | bytes copied | copied / written | longest set |');
      o.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
      const row = (name, r) => {
        const g = r.grown, w = g.bytesWritten - r.first.bytesWritten, cp = g.bytesCopied - r.first.bytesCopied;
        o.push(`| ${name} | ${r.createMs != null ? `${r.createMs.toFixed(1)} ms` : '—'} | ${int(r.sets)} | ${(r.growMs / 1e3).toFixed(2)} s | ${compact(r.sets / (r.growMs / 1e3))} | ${(w / 1e6 / (r.growMs / 1e3)).toFixed(0)} | ` +
          `${g.switches - r.first.switches} | ${mib(w)} MiB | ${mib(cp)} MiB | ${(cp / w).toFixed(2)} | ${r.maxSetMs.toFixed(2)} ms |`);
      };
      row('growing from 1 MiB', G);
      if (P) row('created at full size', P);
      if (G.reader && G.reader.get) {
        const h = G.reader.get;
        o.push('', `**A reader meanwhile.** A second process opened the map before the first set and read it until the last: gets of random present keys, ` +
          `each timed. ${int(h.n)} gets (${int(G.reader.misses)} misses): p50 ${us(h.p50)} µs, p99 ${us(h.p99)} µs, p99.9 ${us(h.p999)} µs, max ${us(h.max)} µs. ` +
          'Two processes on the machine\'s cores (with whatever else ran), so the tail includes scheduling.');
      }
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
        r(S.afterGrace.settleSeconds ? `settled: a flush() per 1 s grace period, ${S.afterGrace.settleSeconds.toFixed(1)} s` : 'after the grace period + flush()', S.afterGrace);
        o.push('', `Returned to the OS: ${mib(G.settled.fileAllocatedBytes - S.afterGrace.fileAllocatedBytes)} MiB of ${mib(G.settled.fileAllocatedBytes)} MiB ` +
          '(the file keeps its length — the hole is punched, the length never shrinks while mapped).', '');
      }
    }
  }

  // ---- issue 9: write scaling and growth stall (rendered by writes.js)
  o.push(...require('./writes').markdown(data, charts));

  // ---- 5. rust
  if (data.rust) {
    o.push('## 5. Rust level (`benches/throughput.rs`)', '');
    o.push(`\`${data.rust.command}\` (${(data.rust.ms / 1e3).toFixed(0)} s, build included), LMDB through \`heed\` as the baseline; what it measures: \`benches/README.md\`.`, '');
    if (data.rust.note) o.push(`Not available: ${data.rust.note}`, '');
    if (data.rust.output) o.push('```', data.rust.output, '```', '');
  }

  // ---- 6. shmap/redis (rendered by redis-tier.js)
  if (data.redisTier) o.push(...require('./redis-tier').markdown(data.redisTier));
  // ---- 7. adapters
  if (data.adapters) {
    const A = data.adapters;
    const label = { shmap: 'shmap (ShmapSessionStore, ShmapStore, KeyvShmap)', redis: 'Redis (connect-redis, rate-limit-redis, @keyv/redis)',
      memory: 'memory stores (per process: wrong across workers)' };
    o.push('## 7. The adapters in an express app (`node/bench/adapters.js`)', '');
    o.push(`An express app on \`cluster\` (${A.workers} workers) with express-session, express-rate-limit and a cache-aside ` +
      `endpoint through Keyv, driven by autocannon (${A.connections} connections, ${A.rounds} rounds of ${A.seconds} s per stack; ` +
      `the three apps run side by side and the load moves between them, order rotating; ${A.sessions} sessions, ${A.clients} rate-limit keys, ${A.items} items). Each request: one rate-limit ` +
      'increment, a session load and touch, a Keyv read (a store on a miss). autocannon runs on the same machine. ' +
      'CPU per request is the stack\'s CPU time (its cluster; for Redis also redis-server) over its requests, round by round.' +
      (A.memorySessionsCopied ? ' Each login\'s session is copied to every worker\'s MemoryStore before the load, so that the memory stack, ' +
        'like the shared ones, finds every request\'s session (otherwise 3 requests in 4 would make a new one instead).' : ''), '');
    o.push('| stores | requests/s (median) | CPU µs/request (median) | p50 ms | p99 ms | non-2xx | errors |', '|---|---:|---:|---:|---:|---:|---:|');
    for (const [k, v] of Object.entries(A.summary)) {
      o.push(`| ${label[k] || k} | ${int(v.requestsPerSec)} | ${v.cpuUsPerRequest ? int(v.cpuUsPerRequest) : '—'} | ${v.latencyP50} | ${v.latencyP99} | ${v.non2xx} | ${v.errors} |`);
    }
    o.push('');
    const r = A.ratios;
    const parts = [];
    if (r.vsRedis) parts.push(`shmap / Redis: ${r.vsRedis.toFixed(2)}× (goal ≥ ${A.goals.vsRedis}×)`);
    if (r.vsMemory) parts.push(`shmap / memory stores: ${r.vsMemory.toFixed(2)}× (goal ≥ ${A.goals.vsMemory}×)`);
    if (parts.length) o.push(`${parts.join('; ')}: medians of the per-round ratios.`, '');
    // The memory stores do no cross-process work: what they gain over Redis bounds what any
    // store can gain in this app on this machine (runs before that field was kept: from runs).
    const ceiling = r.memoryVsRedis || (A.runs && A.runs.memory && A.runs.redis
      ? median(A.runs.memory.map((m, i) => m.requestsPerSec / A.runs.redis[i].requestsPerSec)) : null);
    if (ceiling) {
      o.push(`Memory stores / Redis: ${ceiling.toFixed(2)}×, the ceiling of this app here: a store that does no cross-process work ` +
        'gains that much over the Redis stores, so a goal above it cannot be met by any store in this run.', '');
    }
    const c = A.cpuRatios || {};
    const cp = [];
    if (c.vsRedis) cp.push(`the Redis stores use ${c.vsRedis.toFixed(2)}× shmap's CPU per request`);
    if (c.vsMemory) cp.push(`the memory stores ${c.vsMemory.toFixed(2)}×`);
    if (cp.length) o.push(`CPU: ${cp.join(', ')} (medians of the per-round ratios).`, '');
    for (const [k, why] of Object.entries(A.skipped || {})) o.push(`Skipped ${k}: ${why}.`);
    o.push('');
  }

  o.push('## Phases', '', '| phase | seconds | load average at its end |', '|---|---:|---|');
  for (const p of m.phases || []) o.push(`| ${p.name} | ${p.seconds.toFixed(0)} | ${p.loadavgEnd.join(' / ')} |`);
  o.push('');
  return `${o.join('\n')}\n`;
}

function write(outDir, data) {
  fs.mkdirSync(outDir, { recursive: true });
  const charts = { ...throughputCharts(data), ...memoryChart(data), ...latencyChart(data), ...growthChart(data),
    ...require('./writes').charts(data, { barChart }) };
  for (const [f, svg] of Object.entries(charts)) fs.writeFileSync(path.join(outDir, f), svg);
  fs.writeFileSync(path.join(outDir, 'report.md'), markdown(data, charts));
  fs.writeFileSync(path.join(outDir, 'data.json'), `${JSON.stringify(data, null, 1)}\n`);
}

module.exports = { write, barChart, lineChart };
