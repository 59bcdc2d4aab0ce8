//! What header searches need of each message, kept in memory per mailbox so that SEARCH
//! FROM / TO / CC / BCC / SUBJECT and HEADER on those fields scan contiguous bytes instead
//! of reading and parsing every message's header.
//!
//! One [`FieldArena`] per [`SearchField`]: the values of that field of every message, one
//! after the other in one `Vec<u8>`, each value a tag byte (1 when the text is the raw,
//! plain field value, else 0) and the text, in the form SEARCH compares (see
//! `ringmail_mime::SearchValues`). Message `i` of the arenas is message `i`
//! of the mailbox's index, so a byte offset maps back to a message by two binary searches.
//!
//! The values are extracted on the appending session's task, from the analysis it does
//! anyway (`ringmail_mime::analyze_with_search_values`), or by the store before the record
//! is submitted; applying the record only copies them in. Replay extracts them from the
//! record's body. They are copied with the message by COPY, removed
//! with it by EXPUNGE, and saved with the checkpoint (docs/storage-format.md). A mailbox
//! whose arenas would pass 4 GiB, or that could not be filled, has none: SEARCH then reads
//! the messages as it did before.

use std::ops::Range;

use ringmail_mime::search_header::{SearchField, SEARCH_FIELDS};
use ringmail_mime::SearchValues;
use rkyv::{Archive, Deserialize, Serialize};

/// The values of one field of every message of a mailbox.
#[derive(Debug, Clone, Default, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct FieldArena {
    /// Tag byte and text of every value, in message order.
    bytes: Vec<u8>,
    /// End offset in `bytes` of each value.
    value_ends: Vec<u32>,
    /// For each message, the number of values of it and all messages before it.
    message_ends: Vec<u32>,
}

/// One value of a message: what SEARCH compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldValue<'a> {
    /// `text` is the raw field value, searchable as it is.
    pub plain: bool,
    /// The text.
    pub text: &'a [u8],
}

impl FieldArena {
    /// All values, tag bytes included, one after another: the scanner's haystack.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// How many messages it holds.
    pub fn len(&self) -> usize {
        self.message_ends.len()
    }

    /// Whether it holds no message.
    pub fn is_empty(&self) -> bool {
        self.message_ends.is_empty()
    }

    fn values_of(&self, pos: usize) -> Range<usize> {
        let start = pos
            .checked_sub(1)
            .and_then(|p| self.message_ends.get(p))
            .map_or(0, |&e| e as usize);
        let end = self.message_ends.get(pos).map_or(start, |&e| e as usize);
        start..end
    }

    fn value_start(&self, value: usize) -> usize {
        value
            .checked_sub(1)
            .and_then(|v| self.value_ends.get(v))
            .map_or(0, |&e| e as usize)
    }

    /// The bytes of messages `positions`, as a range of [`FieldArena::bytes`].
    pub fn byte_range(&self, positions: Range<usize>) -> Range<usize> {
        let start = self.value_start(self.values_of(positions.start).start);
        let end = match positions.end.checked_sub(1) {
            Some(last) if positions.start <= last => self.value_start(self.values_of(last).end),
            _ => start,
        };
        start..end
    }

    /// The message whose bytes hold offset `at` (an offset inside [`FieldArena::bytes`]).
    pub fn message_at(&self, at: usize) -> usize {
        let value = self.value_ends.partition_point(|&e| e as usize <= at);
        self.message_ends.partition_point(|&e| e as usize <= value)
    }

