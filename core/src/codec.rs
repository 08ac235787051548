//! A small strict binary codec for the core's own wire and log encodings.
//!
//! Big-endian integers, `u32`-length-prefixed byte strings and sequences. The reader refuses
//! lengths beyond what remains (so a hostile length cannot make it allocate), counts beyond a
//! caller-given bound, and trailing bytes ([`Reader::finish`]): one value, one encoding.

use core::fmt;

/// Why bytes did not decode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Ran out of bytes while reading `what`.
    Truncated(&'static str),
    /// `what` declared more entries than allowed.
    TooMany {
        /// Which field.
        what: &'static str,
        /// The declared count.
        count: usize,
        /// The bound.
        max: usize,
    },
    /// An enum tag or flag with no meaning.
    BadTag {
        /// Which field.
        what: &'static str,
        /// The tag read.
        tag: u8,
    },
    /// A value out of its domain (zero identifier, invalid key id, ...).
    Invalid(&'static str),
    /// Bytes after the value.
    TrailingBytes(usize),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated(w) => write!(f, "truncated while reading {w}"),
            DecodeError::TooMany { what, count, max } => {
                write!(f, "{what}: {count} entries exceeds the limit {max}")
            }
            DecodeError::BadTag { what, tag } => write!(f, "{what}: unknown tag {tag}"),
            DecodeError::Invalid(w) => write!(f, "invalid {w}"),
            DecodeError::TrailingBytes(n) => write!(f, "{n} trailing bytes"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Appends encoded values to a buffer.
#[derive(Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Writer::default()
    }
    /// One byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    /// A bool as one byte, 0 or 1.
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(u8::from(v))
    }
    /// Big-endian u16.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// Big-endian u32.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// Big-endian u64.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// Big-endian i64.
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// A length-prefixed byte string.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.u32(v.len() as u32);
        self.buf.extend_from_slice(v);
        self
    }
    /// A length-prefixed UTF-8 string.
    pub fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }
    /// A count prefix for a sequence.
    pub fn count(&mut self, n: usize) -> &mut Self {
        self.u32(n as u32)
    }
    /// The encoded bytes.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads encoded values from untrusted bytes.
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if n > self.rest.len() {
            return Err(DecodeError::Truncated(what));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    /// One byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }
    /// A bool; only 0 and 1 are accepted.
    pub fn bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(DecodeError::BadTag { what, tag }),
        }
    }
    /// Big-endian u16.
    pub fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }
    /// Big-endian u32.
    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }
    /// Big-endian u64.
    pub fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }
    /// Big-endian i64.
    pub fn i64(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }
    /// A length-prefixed byte string of at most `max` bytes.
    pub fn bytes(&mut self, what: &'static str, max: usize) -> Result<Vec<u8>, DecodeError> {
        let n = self.u32(what)? as usize;
        if n > max {
            return Err(DecodeError::TooMany {
                what,
                count: n,
                max,
            });
        }
        Ok(self.take(n, what)?.to_vec())
    }
    /// A length-prefixed UTF-8 string of at most `max` bytes.
    pub fn str(&mut self, what: &'static str, max: usize) -> Result<String, DecodeError> {
        String::from_utf8(self.bytes(what, max)?).map_err(|_| DecodeError::Invalid(what))
    }
    /// A sequence count of at most `max`, also bounded by the bytes left (each entry takes at
    /// least `min_entry_bytes`), so a hostile count cannot make the caller pre-allocate.
    pub fn count(
        &mut self,
        what: &'static str,
        max: usize,
        min_entry_bytes: usize,
    ) -> Result<usize, DecodeError> {
        let n = self.u32(what)? as usize;
        if n > max {
            return Err(DecodeError::TooMany {
                what,
                count: n,
                max,
            });
        }
        if n.saturating_mul(min_entry_bytes.max(1)) > self.rest.len() && n > 0 {
            return Err(DecodeError::Truncated(what));
        }
        Ok(n)
    }
    /// Succeeds only if every byte was consumed.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes(self.rest.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strictness() {
        let mut w = Writer::new();
        w.u8(7)
            .bool(true)
            .u16(9)
            .u32(10)
            .u64(11)
            .i64(-3)
            .bytes(b"abc")
            .str("hé")
            .count(2)
            .u8(1)
            .u8(2);
        let bytes = w.finish();
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u8("a").unwrap(), 7);
        assert!(r.bool("b").unwrap());
        assert_eq!(r.u16("c").unwrap(), 9);
        assert_eq!(r.u32("d").unwrap(), 10);
        assert_eq!(r.u64("e").unwrap(), 11);
        assert_eq!(r.i64("f").unwrap(), -3);
        assert_eq!(r.bytes("g", 10).unwrap(), b"abc");
        assert_eq!(r.str("h", 10).unwrap(), "hé");
        assert_eq!(r.count("i", 5, 1), Ok(2));
        assert_eq!((r.u8("j").unwrap(), r.u8("k").unwrap()), (1, 2));
        r.finish().unwrap();

        assert_eq!(
            Reader::new(&[0, 0, 0, 9, 1]).bytes("x", 100),
            Err(DecodeError::Truncated("x"))
        );
        assert!(matches!(
            Reader::new(&[0xff, 0xff, 0xff, 0xff]).bytes("x", 100),
            Err(DecodeError::TooMany { .. })
        ));
        assert!(matches!(
            Reader::new(&[2]).bool("x"),
            Err(DecodeError::BadTag { .. })
        ));
        let mut r = Reader::new(&[1, 2]);
        r.u8("x").unwrap();
        assert_eq!(r.finish(), Err(DecodeError::TrailingBytes(1)));
        assert_eq!(
            Reader::new(&[0, 0, 0, 200]).count("n", 1000, 8),
            Err(DecodeError::Truncated("n"))
        );
    }
}
