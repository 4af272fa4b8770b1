//! One generation: its index (hash slots) and its log (a ring of immutable records).
//!
//! Readers use [`Gen::load`] and [`Gen::lookup`] without any lock and validate afterwards;
//! writers, holding the writer lock, use the same probing plus [`Gen::append`].

use std::sync::atomic::{Ordering, fence};

use zerocopy::{FromBytes, IntoBytes};

use crate::error::{Error, Result};
use crate::format::{
    self, CHUNK_HEAD_LEN, Desc, FLAG_CHUNK, FLAG_PAD, LOG_HEADER_LEN, LogHeader, RECORD_HEADER_LEN,
    RecordHeader, sctl, slot,
};
use crate::raw::{Mem, Window};

const HEAD: u64 = std::mem::offset_of!(LogHeader, head) as u64;
const TAIL: u64 = std::mem::offset_of!(LogHeader, tail) as u64;

/// Tells damage from a race when a lock-free read or scan keeps failing validation: a failure
/// with no writer in the shard, no recovery owed, and neither its `active` word nor the ring's head
/// or tail moved since the previous failure was caused by no one (say, a slot pointing behind
/// the tail). Retrying such a read for seconds would only delay the damage report.
#[derive(Default)]
pub(crate) struct Failures {
    last: Option<[u64; 3]>,
    still: u32,
}

impl Failures {
    /// Failures in a row, with nothing moving, after which the map is reported damaged.
    const STILL: u32 = 3;

    /// Records a failed validation of `g`; `Corrupt` once the map has stood still long enough.
    pub fn failed(&mut self, w: &Window, g: &Gen) -> Result<()> {
        let s = g.shard;
        let seen = if w.load_u32(sctl!(s, writer_lock), Ordering::Acquire)? != 0
            || w.load_u32(sctl!(s, recovery), Ordering::Acquire)? != 0
        {
            None
        } else {
            Some([
                w.load_u64(sctl!(s, active), Ordering::Acquire)?,
                g.head(w)?,
                g.tail(w)?,
            ])
        };
        if seen.is_some() && seen == self.last {
            self.still += 1;
            if self.still >= Self::STILL {
                return Err(Error::corrupt(
                    format::shard_off(s),
                    "reads fail validation with no writer in the map: an index slot points at a \
                     record behind the ring's tail, or a descriptor disagrees with the shard's \
                     active word",
                ));
            }
        } else {
            self.still = 0;
        }
        self.last = seen;
        Ok(())
    }
}

/// A validated view of one generation's descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gen {
    pub desc: Desc,
    /// The shard whose generation it is.
    pub shard: usize,
    /// `log2` of the map's shard count (home slots use the hash bits after the shard's).
    pub bits: u32,
    /// The descriptor slot (0 or 1) that describes it.
    pub slot: u64,
}

/// Where a value read from the ring goes.
pub(crate) trait Sink {
    /// Space for a value of `len` bytes, or `None` when it cannot hold that many.
    fn space(&mut self, len: usize) -> Option<&mut [u8]>;

    /// Whether the caller already holds the record at `pos` of generation `generation` (then
    /// nothing is copied: records are immutable, and a position is never reused in a log).
    fn holds(&self, _generation: u64, _pos: u64) -> bool {
        false
    }

    /// Whether [`Sink::space`] allocates `len` bytes: then the length is validated first.
    fn allocates(&self) -> bool {
        false
    }
}

impl Sink for Vec<u8> {
    fn space(&mut self, len: usize) -> Option<&mut [u8]> {
        // Only bytes beyond the current length are zero-filled; a reused buffer costs nothing.
        self.truncate(len);
        self.try_reserve_exact(len - self.len()).ok()?;
        self.resize(len, 0);
        Some(&mut self[..])
    }

    fn allocates(&self) -> bool {
        true
    }
}

