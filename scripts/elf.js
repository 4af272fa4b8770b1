'use strict';
// The symbol versions an ELF shared object needs from each library (its .gnu.version_r
// section, what `objdump -p` lists under "Version References"), read in JS so the glibc floor
// of a shipped binary is checked without binutils. Little-endian ELF64 only (all we ship).

const fs = require('fs');

const SHT_GNU_VERNEED = 0x6ffffffe;

// { 'libc.so.6': ['GLIBC_2.2.5', ...], ... }
function versionNeeds(file) {
  const b = fs.readFileSync(file);
  if (b.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${file}: not an ELF file`);
  if (b[4] !== 2 || b[5] !== 1) throw new Error(`${file}: not a little-endian ELF64 file`);
  const shoff = Number(b.readBigUInt64LE(0x28));
  const shentsize = b.readUInt16LE(0x3a);
  const shnum = b.readUInt16LE(0x3c);
  const section = (i) => {
    const o = shoff + i * shentsize;
    return {
      type: b.readUInt32LE(o + 4),
      offset: Number(b.readBigUInt64LE(o + 0x18)),
      size: Number(b.readBigUInt64LE(o + 0x20)),
      link: b.readUInt32LE(o + 0x28),
      info: b.readUInt32LE(o + 0x2c),
    };
  };
  const cstr = (off) => b.toString('latin1', off, b.indexOf(0, off));
  const needs = {};
  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    if (s.type !== SHT_GNU_VERNEED) continue;
    const strtab = section(s.link).offset;
    let vn = s.offset;
    for (let n = 0; n < s.info; n++) {
      // Elf64_Verneed: vn_version u16, vn_cnt u16, vn_file u32, vn_aux u32, vn_next u32
      const cnt = b.readUInt16LE(vn + 2);
      const lib = cstr(strtab + b.readUInt32LE(vn + 4));
      const list = (needs[lib] = needs[lib] || []);
      let aux = vn + b.readUInt32LE(vn + 8);
      for (let k = 0; k < cnt; k++) {
        // Elf64_Vernaux: vna_hash u32, vna_flags u16, vna_other u16, vna_name u32, vna_next u32
        list.push(cstr(strtab + b.readUInt32LE(aux + 8)));
        aux += b.readUInt32LE(aux + 12);
      }
      const next = b.readUInt32LE(vn + 12);
      if (!next) break;
      vn += next;
    }
  }
  return needs;
}

// The highest GLIBC_x.y[.z] version the file needs from any library, as a string, or null.
function glibcFloor(file) {
  const all = Object.values(versionNeeds(file)).flat()
    .filter((v) => /^GLIBC_\d+(\.\d+)*$/.test(v))
    .map((v) => v.slice(6));
  all.sort(compareVersions);
  return all.length ? all[all.length - 1] : null;
}

function compareVersions(a, b) {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] || 0) - (y[i] || 0);
    if (d) return d;
  }
  return 0;
}

module.exports = { versionNeeds, glibcFloor, compareVersions };

if (require.main === module) {
  for (const f of process.argv.slice(2)) console.log(`${f}: GLIBC_${glibcFloor(f)}`);
}
