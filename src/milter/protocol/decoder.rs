//! Bytes in, whole packets out: the framing of [`super`]'s packets, with
//! the size limit described there.

use super::{Command, DecodeError, MAX_PACKET, Reply};

/// Bytes in, whole packets out; see the module documentation for the
/// limit. It never panics, whatever it is given.
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Where the next packet starts in `buf`.
    start: usize,
    limit: usize,
}

impl Default for Decoder {
    fn default() -> Decoder {
        Decoder::new(MAX_PACKET)
    }
}

impl Decoder {
    /// A decoder that refuses packets longer than `limit` bytes (command
    /// byte and data).
    pub fn new(limit: usize) -> Decoder {
        Decoder {
            buf: Vec::new(),
            start: 0,
            limit,
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Change the limit, for the packets not yet popped.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// Bytes received and not yet popped.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Add bytes as they come.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole packet's code and data, `None` until it is all
    /// there; the packet is consumed.
    fn packet(&mut self) -> Result<Option<(u8, &[u8])>, DecodeError> {
        let pending = &self.buf[self.start..];
        let Some(header) = pending.get(..4) else {
            return Ok(None);
        };
        let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let len = usize::try_from(length).unwrap_or(usize::MAX);
        if len == 0 {
            return Err(DecodeError::Empty);
        }
        if len > self.limit {
            return Err(DecodeError::Oversized {
                length,
                limit: self.limit,
            });
        }
        if pending.len() - 4 < len {
            return Ok(None);
        }
        let at = self.start;
        self.start += 4 + len;
        Ok(Some((self.buf[at + 4], &self.buf[at + 5..at + 4 + len])))
    }

    /// The next whole reply, `None` until it is all there.
    pub fn pop(&mut self) -> Result<Option<Reply>, DecodeError> {
        let at = self.start;
        let parsed = match self.packet()? {
            None => return Ok(None),
            Some((code, data)) => Reply::parse(code, data),
        };
        if parsed.is_err() {
            self.start = at;
        }
        parsed.map(Some)
    }

    /// The next whole command (a milter's side), `None` until it is all
    /// there.
    pub fn pop_command(&mut self) -> Result<Option<Command>, DecodeError> {
        let at = self.start;
        let parsed = match self.packet()? {
            None => return Ok(None),
            Some((code, data)) => Command::parse(code, data),
        };
        if parsed.is_err() {
            self.start = at;
        }
        parsed.map(Some)
    }
}