/// Sizes `buf` to `len` bytes for a value read at `pos`; an allocation failure is an error, not
/// an abort. Callers pass only lengths read from records known intact.
pub(crate) fn size_buf(buf: &mut Vec<u8>, len: usize, pos: u64) -> Result<()> {
    buf.truncate(len);
    buf.try_reserve_exact(len - buf.len())
        .map_err(|_| Error::corrupt(pos, format!("a {len}-byte value does not fit in memory")))?;
    buf.resize(len, 0);
    Ok(())
}

/// A fixed buffer (the Node addon's reusable one), and the record version the caller already
/// holds, if any.
pub(crate) struct SliceSink<'a>(pub &'a mut [u8], pub Option<(u64, u64)>);

impl Sink for SliceSink<'_> {
    fn space(&mut self, len: usize) -> Option<&mut [u8]> {
        self.0.get_mut(..len)
    }

    fn holds(&self, generation: u64, pos: u64) -> bool {
        self.1 == Some((generation, pos))
    }
}

/// Discards the value (for `contains`).
pub(crate) struct NoSink;

impl Sink for NoSink {
    fn space(&mut self, _len: usize) -> Option<&mut [u8]> {
        Some(&mut [])
    }
}

/// A record found by a probe.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hit {
    /// Index of the slot that points at it.
    pub idx: u64,
    /// The slot's value when read.
    pub slot: u64,
    /// The record's header.
    pub hdr: RecordHeader,
    /// Whether the value was copied (false when the sink was too small or already held it).
    pub copied: bool,
    /// Whether the sink already held this record (nothing copied).
    pub unchanged: bool,
    /// The lowest position of any record the probe read (this one included).
    pub oldest: u64,
}

/// The outcome of one probe.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Probe {
    /// The key is absent; `free` is where it would be inserted (first tombstone or the empty slot).
    /// `oldest` is the lowest position of any record whose key the probe compared: a lock-free
    /// miss is only true if none of them was overwritten meanwhile (`u64::MAX`: none read).
    Miss { free: Option<u64>, oldest: u64 },
    /// The key is present.
    Hit(Hit),
    /// The bytes made no sense: a race with a writer, or damage (the caller decides which).
    /// `pos` is the record position involved, if any, and `idx` the slot.
    Suspect {
        offset: u64,
        what: &'static str,
        idx: u64,
        pos: Option<u64>,
    },
}

impl Gen {
    /// Loads shard `shard`'s active generation optimistically: its `active` word, then the
    /// descriptor slot it names, then `active` again. Validates the descriptor and maps
    /// everything it names.
    pub fn load(mem: &Mem, shard: usize) -> Result<Gen> {
        let w = mem.w();
        for _ in 0..100 {
            let active = w.load_u64(sctl!(shard, active), Ordering::Acquire)?;
            let (g, slot) = (active >> 1, active & 1);
            let desc = read_desc(w, shard, slot)?;
            fence(Ordering::Acquire);
            if w.load_u64(sctl!(shard, active), Ordering::Relaxed)? != active {
                continue;
            }
            // While `g` stays active its descriptor slot is never rewritten, so a generation
            // this process has validated and mapped once needs no second look (generation
            // numbers are unique map-wide). Generation 0 is never a map's: the cache's "none".
            if g != 0 && mem.verified_gen(shard) == g && desc.generation == g {
                return Ok(Gen {
                    desc,
                    shard,
                    bits: mem.shard_bits(),
                    slot,
                });
            }
            let fresh = Gen::from_desc(mem, desc, shard, slot, g)?;
            mem.set_verified_gen(shard, g);
            return Ok(fresh);
        }
        Err(Error::Busy)
    }

