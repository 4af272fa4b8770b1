//! How to open a map: options, defaults, the clock, and name resolution.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};

/// A source of wall-clock milliseconds since the Unix epoch (replaceable for tests).
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    })
}

/// Default cap on the file's memory: 800 MiB, as in the original.
pub const DEFAULT_MAX_SIZE: u64 = 800 << 20;
/// Default size of a new map's file.
pub const DEFAULT_INITIAL_SIZE: u64 = 1 << 20;
/// Smallest accepted size (initial or max).
pub const MIN_SIZE: u64 = 64 << 10;
/// Default bound on every wait for another process (see [`Options::lock_timeout`]).
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(5);
/// Default permission bits of a new map file, and the widest accepted on open.
pub const DEFAULT_MODE: u32 = 0o600;

/// How to open a map.
#[derive(Clone)]
pub struct Options {
    pub(crate) initial_size: u64,
    pub(crate) max_size: Option<u64>,
    pub(crate) max_age_ms: Option<u64>,
    pub(crate) reset: bool,
    pub(crate) read_only: bool,
    pub(crate) evict: Option<bool>,
    pub(crate) create: bool,
    pub(crate) seed: Option<u64>,
    pub(crate) clock: Clock,
    /// Whether `clock` is [`system_clock`] (then reads may consult the kernel's coarse clock).
    pub(crate) system_clock: bool,
    pub(crate) grace: Duration,
    pub(crate) lock_timeout: Duration,
    pub(crate) mode: u32,
    pub(crate) trusted_owners: Vec<u32>,
    pub(crate) shards: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            initial_size: DEFAULT_INITIAL_SIZE,
            max_size: None,
            max_age_ms: None,
            reset: false,
            read_only: false,
            evict: None,
            create: true,
            seed: None,
            clock: system_clock(),
            system_clock: true,
            grace: Duration::from_secs(1),
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            mode: DEFAULT_MODE,
            trusted_owners: Vec::new(),
            shards: 1,
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("initial_size", &self.initial_size)
            .field("max_size", &self.max_size)
            .field("max_age_ms", &self.max_age_ms)
            .field("reset", &self.reset)
            .field("read_only", &self.read_only)
            .field("evict", &self.evict)
            .field("create", &self.create)
            .field("lock_timeout", &self.lock_timeout)
            .field("mode", &format_args!("{:04o}", self.mode))
            .field("trusted_owners", &self.trusted_owners)
            .finish_non_exhaustive()
    }
}

impl Options {
    /// Defaults: 1 MiB initial size, 800 MiB max size, no expiry, eviction on.
    pub fn new() -> Options {
        Options::default()
    }
    /// Size of the file when the map is created (at least 64 KiB). Shrinking never goes below it.
    pub fn initial_size(mut self, bytes: u64) -> Self {
        self.initial_size = bytes;
        self
    }
    /// Cap on the file's allocated bytes, shared by every process (stored in the map). When
    /// given, it replaces the stored value at open.
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.max_size = Some(bytes);
        self
    }
    /// Default time to live of entries set without one; `None` = never expire. Stored in the
    /// map when given.
    pub fn max_age(mut self, max_age: Option<Duration>) -> Self {
        self.max_age_ms = Some(max_age.map_or(0, |d| d.as_millis().max(1) as u64));
        self
    }
    /// Start empty. Safe while other processes are attached (it is a `clear`); on a file of
    /// another format version with nobody attached, it re-creates the map.
    pub fn reset(mut self, reset: bool) -> Self {
        self.reset = reset;
        self
    }
    /// Refuse writes through this handle. The file is opened read-only if it cannot be opened
    /// for writing.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }
    /// Whether a full map evicts (default) or refuses `set` with [`Error::Full`]. Stored in the
    /// map when given.
    pub fn evict(mut self, evict: bool) -> Self {
        self.evict = Some(evict);
        self
    }
    /// How many shards a new map gets (format.md, "Shard count"): a power of two from 1 to 128,
    /// each with its own writer lock, so writers of different shards do not wait for each
    /// other; or 0 for twice the cores (rounded up to a power of two, at most 128). Either is
    /// lowered until every shard's first generation fits `initial_size`. Default 1. An existing
    /// map keeps the count it was created with (`reset` re-creates it with this one).
    pub fn shards(mut self, shards: u32) -> Self {
        self.shards = shards;
        self
    }
    /// Whether to create the file if it is missing (default true).
    pub fn create(mut self, create: bool) -> Self {
        self.create = create;
        self
    }
    /// The longest an operation waits for other processes per shard it holds (the writer lock
    /// held by a stopped or slow process, a creator or recoverer holding the file), measured on
    /// the monotonic clock; then it fails with [`crate::Error::LockTimeout`] and changes
    /// nothing. The waits of one hold of a shard's lock (for the lock, then for stopped fast
    /// writers, say) share one timeout; a call that holds several shards (`clear` in turn,
    /// `set_if` at once) has one per shard. Default 5 s: far above the longest legitimate hold
    /// (a growth switch that copies a full 800 MiB ring takes well under a second), so only a
    /// stopped or pathologically slow holder trips it, and short enough that a frozen process
    /// costs an event loop seconds, not forever (the figure lua-resty-lock and bbolt use).
    /// Waiting for another process's loader in a lease (`getOrSet`) is bounded by the lease's
    /// own time instead. Handles of one map in one process share one attachment, and with it
    /// the first handle's timeout (a known limit).
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }
    /// Permission bits of a new map file (default 0o600), set with `fchmod` after creation so
    /// the umask cannot narrow a deliberate share; an existing file that grants more than these
    /// bits is refused with [`crate::Error::Permission`].
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode & 0o777;
        self
    }
    /// Owners trusted besides this process's effective uid and root: a map file owned by
    /// anyone else is refused with [`crate::Error::Permission`].
    pub fn trusted_owners(mut self, uids: impl IntoIterator<Item = u32>) -> Self {
        self.trusted_owners = uids.into_iter().collect();
        self
    }
    /// Fixes the hash seed of a new map (tests and reproducible fixtures).
    #[doc(hidden)]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }
    /// Replaces the wall clock (tests and reproducible fixtures).
    #[doc(hidden)]
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self.system_clock = false;
        self
    }
    /// How long retired regions keep their pages before they are punched out (default 1 s).
    #[doc(hidden)]
    pub fn retire_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }
}

/// Resolves a map name: a bare name is `/dev/shm/<name>` (the OS temp dir where `/dev/shm` is
/// missing); anything with a `/` is a path.
pub fn resolve(name: &str) -> Result<PathBuf> {
    if name.is_empty() || name.contains('\0') {
        return Err(Error::InvalidArgument(format!(
            "map name {name:?} is empty or contains NUL"
        )));
    }
    if name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    if name == "." || name == ".." {
        return Err(Error::InvalidArgument(format!(
            "map name {name:?} is not a file name"
        )));
    }
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    Ok(dir.join(name))
}
