//! Streaming UTF-8 validation for text messages.
//!
//! Text arrives in fragments and each fragment in chunks; a code point may be split anywhere.
//! RFC 6455 section 8.1 asks an endpoint to fail the connection as soon as the bytes it has seen
//! cannot be the start of valid UTF-8 (Autobahn's 6.4.x cases check that it does). [`is_valid`]
//! does the bulk of the work: with 64-byte registers where the CPU has AVX-512 (`wide`), with
//! simdutf8 elsewhere. This module only carries the up-to-3 bytes of an unfinished code point
//! from one chunk to the next, and asks simdutf8 whether those few bytes can still start one.

mod wide;

use crate::error::ProtocolError;

/// Whether `bytes` are valid UTF-8: the check every text message and every [`Utf8Bytes`]
/// passes, by the fastest path the running CPU has.
///
/// [`Utf8Bytes`]: crate::Utf8Bytes
#[inline]
pub(crate) fn is_valid(bytes: &[u8]) -> bool {
    match wide::is_valid_wide(bytes) {
        Some(valid) => valid,
        None => simdutf8::basic::from_utf8(bytes).is_ok(),
    }
}

/// Validates UTF-8 incrementally, failing at the first byte that makes the input invalid.
///
/// Feed the chunks of one text message in order with [`Utf8Validator::feed`], then call
/// [`Utf8Validator::finish`] at the end of the message; the validator is then ready for the
/// next message.
///
/// ```
/// use wsflow_codec::Utf8Validator;
///
/// let text = "κόσμε".as_bytes();
/// let mut validator = Utf8Validator::new();
/// validator.feed(&text[..3]).unwrap(); // ends inside a code point: fine so far
/// validator.feed(&text[3..]).unwrap();
/// validator.finish().unwrap();
///
/// // 0xed 0xa0 is the start of a UTF-16 surrogate, which can never become valid.
/// assert!(Utf8Validator::new().feed(&[0xce, 0xba, 0xed, 0xa0]).is_err());
/// ```
#[derive(Clone, Debug, Default)]
pub struct Utf8Validator {
    /// The bytes of a code point that started in an earlier chunk.
    pending: [u8; 4],
    pending_len: u8,
}