    /// Validates `desc`, in shard `shard`'s descriptor slot `slot`, as generation `g` and makes
    /// sure its regions are mapped.
    pub fn from_desc(mem: &Mem, desc: Desc, shard: usize, slot: u64, g: u64) -> Result<Gen> {
        let end = desc
            .index_off
            .saturating_add(desc.index_len())
            .max(desc.log_off.saturating_add(desc.log_len()));
        // Everything but the file length first (overflow included); then `ensure` checks that
        // the regions lie within the file, and maps them.
        desc.validate(g, format::desc_off(shard, slot), mem.header_len(), u64::MAX)?;
        mem.ensure(end)?;
        Ok(Gen {
            desc,
            shard,
            bits: mem.shard_bits(),
            slot,
        })
    }

    /// The home slot of a key with hash `h` in this generation's index.
    #[inline]
    pub fn home(&self, h: u64) -> u64 {
        format::home(format::in_shard(h, self.bits), self.slots())
    }

    /// The shard's `active` word for this generation.
    #[inline]
    pub fn active_word(&self) -> u64 {
        format::active_word(self.number(), self.slot)
    }

    /// Whether this generation is still the shard's active one.
    #[inline]
    pub fn is_active(&self, w: &Window) -> Result<bool> {
        Ok(w.load_u64(sctl!(self.shard, active), Ordering::Relaxed)? == self.active_word())
    }

    /// The generation number.
    #[inline]
    pub fn number(&self) -> u64 {
        self.desc.generation
    }

    #[inline]
    fn slot_off(&self, i: u64) -> u64 {
        self.desc.index_off + i * format::SLOT_LEN
    }

    #[inline]
    pub fn slots(&self) -> u64 {
        self.desc.index_slots
    }

    #[inline]
    pub fn cap(&self) -> u64 {
        self.desc.log_cap
    }

    /// File offset of ring byte `phys`.
    #[inline]
    fn ring(&self, phys: u64) -> u64 {
        self.desc.log_off + LOG_HEADER_LEN + phys
    }

    /// Ring offset of virtual position `pos`.
    #[inline]
    pub fn phys(&self, pos: u64) -> u64 {
        pos % self.desc.log_cap
    }

    pub fn head(&self, w: &Window) -> Result<u64> {
        w.load_u64(self.desc.log_off + HEAD, Ordering::Acquire)
    }

    pub fn tail(&self, w: &Window) -> Result<u64> {
        w.load_u64(self.desc.log_off + TAIL, Ordering::Acquire)
    }

    pub fn set_head(&self, w: &Window, v: u64) -> Result<()> {
        w.store_u64(self.desc.log_off + HEAD, v, Ordering::Release)
    }

    /// Moves the tail. The release fence orders it before any later overwrite of the bytes it
    /// passed, so a reader that sees an overwritten byte also sees the new tail.
    pub fn set_tail(&self, w: &Window, v: u64) -> Result<()> {
        w.store_u64(self.desc.log_off + TAIL, v, Ordering::Release)?;
        fence(Ordering::Release);
        Ok(())
    }

    pub fn load_slot(&self, w: &Window, i: u64) -> Result<u64> {
        w.load_u64(self.slot_off(i), Ordering::Acquire)
    }

    /// Publishes a slot value: the one store that makes a write visible.
    pub fn store_slot(&self, w: &Window, i: u64, v: u64) -> Result<()> {
        w.store_u64(self.slot_off(i), v, Ordering::Release)
    }

    /// Publishes a slot value if the slot still holds `seen`: how every store to an active
    /// index is made, so that no write replaces one it did not see (format.md, "Lanes and
    /// chunks"). False if the slot had changed.
    pub fn cas_slot(&self, w: &Window, i: u64, seen: u64, v: u64) -> Result<bool> {
        self.replace_slot(w, i, seen, |_| v)
    }

    /// [`Gen::cas_slot`] with the new value made from the slot's current one: a reader's
    /// reference bit set meanwhile is not a change of the slot (it is retried over); anything
    /// else is, and gives false.
    pub fn replace_slot(
        &self,
        w: &Window,
        i: u64,
        mut seen: u64,
        new: impl Fn(u64) -> u64,
    ) -> Result<bool> {
        loop {
            match w.cas_u64(self.slot_off(i), seen, new(seen))? {
                Ok(_) => return Ok(true),
                Err(now) if now & !slot::REF == seen & !slot::REF => seen = now,
                Err(_) => return Ok(false),
            }
        }
    }

