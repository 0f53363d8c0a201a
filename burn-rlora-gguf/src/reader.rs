//! Bounded little-endian reads: every length is checked against the bytes
//! left in the input before anything is allocated for it.

use std::io::{ErrorKind, Read};

use crate::error::GgufErrorKind as Kind;

/// A reader that knows the input's total length and its own position.
pub(crate) struct Bounded<R> {
    inner: R,
    pos: u64,
    len: u64,
}

impl<R: Read> Bounded<R> {
    /// `inner` positioned at the start of an input of `len` bytes.
    pub(crate) fn new(inner: R, len: u64) -> Self {
        Self { inner, pos: 0, len }
    }

    pub(crate) fn into_inner(self) -> R {
        self.inner
    }

    pub(crate) fn pos(&self) -> u64 {
        self.pos
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    /// Fails with [`Kind::Truncated`] unless `n` bytes remain.
    pub(crate) fn need(&self, n: u64, what: &dyn Fn() -> String) -> Result<(), Kind> {
        if n > self.remaining() {
            return Err(Kind::truncated(what(), self.pos, n, self.len));
        }
        Ok(())
    }

    /// Fails with [`Kind::CountTooLarge`] unless `count` items of at least
    /// `each` bytes can fit in what remains.
    pub(crate) fn fits(
        &self,
        count: u64,
        each: u64,
        what: &dyn Fn() -> String,
    ) -> Result<(), Kind> {
        if count.saturating_mul(each) > self.remaining() {
            return Err(Kind::CountTooLarge {
                what: what(),
                count,
                min_bytes_each: each,
                available: self.remaining(),
            });
        }
        Ok(())
    }

    /// Fills `buf`, which must fit in what remains (checked first).
    pub(crate) fn fill(&mut self, buf: &mut [u8], what: &dyn Fn() -> String) -> Result<(), Kind> {
        let n = buf.len() as u64;
        self.need(n, what)?;
        match self.inner.read_exact(buf) {
            Ok(()) => {
                self.pos += n;
                Ok(())
            }
            // The input is shorter than its declared length (a file that
            // shrank after it was opened).
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                Err(Kind::truncated(what(), self.pos, n, self.pos))
            }
            Err(e) => Err(Kind::Io(e)),
        }
    }

    /// `N` bytes.
    pub(crate) fn array<const N: usize>(
        &mut self,
        what: &dyn Fn() -> String,
    ) -> Result<[u8; N], Kind> {
        let mut buf = [0u8; N];
        self.fill(&mut buf, what)?;
        Ok(buf)
    }

    pub(crate) fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, Kind> {
        self.array(what).map(u32::from_le_bytes)
    }

    pub(crate) fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, Kind> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// `n` bytes (checked against what remains before allocating).
    pub(crate) fn bytes(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<Vec<u8>, Kind> {
        self.need(n, what)?;
        // `n` fits in the input, and so in memory for an in-memory input;
        // for a file it is at most the file's size.
        let mut buf = vec![0u8; usize::try_from(n).map_err(|_| too_large(self, n, what))?];
        self.fill(&mut buf, what)?;
        Ok(buf)
    }

    /// A GGUF string: a `u64` byte length, then that many bytes of UTF-8.
    pub(crate) fn string(&mut self, what: &dyn Fn() -> String) -> Result<String, Kind> {
        let len = self.u64(&|| format!("length of {}", what()))?;
        let bytes = self.bytes(len, what)?;
        String::from_utf8(bytes).map_err(|_| Kind::InvalidUtf8 { what: what() })
    }
}

fn too_large<R>(r: &Bounded<R>, n: u64, what: &dyn Fn() -> String) -> Kind {
    Kind::truncated(what(), r.pos, n, r.len)
}