/// The length of the sequence that `lead` starts (for bytes that are neither ASCII nor a
/// continuation; the invalid ones, `C0`, `C1` and `F5` to `FF`, count as 4).
fn sequence_len(lead: u8) -> usize {
    match lead {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

/// Where the code point that `chunk` ends in starts, if it is unfinished: the last lead byte
/// among the last three bytes when fewer bytes follow it than it announces; `chunk.len()`
/// when the chunk ends on a code point boundary (or is invalid there, which the full check
/// then finds).
fn unfinished_start(chunk: &[u8]) -> usize {
    let len = chunk.len();
    for back in 1..=len.min(3) {
        let byte = chunk[len - back];
        if byte & 0xc0 != 0x80 {
            // Not a continuation byte: ASCII, or a lead byte `back` bytes from the end.
            let needed = if byte.is_ascii() {
                1
            } else {
                sequence_len(byte)
            };
            return if needed > back { len - back } else { len };
        }
    }
    len
}

impl Utf8Validator {
    /// A validator at the start of a message.
    pub const fn new() -> Self {
        Self {
            pending: [0; 4],
            pending_len: 0,
        }
    }

    /// Validates the next chunk of the message.
    ///
    /// Succeeds if everything fed so far is valid UTF-8 or the valid start of it; fails with
    /// [`ProtocolError::InvalidUtf8`] as soon as it cannot be.
    pub fn feed(&mut self, mut chunk: &[u8]) -> Result<(), ProtocolError> {
        if self.pending_len > 0 {
            let have = usize::from(self.pending_len);
            let want = sequence_len(self.pending[0]);
            let take = (want - have).min(chunk.len());
            self.pending[have..have + take].copy_from_slice(&chunk[..take]);
            let len = have + take;
            match simdutf8::compat::from_utf8(&self.pending[..len]) {
                Ok(_) => self.pending_len = 0,
                Err(err) if err.error_len().is_none() => {
                    // Still a valid prefix and the chunk is used up.
                    self.pending_len = len as u8;
                    return Ok(());
                }
                Err(_) => return Err(ProtocolError::InvalidUtf8),
            }
            chunk = &chunk[take..];
        }
        // A chunk that ends inside a code point (most reads of non-ASCII text do) is checked
        // in two parts: the whole code points by the fast check, the unfinished one on its own.
        let (whole, unfinished) = chunk.split_at(unfinished_start(chunk));
        // `whole` ends where a code point starts (or at the end of the chunk), so anything
        // wrong in it stays wrong whatever follows.
        if !is_valid(whole) {
            return Err(ProtocolError::InvalidUtf8);
        }
        if unfinished.is_empty() {
            return Ok(());
        }
        match simdutf8::compat::from_utf8(unfinished) {
            Err(err) if err.error_len().is_none() => {
                // The valid start of a code point: keep it for the next chunk.
                self.pending[..unfinished.len()].copy_from_slice(unfinished);
                self.pending_len = unfinished.len() as u8;
                Ok(())
            }
            // `unfinished_start` only splits off a lead byte with too few bytes after it, so
            // this is an invalid start (such as `E0 80`).
            _ => Err(ProtocolError::InvalidUtf8),
        }
    }

    /// Ends the message: fails if it stopped in the middle of a code point. Resets the
    /// validator either way.
    pub fn finish(&mut self) -> Result<(), ProtocolError> {
        let complete = self.pending_len == 0;
        self.reset();
        if complete {
            Ok(())
        } else {
            Err(ProtocolError::InvalidUtf8)
        }
    }

    /// Whether a code point is unfinished (the bytes so far end inside one).
    pub fn is_mid_code_point(&self) -> bool {
        self.pending_len > 0
    }

    /// Forgets any unfinished code point.
    pub fn reset(&mut self) {
        self.pending_len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn validate_in_chunks(bytes: &[u8], cuts: &[usize]) -> Result<(), ProtocolError> {
        let mut validator = Utf8Validator::new();
        let mut start = 0;
        for &cut in cuts {
            let cut = cut.clamp(start, bytes.len());
            validator.feed(&bytes[start..cut])?;
            start = cut;
        }
        validator.feed(&bytes[start..])?;
        validator.finish()
    }

    #[test]
    fn code_point_split_over_every_boundary() {
        let text = "a€𝄞é".as_bytes();
        for i in 0..=text.len() {
            for j in i..=text.len() {
                validate_in_chunks(text, &[i, j]).unwrap();
            }
        }
    }

    #[test]
    fn one_byte_at_a_time() {
        let text = "Hello-µ@ßöäüàá-UTF-8!! κόσμε 𝄞".as_bytes();
        let mut validator = Utf8Validator::new();
        for byte in text {
            validator.feed(std::slice::from_ref(byte)).unwrap();
        }
        validator.finish().unwrap();
    }

    #[test]
    fn fails_fast_on_the_first_impossible_byte() {
        // Autobahn 6.4.1: the first fragment is valid, the second makes it invalid.
        let mut validator = Utf8Validator::new();
        validator.feed("κόσμε".as_bytes()).unwrap();
        assert_eq!(
            validator.feed(&[0xf4, 0x90, 0x80, 0x80]),
            Err(ProtocolError::InvalidUtf8)
        );
        // A code point beyond U+10FFFF is refused after its second byte already.
        let mut validator = Utf8Validator::new();
        validator.feed(&[0xf4]).unwrap();
        assert!(validator.feed(&[0x90]).is_err());
        // Overlong encodings and surrogates too.
        assert!(Utf8Validator::new().feed(&[0xe0, 0x80]).is_err());
        assert!(Utf8Validator::new().feed(&[0xed, 0xa0]).is_err());
        assert!(Utf8Validator::new().feed(&[0xc0]).is_err());
        assert!(Utf8Validator::new().feed(&[0xff]).is_err());
        // A stray continuation byte.
        assert!(Utf8Validator::new().feed(&[0x80]).is_err());
    }

    #[test]
    fn pending_bytes_are_checked_when_completed() {
        let mut validator = Utf8Validator::new();
        validator.feed(&[0xe2, 0x82]).unwrap();
        assert!(validator.is_mid_code_point());
        assert!(validator.feed(&[0x41]).is_err());
    }

    #[test]
    fn truncated_message_fails_at_finish() {
        let mut validator = Utf8Validator::new();
        validator.feed(&[0xe2, 0x82]).unwrap();
        assert!(validator.finish().is_err());
        // finish resets, so the next message starts clean.
        validator.feed(b"ok").unwrap();
        validator.finish().unwrap();
    }

    proptest! {
        #[test]
        fn agrees_with_std_for_any_split(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
            text in ".{0,80}",
            use_text in any::<bool>(),
            mut cuts in proptest::collection::vec(0usize..320, 0..6),
        ) {
            let input = if use_text { text.into_bytes() } else { bytes };
            cuts.sort_unstable();
            let expected = std::str::from_utf8(&input).is_ok();
            prop_assert_eq!(validate_in_chunks(&input, &cuts).is_ok(), expected);
        }

        #[test]
        fn fails_exactly_when_the_prefix_cannot_be_completed(
            bytes in proptest::collection::vec(any::<u8>(), 0..32),
        ) {
            // Feed byte by byte; the first error must come at the first byte after which the
            // prefix is no longer a valid prefix (std says error_len().is_some()).
            let mut validator = Utf8Validator::new();
            for end in 1..=bytes.len() {
                let ours = validator.feed(&bytes[end - 1..end]).is_ok();
                let std_ok = match std::str::from_utf8(&bytes[..end]) {
                    Ok(_) => true,
                    Err(err) => err.error_len().is_none(),
                };
                prop_assert_eq!(ours, std_ok, "at {} of {:?}", end, &bytes);
                if !ours {
                    break;
                }
            }
        }
    }
}
