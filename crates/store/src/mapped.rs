//! Messages and their stored searchable texts read where they lie: read-only maps of the
//! segment files, so that SEARCH scans a record in the page cache instead of copying it
//! into a buffer first.
//!
//! A BODY search over a mailbox that is in the page cache is otherwise mostly copying and
//! system calls: three `preadv2` per message (the text's section header, the text, the
//! message), which copy every byte once before the scanner reads it once. Through a map
//! the scanner reads the page cache itself, and a message costs an index lookup and the scan.
//!
//! The executor must never wait for the disk, and touching a mapped page that is not in the
//! page cache would make it wait (a major fault). So a record is handed out only once
//! `mincore` has found all of its pages resident; a search remembers the last window found
//! resident, so that its run of neighbouring records pays for one check, not one each. A
//! record that is not resident is left to the caller, which reads it the asynchronous way
//! (`Partition::read_search_text_into`). A page evicted between the check and the scan
//! makes that one scan wait for the disk as a read would have; the check keeps that rare.
//!
//! Maps are made on first use, one per segment, kept while the segment is in use (the
//! mapping costs address space and page tables, not memory: its pages are the page cache's),
//! and dropped when compaction retires the segment.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::rc::Rc;

use memmap2::{Mmap, MmapOptions};

use super::index::MessageEntry;
use super::record::{search_text_len, SEARCH_TEXT_HEADER};
use super::writer::Inner;

/// Bytes around a record whose residency one `mincore` establishes: records of a mailbox
/// mostly follow each other in a segment, so one check serves hundreds of small ones.
const RESIDENT_WINDOW: usize = 1 << 20;

/// How much of a message [`RecordReader::prefetch`] asks for: the header and the start of
/// the body of most messages (the hardware prefetcher follows a scan from there).
const PREFETCH_MESSAGE: usize = 1024;

/// The maps of a partition's segments, by segment id.
#[derive(Default)]
pub(crate) struct SegmentMaps {
    maps: RefCell<HashMap<u32, Rc<Mapped>>>,
}

/// A segment's map.
struct Mapped {
    map: Mmap,
    /// Made while the segment was sealed: it covers all of the segment.
    whole: bool,
}

impl SegmentMaps {
    /// Drops the map of a segment that is no longer read (compaction replaced it). A search
    /// still holding it keeps it until it finishes.
    pub fn forget(&self, segment: u32) {
        self.maps.borrow_mut().remove(&segment);
    }

    #[cfg(test)]
    pub fn contains(&self, segment: u32) -> bool {
        self.maps.borrow().contains_key(&segment)
    }
}

/// A message and its stored searchable text, in place.
pub struct InPlace<'a> {
    /// The message.
    pub message: &'a [u8],
    /// The searchable text stored with it, or `None` when it has none (see
    /// `Partition::read_search_text_into`).
    pub text: Option<&'a [u8]>,
}

/// Reads records in place for one search pass (see the module documentation). Holds the map
/// it used last; create one per pass, not one per partition.
pub struct RecordReader<'p> {
    inner: &'p Inner,
    /// The segment read last and its map.
    current: Option<(u32, Rc<Mapped>)>,
    /// Bytes of `current` that this pass found resident.
    resident: Range<usize>,
    /// `mincore`'s answer, reused.
    pages: Vec<u8>,
    page_size: usize,
}

impl<'p> RecordReader<'p> {
    pub(crate) fn new(inner: &'p Inner) -> RecordReader<'p> {
        // SAFETY: sysconf has no preconditions.
        let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        RecordReader {
            inner,
            current: None,
            resident: 0..0,
            pages: Vec::new(),
            page_size: usize::try_from(page_size).unwrap_or(4096).max(1),
        }
    }

    /// The message of `entry` and its stored text, or `None` when they cannot be read in
    /// place right now: not in the page cache, its segment could not be mapped, or the
    /// record is not whole there (the caller's read then reports that).
    pub fn read(&mut self, entry: &MessageEntry) -> Option<InPlace<'_>> {
        let start = entry.offset as usize;
        let message_end = start.checked_add(entry.size as usize)?;
        let meta_end = message_end.checked_add(entry.meta_len as usize)?;
        // How far the segment may be read: all of a sealed one; the active one up to its
        // durable end, as what follows may be cut off by a failed write's clean-up (a
        // record's text is inside its frame, so it is durable with the message).
        let durable_end = {
            let log = self.inner.log.borrow();
            (log.active_id == entry.segment).then_some(log.end as usize)
        };
        let text_header_end = meta_end + SEARCH_TEXT_HEADER;
        let need = durable_end.map_or(meta_end, |end| text_header_end.min(end));
        let map = self.map(entry.segment, need, durable_end.is_none())?;
        let limit = durable_end.map_or(map.map.len(), |end| end.min(map.map.len()));
        if meta_end > limit {
            return None;
        }
        // The text section follows the metadata, when there is one (else the next frame or
        // the segment's end: `Partition::read_search_text_into` tells them apart the same way).
        let header = meta_end..text_header_end.min(limit);
        if !self.is_resident(&map, start..header.end) {
            return None;
        }
        let text = match <&[u8; SEARCH_TEXT_HEADER]>::try_from(&map.map[header.clone()]) {
            Ok(h) => search_text_len(h).map(|len| header.end..header.end + len),
            Err(_) => None, // the segment ends before a text section could: no text
        };
        if let Some(text) = &text {
            let map = match durable_end {
                Some(end) if text.end <= end => self.map(entry.segment, text.end, false)?,
                _ => map,
            };
            if text.end > map.map.len() || !self.is_resident(&map, text.clone()) {
                return None;
            }
        }
        let (_, map) = self.current.as_ref()?;
        Some(InPlace {
            message: &map.map[start..message_end],
            text: text.map(|r| &map.map[r]),
        })
    }