    /// Asks for the home slot's line of hash `h` with intent to write (a writer's probe that
    /// will store there).
    #[inline]
    pub fn prefetch_home(&self, w: &Window, h: u64) {
        w.prefetch_write(self.slot_off(self.home(h)));
    }

    /// Sets the CLOCK reference bit if the slot still holds `seen` (never a blind store).
    pub fn touch(&self, w: &Window, i: u64, seen: u64) {
        if seen & slot::REF == 0 && w.writable() {
            let _ = w.cas_u64(self.slot_off(i), seen, seen | slot::REF);
        }
    }

    /// Reads the record header at virtual position `pos`, checking its lengths.
    pub fn header_at(
        &self,
        w: &Window,
        pos: u64,
    ) -> Result<std::result::Result<(RecordHeader, u64), &'static str>> {
        let phys = self.phys(pos);
        if self.cap() - phys < RECORD_HEADER_LEN {
            return Ok(Err("record header crosses the end of the ring"));
        }
        let at = self.ring(phys);
        let hdr: RecordHeader = if at.is_multiple_of(8) {
            // Records are 8-aligned: three word loads, the bytes in file order.
            zerocopy::transmute!(w.load_words::<3>(at)?)
        } else {
            // Slots hold multiples of 8 and rings start page-aligned: only a damaged log
            // header (its head or tail) names an unaligned position.
            let mut buf = [0u8; RECORD_HEADER_LEN as usize];
            w.read(at, &mut buf)?;
            RecordHeader::read_from_bytes(&buf).map_err(|_| Error::corrupt(pos, "header"))?
        };
        match hdr.check_bounds(phys, self.cap()) {
            Some(size) => Ok(Ok((hdr, size))),
            None => Ok(Err("record lengths exceed the ring")),
        }
    }

    /// Copies the key of the record at `pos` (with header `hdr`) into `buf`.
    pub fn read_key(
        &self,
        w: &Window,
        pos: u64,
        hdr: &RecordHeader,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        buf.clear();
        buf.resize(hdr.key_len.get() as usize, 0);
        w.read(self.ring(self.phys(pos)) + RECORD_HEADER_LEN, buf)
    }

    /// Whether the record at `pos` (whose key length equals `key.len()`) holds `key`; compares
    /// through a stack buffer, so a read allocates nothing.
    fn key_eq(&self, w: &Window, pos: u64, key: &[u8]) -> Result<bool> {
        let mut buf = [0u8; 128];
        let mut off = self.ring(self.phys(pos)) + RECORD_HEADER_LEN;
        for chunk in key.chunks(buf.len()) {
            let b = &mut buf[..chunk.len()];
            w.read(off, b)?;
            if b != chunk {
                return Ok(false);
            }
            off += chunk.len() as u64;
        }
        Ok(true)
    }

    /// Copies the value of the record at `pos` into `dst` (of exactly `value_len` bytes).
    pub fn read_value(
        &self,
        w: &Window,
        pos: u64,
        hdr: &RecordHeader,
        dst: &mut [u8],
    ) -> Result<()> {
        let off = self.ring(self.phys(pos)) + RECORD_HEADER_LEN + hdr.key_len.get() as u64;
        w.read(off, dst)
    }

    /// Probes for `key` (hash `h`). With `sink`, the value of a hit is copied into it and its
    /// checksum verified. Without validation: readers must call [`Gen::still_valid`] after.
    pub fn lookup(&self, w: &Window, key: &[u8], h: u64, sink: &mut dyn Sink) -> Result<Probe> {
        let mask = self.slots() - 1;
        let mut i = self.home(h);
        let mut free = None;
        let mut oldest = u64::MAX;
        for _ in 0..self.slots() {
            let s = self.load_slot(w, i)?;
            if s == slot::EMPTY {
                return Ok(Probe::Miss {
                    free: free.or(Some(i)),
                    oldest,
                });
            }
            if s == slot::TOMBSTONE {
                free = free.or(Some(i));
            } else if !slot::is_valid(s) {
                return Ok(Probe::Suspect {
                    offset: self.slot_off(i),
                    what: "index slot holds an invalid value",
                    idx: i,
                    pos: None,
                });
            } else if slot::matches(s, h) {
                let pos = slot::pos(s);
                oldest = oldest.min(pos);
                let hdr = match self.header_at(w, pos)? {
                    Ok((hdr, _)) => hdr,
                    Err(what) => {
                        return Ok(Probe::Suspect {
                            offset: self.ring(self.phys(pos)),
                            what,
                            idx: i,
                            pos: Some(pos),
                        });
                    }
                };
                if hdr.key_len.get() as usize == key.len()
                    && hdr.flags.get() & FLAG_PAD == 0
                    && self.key_eq(w, pos, key)?
                {
                    {
                        let len = hdr.value_len.get() as usize;
                        let unchanged = sink.holds(self.number(), pos);
                        // A length read from a record a writer is overwriting may be anything
                        // up to the ring's size: allocate only once the header is known intact.
                        if !unchanged && sink.allocates() && !self.intact(w, pos)? {
                            return Ok(Probe::Suspect {
                                offset: self.ring(self.phys(pos)),
                                what: "record overwritten while read",
                                idx: i,
                                pos: Some(pos),
                            });
                        }
                        let space = if unchanged { None } else { sink.space(len) };
                        let copied = match space {
                            Some(dst) if dst.len() == len => {
                                self.read_value(w, pos, &hdr, dst)?;
                                if hdr.checksum(key, dst) != hdr.crc.get() {
                                    return Ok(Probe::Suspect {
                                        offset: self.ring(self.phys(pos)),
                                        what: "record checksum mismatch",
                                        idx: i,
                                        pos: Some(pos),
                                    });
                                }
                                true
                            }
                            _ => false,
                        };
                        return Ok(Probe::Hit(Hit {
                            idx: i,
                            slot: s,
                            hdr,
                            copied,
                            unchanged,
                            oldest,
                        }));
                    }
                }
            }
            i = (i + 1) & mask;
        }
        Ok(Probe::Miss { free, oldest })
    }

    /// Whether the record at `pos`, read just before, was intact: this generation is still
    /// active and the tail has not passed `pos`.
    pub fn intact(&self, w: &Window, pos: u64) -> Result<bool> {
        fence(Ordering::Acquire);
        Ok(self.is_active(w)? && self.tail(w)? <= pos)
    }

    /// After an optimistic read: true if nothing it read can have changed under it.
    pub fn still_valid(&self, w: &Window, probe: &Probe) -> Result<bool> {
        fence(Ordering::Acquire);
        if !self.is_active(w)? {
            return Ok(false);
        }
        // Every record the probe read must still be intact: the one found, and the ones whose
        // keys it compared on the way (a key mismatch read from overwritten bytes would turn a
        // present key into a false miss).
        let oldest = match probe {
            Probe::Hit(hit) => hit.oldest,
            Probe::Miss { oldest, .. } => *oldest,
            Probe::Suspect { pos: Some(p), .. } => *p,
            Probe::Suspect { pos: None, .. } => return Ok(true),
        };
        Ok(oldest == u64::MAX || self.tail(w)? <= oldest)
    }

    /// Bytes the ring has free, given head and tail.
    pub fn free(&self, head: u64, tail: u64) -> u64 {
        self.cap().saturating_sub(head.saturating_sub(tail))
    }

    /// Ring bytes an append of `size` bytes at `head` consumes, including the pad to the end
    /// of the ring when the record would cross it.
    pub fn footprint(&self, head: u64, size: u64) -> u64 {
        let room = self.cap() - self.phys(head);
        if room < size { room + size } else { size }
    }

    /// Appends a record at the head; the caller has made room. Returns its position. The record
    /// is not visible until a slot points at it.
    pub fn append(&self, w: &Window, hdr: &RecordHeader, key: &[u8], value: &[u8]) -> Result<u64> {
        let head = self.start_append(w, hdr.size())?;
        self.write_record(w, head, hdr, key, value)?;
        self.set_head(w, head + hdr.size())?;
        Ok(head)
    }

    /// Appends a chunk of `size` bytes (a multiple of 8, at least [`CHUNK_HEAD_LEN`]) for the
    /// lane word `owner`: its header, `fill` at its first record, `owner` and `dead`; the rest is
    /// not written (nothing reads past `fill`). Returns its position.
    pub fn append_chunk(&self, w: &Window, size: u64, owner: u64) -> Result<u64> {
        let head = self.start_append(w, size)?;
        self.write_chunk(w, head, size, CHUNK_HEAD_LEN, owner)?;
        self.set_head(w, head + size)?;
        Ok(head)
    }

    /// Writes a chunk header at `pos`: `size` bytes, `fill` as given.
    pub fn write_chunk(
        &self,
        w: &Window,
        pos: u64,
        size: u64,
        fill: u64,
        owner: u64,
    ) -> Result<()> {
        let hdr =
            RecordHeader::new(0, (size - RECORD_HEADER_LEN) as usize, FLAG_CHUNK, 0).seal(&[], &[]);
        fence(Ordering::Release);
        w.write(self.ring(self.phys(pos)), hdr.as_bytes())?;
        w.store_u64(self.fill_off(pos), fill, Ordering::Relaxed)?;
        w.store_u64(self.owner_off(pos), owner, Ordering::Relaxed)?;
        w.store_u64(self.dead_off(pos), 0, Ordering::Relaxed)
    }

    /// File offset of the `dead` word of the chunk at `pos`: record bytes in it its owner's
    /// fast writes replaced.
    pub fn dead_off(&self, pos: u64) -> u64 {
        self.fill_off(pos) + 16
    }

    /// File offset of the `fill` word of the chunk at `pos`.
    pub fn fill_off(&self, pos: u64) -> u64 {
        self.ring(self.phys(pos)) + RECORD_HEADER_LEN
    }

    /// File offset of the `owner` word of the chunk at `pos`.
    fn owner_off(&self, pos: u64) -> u64 {
        self.fill_off(pos) + 8
    }

    /// The `owner` word of the chunk at `pos`.
    pub fn chunk_owner(&self, w: &Window, pos: u64) -> Result<u64> {
        w.load_u64(self.owner_off(pos), Ordering::Acquire)
    }

    /// Writes a record's bytes at `pos` (inside a chunk, or at the head), with the zeros that
    /// pad it to a multiple of 8.
    pub fn write_record(
        &self,
        w: &Window,
        pos: u64,
        hdr: &RecordHeader,
        key: &[u8],
        value: &[u8],
    ) -> Result<()> {
        let size = hdr.size();
        // Bytes here may still be read by a reader that loaded an older slot; they will fail
        // validation because the tail (or the generation) moved before this point.
        fence(Ordering::Release);
        let at = self.ring(self.phys(pos));
        w.write(at, hdr.as_bytes())?;
        w.write(at + RECORD_HEADER_LEN, key)?;
        w.write(at + RECORD_HEADER_LEN + key.len() as u64, value)?;
        let used = RECORD_HEADER_LEN + key.len() as u64 + value.len() as u64;
        w.write(at + used, &[0u8; 8][..(size - used) as usize])
    }

    /// The head at which `size` bytes go, past a pad to the end of the ring if they would cross
    /// it (the pad and the head past it stored).
    fn start_append(&self, w: &Window, size: u64) -> Result<u64> {
        let mut head = self.head(w)?;
        let room = self.cap() - self.phys(head);
        if head.saturating_add(room).saturating_add(size) > format::MAX_POS {
            // Damage: leave the duty to recover, whose sanity check rebuilds the generation.
            w.store_u32(sctl!(self.shard, recovery), 1, Ordering::Release)?;
            return Err(Error::corrupt(
                self.desc.log_off + HEAD,
                format!("the ring's head {head} is beyond the largest position"),
            ));
        }
        if room < size {
            self.write_pad(w, head, room)?;
            head += room;
            self.set_head(w, head)?;
        }
        Ok(head)
    }

    fn write_pad(&self, w: &Window, pos: u64, room: u64) -> Result<()> {
        if room >= RECORD_HEADER_LEN {
            let hdr = RecordHeader::new(0, (room - RECORD_HEADER_LEN) as usize, FLAG_PAD, 0)
                .seal(&[], &[]);
            // The pad's checksum covers only its header: its body is not meaningful.
            fence(Ordering::Release);
            w.write(self.ring(self.phys(pos)), hdr.as_bytes())?;
        }
        Ok(())
    }

    /// Position just past the pad or implicit pad at `pos` (the start of the next lap).
    pub fn next_lap(&self, pos: u64) -> u64 {
        // Saturating: a damaged position near u64::MAX ends a walk instead of wrapping to 0.
        (pos - self.phys(pos)).saturating_add(self.cap())
    }
}

