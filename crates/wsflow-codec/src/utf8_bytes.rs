//! [`Utf8Bytes`]: reference-counted bytes known to be valid UTF-8.
//!
//! Text messages arrive as slices of the connection's read buffer. Handing them to the
//! application as `String` would copy every payload; handing them out as `Bytes` would make
//! every reader validate again. `Utf8Bytes` keeps the zero-copy `Bytes` and remembers that the
//! content was validated, so it derefs to `&str` for free.
//!
//! Its `unsafe` code (the crate's other is in `mask::wide` and `utf8::wide`, the vector
//! paths) is two calls that skip a validation the type's invariant already guarantees, and one
//! that takes bytes the module has just validated itself.
#![allow(unsafe_code)]

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use bytes::{Bytes, BytesMut};

/// Cheaply cloneable bytes that are always valid UTF-8.
///
/// ```
/// use wsflow_codec::Utf8Bytes;
///
/// let text = Utf8Bytes::from("héllo");
/// assert_eq!(text.len(), 6);
/// assert_eq!(&text[..1], "h");
/// let bytes: bytes::Bytes = text.clone().into_bytes();
/// assert_eq!(Utf8Bytes::try_from(bytes).unwrap(), text);
/// assert!(Utf8Bytes::try_from(bytes::Bytes::from_static(b"\xff")).is_err());
/// ```
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Utf8Bytes(Bytes);

/// The error of converting bytes that are not UTF-8 into [`Utf8Bytes`]; it gives the bytes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotUtf8(pub Bytes);

impl fmt::Display for NotUtf8 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bytes are not valid UTF-8")
    }
}

impl std::error::Error for NotUtf8 {}

impl Utf8Bytes {
    /// An empty string.
    pub const fn new() -> Self {
        Self(Bytes::new())
    }

    /// Wraps a static string without copying it.
    pub const fn from_static(text: &'static str) -> Self {
        Self(Bytes::from_static(text.as_bytes()))
    }

    /// Wraps bytes the caller has already validated as UTF-8.
    ///
    /// # Safety
    ///
    /// `bytes` must be valid UTF-8: [`Utf8Bytes::as_str`] hands them out as `&str` without
    /// checking.
    pub unsafe fn from_bytes_unchecked(bytes: Bytes) -> Self {
        debug_assert!(crate::utf8::is_valid(&bytes));
        Self(bytes)
    }

    /// Unmasks `payload` (from key index 0 of `key`) and takes it as text if it is valid
    /// UTF-8, in one pass where the CPU allows (see [`Utf8Validator::unmask_and_feed`]). The
    /// payload is unmasked either way.
    ///
    /// [`Utf8Validator::unmask_and_feed`]: crate::Utf8Validator::unmask_and_feed
    pub(crate) fn unmask_from(mut payload: BytesMut, key: [u8; 4]) -> Result<Self, NotUtf8> {
        let mut validator = crate::Utf8Validator::new();
        let checked = validator
            .unmask_and_feed(&mut payload, key, 0)
            .and_then(|()| validator.finish());
        let payload = payload.freeze();
        if checked.is_err() {
            return Err(NotUtf8(payload));
        }
        // SAFETY: the validator has just accepted every byte of `payload`, in order, and
        // `finish` that it ends on a code point boundary: it is valid UTF-8. Nothing wrote
        // to it since (`freeze` keeps the bytes).
        Ok(unsafe { Self::from_bytes_unchecked(payload) })
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor either validates the bytes (`try_from`, the `From` impls
        // for `str`/`String`, which are UTF-8 by type) or is `from_bytes_unchecked`, whose
        // caller promises validity. The bytes are immutable afterwards.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    /// The underlying bytes, without a copy.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// A sub-slice of the text; `range` must fall on character boundaries.
    ///
    /// Returns `None` if it does not.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Option<Self> {
        self.as_str().get(range.clone())?;
        // SAFETY: `str::get` returned `Some`, so the range lies on character boundaries of a
        // valid UTF-8 string, and the sub-slice is valid UTF-8 too.
        Some(unsafe { Self::from_bytes_unchecked(self.0.slice(range)) })
    }
}

impl Deref for Utf8Bytes {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Utf8Bytes {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<[u8]> for Utf8Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Borrow<str> for Utf8Bytes {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl TryFrom<Bytes> for Utf8Bytes {
    type Error = NotUtf8;
    fn try_from(bytes: Bytes) -> Result<Self, NotUtf8> {
        if crate::utf8::is_valid(&bytes) {
            Ok(Self(bytes))
        } else {
            Err(NotUtf8(bytes))
        }
    }
}

impl TryFrom<Vec<u8>> for Utf8Bytes {
    type Error = NotUtf8;
    fn try_from(bytes: Vec<u8>) -> Result<Self, NotUtf8> {
        Self::try_from(Bytes::from(bytes))
    }
}

impl From<String> for Utf8Bytes {
    fn from(text: String) -> Self {
        Self(Bytes::from(text))
    }
}

impl From<&str> for Utf8Bytes {
    fn from(text: &str) -> Self {
        Self(Bytes::copy_from_slice(text.as_bytes()))
    }
}

impl From<&String> for Utf8Bytes {
    fn from(text: &String) -> Self {
        Self::from(text.as_str())
    }
}

impl From<Utf8Bytes> for Bytes {
    fn from(text: Utf8Bytes) -> Self {
        text.0
    }
}

impl From<Utf8Bytes> for String {
    fn from(text: Utf8Bytes) -> Self {
        text.as_str().to_owned()
    }
}

impl PartialEq<str> for Utf8Bytes {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Utf8Bytes {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Utf8Bytes {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<Utf8Bytes> for str {
    fn eq(&self, other: &Utf8Bytes) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<Utf8Bytes> for &str {
    fn eq(&self, other: &Utf8Bytes) -> bool {
        *self == other.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_respects_char_boundaries() {
        let text = Utf8Bytes::from("aé");
        assert_eq!(text.slice(0..1).unwrap(), "a");
        assert!(text.slice(0..2).is_none());
        assert_eq!(text.slice(1..3).unwrap(), "é");
    }

    #[test]
    fn invalid_bytes_are_refused_and_returned() {
        let bad = Bytes::from_static(b"ok\xc3");
        assert_eq!(Utf8Bytes::try_from(bad.clone()), Err(NotUtf8(bad)));
    }
}