    /// The values of message `pos`, in header order.
    pub fn values(&self, pos: usize) -> impl Iterator<Item = FieldValue<'_>> {
        self.values_of(pos).map(|v| {
            let bytes = self
                .bytes
                .get(self.value_start(v)..self.value_ends[v] as usize)
                .unwrap_or_default();
            FieldValue {
                plain: bytes.first() == Some(&1),
                text: bytes.get(1..).unwrap_or_default(),
            }
        })
    }

    /// The first value of each of messages `positions`, in order (`None` for a message
    /// without one): one walk along the arena for a scan over many messages (the SENT*
    /// keys over [`SearchField::SentDay`]), where [`FieldArena::values`] per message looks
    /// its bounds up afresh each time.
    pub fn first_values(
        &self,
        positions: Range<usize>,
    ) -> impl Iterator<Item = Option<&[u8]>> + '_ {
        // The first value of message `pos` is the one after all values of those before it.
        let mut next = self.values_of(positions.start).start;
        let mut start = self.value_start(next);
        let ends = self.message_ends.get(positions).unwrap_or_default();
        ends.iter().map(move |&message_end| {
            let (first, message_end) = (next, message_end as usize);
            next = message_end;
            if first >= message_end {
                return None;
            }
            // Values of this message after its first are skipped to the next one's.
            let end = self.value_ends.get(first).map_or(start, |&e| e as usize);
            let value = self.bytes.get(start..end).unwrap_or_default();
            start = if message_end == first + 1 {
                end
            } else {
                self.value_start(message_end)
            };
            Some(value.get(1..).unwrap_or_default())
        })
    }

    /// Whether message `pos` has the field at all.
    pub fn has_values(&self, pos: usize) -> bool {
        !self.values_of(pos).is_empty()
    }

    fn push_value(&mut self, plain: bool, text: &[u8]) -> Result<(), TooLarge> {
        let end = self
            .bytes
            .len()
            .checked_add(1 + text.len())
            .and_then(|e| u32::try_from(e).ok())
            .ok_or(TooLarge)?;
        self.bytes.push(u8::from(plain));
        self.bytes.extend_from_slice(text);
        self.value_ends.push(end);
        Ok(())
    }

    fn end_message(&mut self) {
        self.message_ends.push(self.value_ends.len() as u32);
    }
}

/// The arenas of one mailbox would pass what 32-bit offsets address.
#[derive(Debug, Clone, Copy)]
struct TooLarge;

/// The header-search values of a mailbox's messages, aligned with its index entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct SearchFields {
    /// One arena per [`SearchField`], or none when the mailbox has no usable arenas.
    arenas: Vec<FieldArena>,
    /// The arenas hold every message of the mailbox.
    complete: bool,
}

impl SearchFields {
    /// Arenas for an empty mailbox.
    pub fn new() -> SearchFields {
        SearchFields {
            arenas: vec![FieldArena::default(); SEARCH_FIELDS],
            complete: true,
        }
    }

    /// No arenas: SEARCH reads the messages.
    pub(crate) fn unavailable() -> SearchFields {
        SearchFields::default()
    }

    /// What a ringmail that kept only the first `n` fields saved (for the tests of older
    /// checkpoints).
    #[cfg(test)]
    pub(crate) fn keep_first_fields(&mut self, n: usize) {
        self.arenas.truncate(n);
    }

    /// Whether it holds every message of the mailbox, so SEARCH may use it. Values saved
    /// by a ringmail that kept fewer fields (a checkpoint without [`SearchField::SentDay`])
    /// are not: recovery rebuilds them from the messages.
    pub fn is_complete(&self) -> bool {
        self.complete && self.arenas.len() == SEARCH_FIELDS
    }

    /// The arena of `field`.
    pub fn arena(&self, field: SearchField) -> Option<&FieldArena> {
        self.arenas.get(field.index()).filter(|_| self.complete)
    }

    /// How many messages it holds.
    pub fn len(&self) -> usize {
        self.arenas.first().map_or(0, FieldArena::len)
    }

    /// Whether it holds no message.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held (capacity, not length), for the docs' cost figures and tests.
    pub fn heap_bytes(&self) -> usize {
        self.arenas
            .iter()
            .map(|a| a.bytes.capacity() + 4 * (a.value_ends.capacity() + a.message_ends.capacity()))
            .sum()
    }

    /// Appends a message from its raw bytes (the header block is all that is read; a
    /// prefix holding it will do).
    pub fn push_message(&mut self, raw: &[u8]) {
        if self.complete {
            self.push_values(&SearchValues::of_message(raw));
        }
    }

