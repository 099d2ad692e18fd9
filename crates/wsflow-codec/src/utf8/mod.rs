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
use crate::mask::rotate_key;

/// Below this length [`Utf8Validator::unmask_and_feed`] unmasks and then validates: the
/// fused pass took 1.04 times as long as two passes at 256 bytes, 0.93 to 1.02 at 512 bytes
/// and 1 KiB, and 0.68 to 0.80 from 4 KiB to 64 KiB (`cargo bench --bench codec --
/// unmask_and_validate`, Sapphire Rapids).
const FUSED_MIN_LEN: usize = 512;

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
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), ProtocolError> {
        let Some(taken) = self.finish_pending(chunk)? else {
            return Ok(());
        };
        let chunk = &chunk[taken..];
        // A chunk that ends inside a code point (most reads of non-ASCII text do) is checked
        // in two parts: the whole code points by the fast check, the unfinished one on its own.
        let (whole, unfinished) = chunk.split_at(unfinished_start(chunk));
        // `whole` ends where a code point starts (or at the end of the chunk), so anything
        // wrong in it stays wrong whatever follows.
        if !is_valid(whole) {
            return Err(ProtocolError::InvalidUtf8);
        }
        self.keep_unfinished(unfinished)
    }

    /// Unmasks `chunk` in place, as [`apply_mask`](crate::apply_mask)`(chunk, key, offset)`
    /// does, and validates the unmasked bytes as [`Utf8Validator::feed`] does.
    ///
    /// Where the CPU has AVX-512 (Ice Lake, Zen 4 and later), a long chunk is unmasked and
    /// checked in one pass, which saves most of the unmasking: the check keeps the vector
    /// units busy while unmasking alone waits on the cache. Elsewhere it unmasks, then
    /// validates. The whole chunk is unmasked whatever the outcome.
    ///
    /// ```
    /// use wsflow_codec::{Utf8Validator, apply_mask};
    ///
    /// let key = [0x37, 0xfa, 0x21, 0x3d];
    /// let text = "κόσμε, 日本語".repeat(60);
    /// let mut masked = text.clone().into_bytes();
    /// apply_mask(&mut masked, key, 0);
    ///
    /// let mut validator = Utf8Validator::new();
    /// let (first, second) = masked.split_at_mut(101); // inside a code point
    /// validator.unmask_and_feed(first, key, 0).unwrap();
    /// validator.unmask_and_feed(second, key, 101).unwrap();
    /// validator.finish().unwrap();
    /// assert_eq!(masked, text.as_bytes());
    /// ```
    pub fn unmask_and_feed(
        &mut self,
        chunk: &mut [u8],
        key: [u8; 4],
        offset: usize,
    ) -> Result<(), ProtocolError> {
        if chunk.len() < FUSED_MIN_LEN || !wide::has_unmask_is_valid() {
            crate::apply_mask(chunk, key, offset);
            return self.feed(chunk);
        }
        // A code point carried over from the last chunk takes at most three bytes of this
        // one, and an unfinished one at the end starts in the last three: `chunk` is longer
        // than both together, so the fused pass gets the run between them.
        let carried = self.pending_len > 0;
        let head = if carried { 3 } else { 0 };
        crate::apply_mask(&mut chunk[..head], key, offset);
        let taken = match self.finish_pending(&chunk[..head]) {
            Ok(Some(taken)) => taken,
            // Three more bytes always complete a carried code point or prove it wrong, so
            // this does not happen; if it did, the rest would simply go the plain way.
            Ok(None) => {
                crate::apply_mask(&mut chunk[head..], key, offset + head);
                return self.feed(&chunk[head..]);
            }
            Err(err) => {
                crate::apply_mask(&mut chunk[head..], key, offset + head);
                return Err(err);
            }
        };
        // The bytes of `head` the carried code point did not take go back under the mask,
        // for the fused pass to take them with the rest.
        crate::apply_mask(&mut chunk[taken..head], key, offset + taken);
        // Where the last code point starts if it is unfinished, from the last three bytes
        // unmasked on the side.
        let len = chunk.len();
        let mut last = [0; 3];
        last.copy_from_slice(&chunk[len - 3..]);
        crate::apply_mask(&mut last, key, offset + len - 3);
        let unfinished_at = len - 3 + unfinished_start(&last);
        let whole = &mut chunk[taken..unfinished_at];
        let valid = match wide::unmask_is_valid_wide(whole, rotate_key(key, offset + taken)) {
            Some(valid) => valid,
            // Not on this CPU after all (`has_unmask_is_valid` said it was): the plain way.
            None => {
                crate::apply_mask(whole, key, offset + taken);
                is_valid(whole)
            }
        };
        let unfinished = &mut chunk[unfinished_at..];
        crate::apply_mask(unfinished, key, offset + unfinished_at);
        if !valid {
            return Err(ProtocolError::InvalidUtf8);
        }
        self.keep_unfinished(unfinished)
    }

    /// Completes a code point carried over from an earlier chunk with the first bytes of
    /// `chunk`. Returns how many bytes it took, or `None` if `chunk` ran out with the code
    /// point still a valid start (then kept for the next chunk).
    fn finish_pending(&mut self, chunk: &[u8]) -> Result<Option<usize>, ProtocolError> {
        if self.pending_len == 0 {
            return Ok(Some(0));
        }
        let have = usize::from(self.pending_len);
        let want = sequence_len(self.pending[0]);
        let take = (want - have).min(chunk.len());
        self.pending[have..have + take].copy_from_slice(&chunk[..take]);
        let len = have + take;
        match simdutf8::compat::from_utf8(&self.pending[..len]) {
            Ok(_) => {
                self.pending_len = 0;
                Ok(Some(take))
            }
            Err(err) if err.error_len().is_none() => {
                // Still a valid prefix and the chunk is used up.
                self.pending_len = len as u8;
                Ok(None)
            }
            Err(_) => Err(ProtocolError::InvalidUtf8),
        }
    }

    /// Keeps the unfinished code point a chunk ends with (`unfinished`, the bytes after its
    /// last whole code point) for the next chunk, or fails if it cannot start a valid one.
    fn keep_unfinished(&mut self, unfinished: &[u8]) -> Result<(), ProtocolError> {
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

    /// Feeds `bytes` in the chunks `cuts` makes, masked with `key`, both ways: unmasking and
    /// then `feed`, and `unmask_and_feed`. Both must unmask every chunk to the original and
    /// agree on every chunk's outcome (up to the first error) and on `finish`. Returns the
    /// outcome.
    fn unmask_both_ways(bytes: &[u8], cuts: &[usize], key: [u8; 4]) -> Result<(), ProtocolError> {
        let mut masked = bytes.to_vec();
        crate::apply_mask_reference(&mut masked, key, 0);
        let mut plain = masked.clone();
        let mut fused = masked;
        let (mut plain_validator, mut fused_validator) =
            (Utf8Validator::new(), Utf8Validator::new());
        let mut start = 0;
        for cut in cuts.iter().copied().chain([bytes.len()]) {
            let end = cut.clamp(start, bytes.len());
            crate::apply_mask(&mut plain[start..end], key, start);
            let expected = plain_validator.feed(&plain[start..end]);
            let outcome = fused_validator.unmask_and_feed(&mut fused[start..end], key, start);
            assert_eq!(
                fused[start..end],
                bytes[start..end],
                "chunk {start}..{end} unmasked"
            );
            assert_eq!(outcome, expected, "chunk {start}..{end}");
            outcome?;
            start = end;
        }
        let expected = plain_validator.finish();
        assert_eq!(fused_validator.finish(), expected);
        expected
    }

    #[test]
    fn unmasking_while_validating_agrees_at_every_cut() {
        let text = "κόσμε 日本語のテキスト µ@ßöäü 𝄞 Ελληνικά 中文 "
            .repeat(12)
            .into_bytes();
        let key = [0xa5, 0x3c, 0x96, 0x0f];
        // Every cut (inside code points too), so that the long chunk on either side starts
        // with a carried code point or ends with an unfinished one, at every key rotation.
        for cut in 0..=text.len() {
            unmask_both_ways(&text, &[cut], key).unwrap();
        }
        // Wrong bytes where the carried code point is finished, where the unfinished one
        // starts, and in between, around a cut inside a code point.
        for (at, wrong) in [(1, 0x41), (2, 0xff), (3, 0x41), (300, 0xc0), (700, 0xff)] {
            for cut in [at - 1, at, at + 1, 999, 1000, 1001] {
                let mut bytes = text.clone();
                bytes[at] = wrong;
                let outcome = unmask_both_ways(&bytes, &[cut], key);
                assert!(outcome.is_err(), "{wrong:x} at {at}, cut at {cut}");
            }
        }
    }

    proptest! {
        #[test]
        fn unmasking_while_validating_agrees_for_any_split(
            bytes in proptest::collection::vec(any::<u8>(), 0..1500),
            text in ".{0,700}",
            use_text in any::<bool>(),
            mut cuts in proptest::collection::vec(0usize..2800, 0..4),
            key in any::<[u8; 4]>(),
        ) {
            let input = if use_text { text.into_bytes() } else { bytes };
            cuts.sort_unstable();
            let expected = std::str::from_utf8(&input).is_ok();
            prop_assert_eq!(unmask_both_ways(&input, &cuts, key).is_ok(), expected);
        }

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