    /// Starts loading the first bytes of `entry`'s message and its text into the CPU's
    /// cache, when they lie in the map read last: a caller that names the next message this
    /// way while it decides the current one finds the next one there instead of waiting for
    /// memory (a search over a mailbox in the page cache otherwise stalls on the first bytes
    /// of every record).
    pub fn prefetch(&self, entry: &MessageEntry) {
        let Some((segment, map)) = &self.current else {
            return;
        };
        let start = entry.offset as usize;
        let message_end = start + entry.size as usize;
        let meta_end = message_end + entry.meta_len as usize;
        if *segment != entry.segment || meta_end + SEARCH_TEXT_HEADER > map.map.len() {
            return;
        }
        let base = map.map.as_ptr();
        prefetch(base.wrapping_add(meta_end));
        for at in (start..message_end.min(start + PREFETCH_MESSAGE)).step_by(64) {
            prefetch(base.wrapping_add(at));
        }
    }

    /// The map of `segment`, covering at least its first `need` bytes, and all of it when
    /// it is `sealed` (a map made while the segment was the active one stops where the
    /// segment ended then: it is made again when it no longer reaches a record).
    fn map(&mut self, segment: u32, need: usize, sealed: bool) -> Option<Rc<Mapped>> {
        let fits = |m: &Mapped| m.map.len() >= need && (m.whole || !sealed);
        if let Some((id, map)) = &self.current {
            if *id == segment && fits(map) {
                return Some(map.clone());
            }
        }
        let cached = self.inner.maps.maps.borrow().get(&segment).cloned();
        let map = match cached {
            Some(map) if fits(&map) => map,
            _ => {
                let file = self.inner.files.borrow().get(&segment).cloned()?;
                // SAFETY: the map is only ever read, and only where records the index refers
                // to lie (`read`), and those bytes never change or go away while the
                // partition is open: segments are append-only; a sealed segment is never
                // written again; the active one is only appended to, and its one truncation
                // (the clean-up after a failed write) cuts at the durable end, after every
                // indexed record. Recovery's and `ringmail check`'s repairs run before the
                // partition opens. Compaction writes new segments and removes old ones with
                // unlink, and an unlinked file stays whole for as long as a map of it exists.
                // The map never reaches past the file's length at the time it is made.
                let map = unsafe { MmapOptions::new().map(file.as_raw_fd()) }.ok()?;
                let map = Rc::new(Mapped { map, whole: sealed });
                self.inner
                    .maps
                    .maps
                    .borrow_mut()
                    .insert(segment, map.clone());
                map
            }
        };
        self.current = Some((segment, map.clone()));
        self.resident = 0..0;
        Some(map)
    }

    /// Whether every page of `range` of `map` (the current one) is in the page cache.
    fn is_resident(&mut self, map: &Mapped, range: Range<usize>) -> bool {
        if self.resident.start <= range.start && range.end <= self.resident.end {
            return true;
        }
        let window = (range.start & !(RESIDENT_WINDOW - 1))
            ..range
                .end
                .next_multiple_of(RESIDENT_WINDOW)
                .min(map.map.len());
        if self.all_resident(&map.map, window.clone()) {
            self.resident = window;
            return true;
        }
        self.all_resident(&map.map, range)
    }

    fn all_resident(&mut self, map: &Mmap, range: Range<usize>) -> bool {
        if range.is_empty() {
            return true;
        }
        let start = range.start - range.start % self.page_size;
        let len = range.end - start;
        self.pages.clear();
        self.pages.resize(len.div_ceil(self.page_size), 0);
        // SAFETY: `start` is a multiple of the page size from the map's start, which is
        // page-aligned, and `start + len` is within the map, so the address range is mapped;
        // `pages` has one byte for each page of it. mincore only writes `pages`.
        let rc = unsafe {
            libc::mincore(
                map.as_ptr().add(start) as *mut libc::c_void,
                len,
                self.pages.as_mut_ptr(),
            )
        };
        rc == 0 && self.pages.iter().all(|p| p & 1 == 1)
    }
}

/// A hint to the CPU to load the cache line at `p`.
#[inline]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch only warms the cache: it reads nothing into the program and never
    // faults, whatever the address (an unmapped or absent page just drops it).
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
