//! The one error type of the crate. Every variant says what a person can do about it.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Everything that can go wrong with a map.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system call failed; `op` names what shmap was doing.
    Io {
        /// What shmap was doing, e.g. "open /dev/shm/cache".
        op: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The file is a shmap map but its bytes are inconsistent.
    Corrupt {
        /// Byte offset in the file where the problem was found.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// The file is not a shmap map (wrong magic).
    NotAMap {
        /// The file.
        path: PathBuf,
    },
    /// The file was written by a format version this build does not read.
    UnsupportedVersion {
        /// The version in the file.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// The map was created with more shards than this build operates (a newer release's map):
    /// nothing is written to it.
    UnsupportedShards {
        /// The file's shard count.
        found: u32,
        /// The most shards this build operates.
        supported: u32,
    },
    /// The file system has no room for the space the map needs (e.g. a full `/dev/shm`).
    NoSpace {
        /// Bytes shmap tried to reserve.
        requested: u64,
    },
    /// The map is at `max_size`, eviction is off, and live data leaves no room.
    Full {
        /// Bytes of the record that did not fit.
        needed: u64,
    },
    /// A key or value is larger than the map accepts.
    TooLarge {
        /// What was too large: "key" or "value".
        what: &'static str,
        /// Its length.
        len: u64,
        /// The largest accepted length.
        max: u64,
    },
    /// A write on a handle opened read-only (or with the lock disabled).
    ReadOnly,
    /// The handle was closed.
    Closed,
    /// `incr` found a value that is not an integer written by `incr` or `set_int`.
    NotAnInteger,
    /// An argument is out of its accepted range.
    InvalidArgument(String),
    /// All 1024 process slots of the map are held by live processes.
    TooManyProcesses,
    /// A lock-free read or scan kept racing with writers (about 2.5 s of retries).
    Busy,
    /// The waits on other processes of one hold of a shard's lock (for the lock, for fast writers
    /// inside a write, for the placement lock) lasted the handle's `lock_timeout` in all.
    /// Nothing was changed; the holder keeps its lock (it may be stopped or slow, and resume
    /// mid-write).
    LockTimeout {
        /// How long this call waited, in ms.
        waited_ms: u64,
        /// The pid recorded for the writer lock's holder, if known.
        holder_pid: Option<u32>,
        /// How long the holder has held the lock, in ms, if known.
        held_ms: Option<u64>,
    },
    /// The map file is not this handle's to use: not a regular file, a symbolic link, more than
    /// one hard link, an untrusted owner, or permissions wider than the handle's `mode`.
    Permission {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
        /// The file's owner uid (when the file could be examined).
        uid: Option<u32>,
        /// The file's permission bits (when the file could be examined).
        mode: Option<u32>,
    },
    /// The handle was opened before a `fork()` and used in the child: open the map again there.
    Forked,
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A stable, machine-readable code (the Node addon exposes it as `err.code`).
    pub fn code(&self) -> &'static str {
        match self {
            Error::Io { .. } => "ERR_SHMAP_IO",
            Error::Corrupt { .. } => "ERR_SHMAP_CORRUPT",
            Error::NotAMap { .. } => "ERR_SHMAP_NOT_A_MAP",
            Error::UnsupportedVersion { .. } | Error::UnsupportedShards { .. } => {
                "ERR_SHMAP_VERSION"
            }
            Error::NoSpace { .. } => "ERR_SHMAP_NO_SPACE",
            Error::Full { .. } => "ERR_SHMAP_FULL",
            Error::TooLarge { .. } => "ERR_SHMAP_TOO_LARGE",
            Error::ReadOnly => "ERR_SHMAP_READ_ONLY",
            Error::Closed => "ERR_SHMAP_CLOSED",
            Error::NotAnInteger => "ERR_SHMAP_NOT_AN_INTEGER",
            Error::InvalidArgument(_) => "ERR_SHMAP_INVALID_ARGUMENT",
            Error::TooManyProcesses => "ERR_SHMAP_TOO_MANY_PROCESSES",
            Error::Busy => "ERR_SHMAP_BUSY",
            Error::LockTimeout { .. } => "ERR_SHMAP_LOCK_TIMEOUT",
            Error::Permission { .. } => "ERR_SHMAP_PERMISSION",
            Error::Forked => "ERR_SHMAP_FORKED",
        }
    }

    pub(crate) fn io(op: impl Into<String>, source: io::Error) -> Error {
        // ENOSPC (and EDQUOT) from any call is the file system being full.
        if matches!(
            source.raw_os_error(),
            Some(libc::ENOSPC) | Some(libc::EDQUOT)
        ) {
            return Error::NoSpace { requested: 0 };
        }
        Error::Io {
            op: op.into(),
            source,
        }
    }

    pub(crate) fn corrupt(offset: u64, what: impl Into<String>) -> Error {
        Error::Corrupt {
            offset,
            what: what.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { op, source } => write!(f, "{op}: {source}"),
            Error::Corrupt { offset, what } => {
                write!(f, "map file is corrupt at byte {offset}: {what}")
            }
            Error::NotAMap { path } => write!(
                f,
                "{} is not a shmap file (wrong magic); refusing to touch it",
                path.display()
            ),
            Error::UnsupportedVersion { found, supported } => write!(
                f,
                "map file has format version {found}, this build reads version {supported}; \
                 open it with `reset: true` to re-create it as a fresh version-{supported} map \
                 (its entries are lost)"
            ),
            Error::UnsupportedShards { found, supported } => write!(
                f,
                "map file has {found} shards (format version 3), this build operates maps of \
                 at most {supported}; open it with the release that created it, or with \
                 `reset: true` to re-create it as a fresh map (its entries are lost)"
            ),
            Error::NoSpace { requested } if *requested > 0 => write!(
                f,
                "no space left on the file system for {requested} more bytes; \
                 free space or lower max_size"
            ),
            Error::NoSpace { .. } => write!(
                f,
                "no space left on the file system; free space or lower max_size"
            ),
            Error::Full { needed } => write!(
                f,
                "map is full (max_size reached, eviction off): no room for a {needed}-byte record"
            ),
            Error::TooLarge { what, len, max } => {
                write!(f, "{what} of {len} bytes is too large (at most {max})")
            }
            Error::ReadOnly => write!(f, "map handle is read-only"),
            Error::Closed => write!(f, "map handle is closed"),
            Error::NotAnInteger => write!(f, "value is not an integer counter"),
            Error::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
            Error::TooManyProcesses => {
                write!(f, "all 1024 process slots of the map are in use")
            }
            Error::Busy => write!(
                f,
                "writers kept changing the map during a lock-free read; try again"
            ),
            Error::LockTimeout {
                waited_ms,
                holder_pid,
                held_ms,
            } => {
                write!(
                    f,
                    "gave up after waiting {waited_ms} ms for the map's writer lock or a write \
                     under way"
                )?;
                match (holder_pid, held_ms) {
                    (Some(pid), Some(ms)) => write!(f, ", held by pid {pid} for {ms} ms")?,
                    (Some(pid), None) => write!(f, ", held by pid {pid}")?,
                    _ => {}
                }
                write!(
                    f,
                    " (stopped or slow; nothing was changed; raise lock_timeout if writes \
                     legitimately take this long)"
                )
            }
            Error::Permission {
                path,
                what,
                uid,
                mode,
            } => {
                write!(f, "refusing to use {}: {what}", path.display())?;
                if let (Some(uid), Some(mode)) = (uid, mode) {
                    write!(f, " (owner uid {uid}, mode {mode:04o})")?;
                }
                Ok(())
            }
            Error::Forked => write!(
                f,
                "map handle was opened before fork() and cannot be used in the child; open the \
                 map again in the child"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_send_sync_and_static() {
        fn check<T: Send + Sync + 'static>() {}
        check::<Error>();
    }

    #[test]
    fn enospc_becomes_no_space() {
        let e = Error::io("fallocate", io::Error::from_raw_os_error(libc::ENOSPC));
        assert_eq!(e.code(), "ERR_SHMAP_NO_SPACE");
        let e = Error::io("open", io::Error::from_raw_os_error(libc::ENOENT));
        assert_eq!(e.code(), "ERR_SHMAP_IO");
    }

    #[test]
    fn new_errors_name_what_to_act_on() {
        let e = Error::LockTimeout {
            waited_ms: 5000,
            holder_pid: Some(4242),
            held_ms: Some(6100),
        };
        assert_eq!(e.code(), "ERR_SHMAP_LOCK_TIMEOUT");
        let msg = e.to_string();
        assert!(msg.contains("4242") && msg.contains("6100 ms"), "{msg}");
        let e = Error::Permission {
            path: "/dev/shm/x".into(),
            what: "owned by an untrusted user".into(),
            uid: Some(65534),
            mode: Some(0o666),
        };
        assert_eq!(e.code(), "ERR_SHMAP_PERMISSION");
        let msg = e.to_string();
        assert!(msg.contains("65534") && msg.contains("0666"), "{msg}");
        assert_eq!(Error::Forked.code(), "ERR_SHMAP_FORKED");
    }

    #[test]
    fn version_message_names_both() {
        let msg = Error::UnsupportedVersion {
            found: 7,
            supported: 1,
        }
        .to_string();
        assert!(msg.contains('7') && msg.contains('1'), "{msg}");
    }
}