/// Reads shard `shard`'s descriptor slot `slot`.
pub(crate) fn read_desc(w: &Window, shard: usize, slot: u64) -> Result<Desc> {
    // Read as words (see `Window::load_words`): a descriptor is read by every write.
    Ok(zerocopy::transmute!(
        w.load_words::<8>(format::desc_off(shard, slot))?
    ))
}

/// Writes shard `shard`'s descriptor slot `slot` (with its checksum).
pub(crate) fn write_desc(w: &Window, shard: usize, slot: u64, mut desc: Desc) -> Result<()> {
    desc.crc = desc.compute_crc();
    w.write(format::desc_off(shard, slot), desc.as_bytes())
}

/// Initialises a log region's header.
pub(crate) fn init_log(w: &Window, desc: &Desc, head: u64) -> Result<()> {
    let hdr = LogHeader {
        head,
        tail: 0,
        log_cap: desc.log_cap,
        generation: desc.generation,
        reserved: [0; 4],
    };
    w.write(desc.log_off, hdr.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Options, Shmap};

    /// Counts allocations a probe asks for.
    struct Counting(usize);

    impl Sink for Counting {
        fn space(&mut self, _len: usize) -> Option<&mut [u8]> {
            self.0 += 1;
            None
        }
        fn allocates(&self) -> bool {
            true
        }
    }

    #[test]
    fn no_allocation_sized_by_a_record_the_tail_has_passed() {
        let dir = tempfile::tempdir().unwrap();
        let map = Shmap::open(dir.path().join("m").to_str().unwrap(), &Options::new()).unwrap();
        map.set(b"k", b"value").unwrap();
        let sh = map.shared().unwrap();
        let g = Gen::load(&sh.mem, 0).unwrap();
        let w = sh.mem.w();
        let h = format::hash(b"k", sh.seed);
        // As if a writer had moved the tail past the record and begun overwriting it: its
        // length may be anything, so nothing is allocated from it.
        g.set_tail(w, 8).unwrap();
        let mut sink = Counting(0);
        let p = g.lookup(w, b"k", h, &mut sink).unwrap();
        assert!(matches!(p, Probe::Suspect { .. }), "{p:?}");
        assert!(!g.still_valid(w, &p).unwrap());
        assert_eq!(sink.0, 0);
        g.set_tail(w, 0).unwrap();
        assert!(matches!(
            g.lookup(w, b"k", h, &mut sink).unwrap(),
            Probe::Hit(_)
        ));
        assert_eq!(sink.0, 1);
    }
}