    /// Appends a message from its values, extracted beforehand.
    pub fn push_values(&mut self, values: &SearchValues) {
        if !self.complete {
            return;
        }
        let mut result = Ok(());
        for (field, plain, text) in values.iter() {
            result = result.and_then(|()| self.arenas[field.index()].push_value(plain, text));
        }
        self.end_message(result);
    }

    /// Appends copies of messages `positions` of `src`.
    pub(crate) fn push_copies(
        &mut self,
        src: &SearchFields,
        positions: impl IntoIterator<Item = usize>,
    ) {
        if !self.complete {
            return;
        }
        if !src.complete {
            *self = SearchFields::unavailable();
            return;
        }
        for pos in positions {
            let mut result = Ok(());
            for (to, from) in self.arenas.iter_mut().zip(&src.arenas) {
                for v in from.values(pos) {
                    result = result.and_then(|()| to.push_value(v.plain, v.text));
                }
            }
            self.end_message(result);
        }
    }

    fn end_message(&mut self, result: Result<(), TooLarge>) {
        match result {
            Ok(()) => self.arenas.iter_mut().for_each(FieldArena::end_message),
            Err(TooLarge) => *self = SearchFields::unavailable(),
        }
    }

    /// Removes messages `positions` (ascending), keeping the others in order.
    pub(crate) fn remove(&mut self, positions: &[usize]) {
        if self.complete {
            self.arenas.iter_mut().for_each(|a| a.remove(positions));
        }
    }
}

impl FieldArena {
    /// Removes messages `positions` (ascending, distinct) in place: what follows the first
    /// of them moves down, so expunging recent messages (the usual case) moves little.
    fn remove(&mut self, positions: &[usize]) {
        let Some(&first) = positions.first().filter(|&&p| p < self.len()) else {
            return;
        };
        // Old indexes are read ahead of the writes, which trail them (`first` is removed).
        let mut old_value = self.values_of(first).start;
        let mut old_byte = self.value_start(old_value);
        let (mut new_value, mut new_byte, mut new_message) = (old_value, old_byte, first);
        let mut gone = positions.iter().peekable();
        for pos in first..self.len() {
            let values_end = self.message_ends[pos] as usize;
            let removed = gone.next_if_eq(&&pos).is_some();
            for v in old_value..values_end {
                let end = self.value_ends[v] as usize;
                if !removed {
                    self.bytes.copy_within(old_byte..end, new_byte);
                    new_byte += end - old_byte;
                    // Never past the old offset, so within 32 bits.
                    self.value_ends[new_value] = new_byte as u32;
                    new_value += 1;
                }
                old_byte = end;
            }
            old_value = values_end;
            if !removed {
                self.message_ends[new_message] = new_value as u32;
                new_message += 1;
            }
        }
        self.bytes.truncate(new_byte);
        self.value_ends.truncate(new_value);
        self.message_ends.truncate(new_message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(i: usize) -> Vec<u8> {
        let header = match i % 4 {
            0 => format!("From: a{i}@x.test\r\nTo: b@x.test\r\nTo: c{i}@x.test\r\n"),
            1 => format!("Subject: =?utf-8?q?caf=C3=A9?= {i}\r\n"),
            2 => String::new(),
            _ => format!("Cc: team: z{i}@y.test;\r\nBcc: q@x.test\r\n"),
        };
        format!("{header}\r\nbody\r\n").into_bytes()
    }

    #[test]
    fn removing_equals_rebuilding_from_what_is_kept() {
        let n = 10;
        // Every subset of 10 messages.
        for mask in 0u32..(1 << n) {
            let mut fields = SearchFields::new();
            let mut kept = SearchFields::new();
            let mut gone = Vec::new();
            for i in 0..n {
                fields.push_message(&message(i));
                if mask & (1 << i) == 0 {
                    kept.push_message(&message(i));
                } else {
                    gone.push(i);
                }
            }
            fields.remove(&gone);
            assert_eq!(fields, kept, "mask {mask:b}");
        }
    }
}
