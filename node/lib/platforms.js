'use strict';
// The platforms shmap knows, napi-rs's names for them, and how this process finds out which one
// it runs on. Shared by the loader (native.js) and the packing script (../../scripts/pack.js).

// napi-rs's platform name -> the Rust target its binary is built for (a `.2.17` suffix asks
// cargo-zigbuild for that glibc), and whether this project ships a binary for it yet.
// Every binary needs Linux 3.15 or later (open file description locks, F_OFD_SETLK).
const PLATFORMS = {
  'linux-x64-gnu': { target: 'x86_64-unknown-linux-gnu.2.17', glibc: '2.17', ships: true },
  'linux-x64-musl': { target: 'x86_64-unknown-linux-musl', ships: false },
  'linux-arm64-gnu': { target: 'aarch64-unknown-linux-gnu.2.17', glibc: '2.17', ships: false },
  'linux-arm64-musl': { target: 'aarch64-unknown-linux-musl', ships: false },
};

const KERNEL_FLOOR = '3.15';

// The npm package that carries a platform's binary, and the binary's file name in it.
const packageOf = (platform) => `shmap-${platform}`;
const binaryOf = (platform) => `shmap.${platform}.node`;

// Which C library this process runs on, without spawning anything: glibc reports its version
// in the diagnostic report's header; musl does not, but its loader shows among the shared
// objects. { libc: 'gnu' | 'musl' | null, version: '2.36' | null }.
function detectLibc() {
  if (process.platform !== 'linux') return { libc: null, version: null };
  let report;
  const { report: rep } = process;
  const excluded = rep && rep.excludeNetwork;
  try {
    if (rep && 'excludeNetwork' in rep) rep.excludeNetwork = true; // no DNS lookups
    report = rep && rep.getReport();
    if (typeof report === 'string') report = JSON.parse(report);
  } catch {
    report = null;
  } finally {
    if (rep && 'excludeNetwork' in rep) rep.excludeNetwork = excluded;
  }
  const header = (report && report.header) || {};
  if (header.glibcVersionRuntime) return { libc: 'gnu', version: header.glibcVersionRuntime };
  const objects = (report && report.sharedObjects) || [];
  if (objects.some((f) => /(^|\/)(ld-musl-|libc\.musl-)/.test(f))) {
    return { libc: 'musl', version: null };
  }
  return { libc: null, version: null };
}

// napi-rs's platform name for a platform, CPU and libc ('linux-x64-gnu'), or null when Linux
// does not say which libc it has.
function platformName(platform, arch, libc) {
  if (platform !== 'linux') return `${platform}-${arch}`;
  return libc ? `linux-${arch}-${libc}` : null;
}

// A person's name for it: "Linux on x64 with glibc 2.36".
function describePlatform(platform, arch, { libc, version }) {
  const os = { linux: 'Linux', darwin: 'macOS', win32: 'Windows', freebsd: 'FreeBSD' }[platform]
    || platform;
  if (platform !== 'linux') return `${os} on ${arch}`;
  const lib = libc === 'gnu' ? `glibc${version ? ` ${version}` : ''}`
    : libc === 'musl' ? 'musl libc' : 'an unrecognised C library';
  return `${os} on ${arch} with ${lib}`;
}

module.exports = {
  PLATFORMS, KERNEL_FLOOR, packageOf, binaryOf, detectLibc, platformName, describePlatform,
};
