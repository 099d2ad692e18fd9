//! Payload masking (RFC 6455 section 5.3) and mask keys.
//!
//! Every client-to-server payload is XORed with a 4-byte key. Masking is on the hot path of
//! every client send and every server receive, so [`apply_mask`] works on whole vector
//! registers: 64-byte blocks with AVX-512 or AVX2 where the CPU has them (detected at run
//! time, see `wide`), otherwise and for the rest 16 bytes at a time (the compiler turns the
//! 128-bit XOR into one SIMD instruction), and the tail eight, four and one byte at a time. A
//! frame's payload may arrive in several reads, so masking can resume at any offset into the
//! key.

mod wide;

/// XORs `buf` with `key`, as if `buf` started `offset` bytes into the payload.
///
/// Masking is its own inverse: applying the same key and offset twice gives the input back.
/// To mask a payload that arrives in pieces, pass the number of payload bytes before each piece
/// as `offset`.
///
/// ```
/// use wsflow_codec::apply_mask;
///
/// let key = [0x37, 0xfa, 0x21, 0x3d];
/// let mut whole = *b"Hello, WebSocket";
/// apply_mask(&mut whole, key, 0);
///
/// let mut pieces = *b"Hello, WebSocket";
/// let (first, second) = pieces.split_at_mut(5);
/// apply_mask(first, key, 0);
/// apply_mask(second, key, 5);
/// assert_eq!(whole, pieces);
/// ```
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let key = rotate_key(key, offset);
    if buf.len() >= wide::MIN_WIDE_LEN && wide::apply_mask_wide(buf, key) {
        return;
    }
    apply_mask_narrow(buf, key);
}

/// Unmasks a whole payload (key index 0) with the narrow path inlined into the caller: the
/// short frames of a burst, each a few words long, where a call would cost as much as the
/// masking itself.
#[inline(always)]
pub(crate) fn unmask_whole_payload(buf: &mut [u8], key: [u8; 4]) {
    if buf.len() >= wide::MIN_WIDE_LEN && wide::apply_mask_wide(buf, key) {
        return;
    }
    mask_narrow_inline(buf, key);
}

/// Masks `buf` (starting at key index 0 of `key`) 16 bytes at a time, then the tail eight,
/// four and one at a time: what the baseline x86-64 and most other targets can do without run-time
/// detection.
#[inline]
fn apply_mask_narrow(buf: &mut [u8], key: [u8; 4]) {
    mask_narrow_inline(buf, key);
}

/// The body of [`apply_mask_narrow`], for the callers that want it inlined.
#[inline(always)]
fn mask_narrow_inline(buf: &mut [u8], key: [u8; 4]) {
    if buf.len() < 16 {
        apply_mask_short(buf, key);
        return;
    }
    let key32 = u32::from_ne_bytes(key);
    let key64 = (u64::from(key32) << 32) | u64::from(key32);
    let key128 = (u128::from(key64) << 64) | u128::from(key64);
    let mut at = 0;
    while let Some(chunk) = buf[at..].first_chunk_mut::<16>() {
        *chunk = (u128::from_ne_bytes(*chunk) ^ key128).to_ne_bytes();
        at += 16;
    }
    // Every chunk is a multiple of 4 bytes long, so the tail starts at key index 0.
    apply_mask_short(&mut buf[at..], key);
}

/// The key as seen from `offset` bytes into the payload.
#[inline]
pub(crate) fn rotate_key(key: [u8; 4], offset: usize) -> [u8; 4] {
    // Byte i of the result is byte (i + offset) % 4 of the key: in a little-endian word,
    // a rotation right by that many bytes (one instruction, where `<[u8]>::rotate_left` is
    // a call).
    let shift = 8 * (offset % 4) as u32;
    u32::from_le_bytes(key).rotate_right(shift).to_le_bytes()
}

/// Masks a `buf` shorter than 16 bytes (starting at key index 0): eight bytes, four, then the
/// last few, each at most once, so a short message's tail costs a few branches, not a loop.
#[inline]
fn apply_mask_short(buf: &mut [u8], key: [u8; 4]) {
    debug_assert!(buf.len() < 16);
    let key32 = u32::from_ne_bytes(key);
    let mut at = 0;
    if let Some(eight) = buf.first_chunk_mut::<8>() {
        let key64 = (u64::from(key32) << 32) | u64::from(key32);
        *eight = (u64::from_ne_bytes(*eight) ^ key64).to_ne_bytes();
        at = 8;
    }
    if let Some(four) = buf[at..].first_chunk_mut::<4>() {
        *four = (u32::from_ne_bytes(*four) ^ key32).to_ne_bytes();
        at += 4;
    }
    for (byte, key_byte) in buf[at..].iter_mut().zip(key) {
        *byte ^= key_byte;
    }
}

/// The plain byte-at-a-time loop of RFC 6455 section 5.3, kept as the reference the fast path
/// is tested (and benchmarked) against.
///
/// ```
/// use wsflow_codec::{apply_mask, apply_mask_reference};
///
/// let mut fast = vec![7u8; 100];
/// let mut plain = fast.clone();
/// apply_mask(&mut fast[3..], [1, 2, 3, 4], 9);
/// apply_mask_reference(&mut plain[3..], [1, 2, 3, 4], 9);
/// assert_eq!(fast, plain);
/// ```
pub fn apply_mask_reference(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte ^= key[(offset + i) % 4];
    }
}

/// A fresh masking key from a cryptographically secure generator (the thread-local ChaCha
/// generator of `rand`, seeded by the operating system), as RFC 6455 section 10.3 requires.
///
/// ```
/// let a = wsflow_codec::random_mask_key();
/// let b = wsflow_codec::random_mask_key();
/// // Two 32-bit keys collide with probability 2^-32.
/// assert_ne!(a, b);
/// ```
pub fn random_mask_key() -> [u8; 4] {
    rand::random()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn masks_the_rfc_example() {
        // RFC 6455 section 5.7: "Hello" masked with 37 fa 21 3d.
        let mut payload = *b"Hello";
        apply_mask(&mut payload, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(payload, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }

    #[test]
    fn the_rotated_key_starts_at_the_offset() {
        let key = [1, 2, 3, 4];
        for offset in 0..9 {
            let mut expected = key;
            expected.rotate_left(offset % 4);
            assert_eq!(rotate_key(key, offset), expected, "offset {offset}");
        }
    }

    #[test]
    fn every_alignment_length_and_offset_matches_the_plain_loop() {
        let source: Vec<u8> = (0..300u32).map(|i| (i * 31 + 7) as u8).collect();
        let key = [0xde, 0xad, 0xbe, 0xef];
        for start in 0..16 {
            for len in 0..(source.len() - start) {
                for offset in 0..4 {
                    let mut fast = source.clone();
                    let mut plain = source.clone();
                    apply_mask(&mut fast[start..start + len], key, offset);
                    apply_mask_reference(&mut plain[start..start + len], key, offset);
                    assert_eq!(fast, plain, "start {start} len {len} offset {offset}");
                }
            }
        }
    }

    proptest! {
        #[test]
        fn split_masking_equals_whole_masking(
            payload in proptest::collection::vec(any::<u8>(), 0..2048),
            key in any::<[u8; 4]>(),
            mut cuts in proptest::collection::vec(0usize..2048, 0..8),
        ) {
            let mut whole = payload.clone();
            apply_mask_reference(&mut whole, key, 0);
            cuts.push(payload.len());
            cuts.sort_unstable();
            let mut pieces = payload.clone();
            let mut start = 0;
            for cut in cuts {
                let cut = cut.min(payload.len());
                apply_mask(&mut pieces[start..cut], key, start);
                start = cut;
            }
            prop_assert_eq!(whole, pieces);
        }

        #[test]
        fn masking_twice_is_identity(
            payload in proptest::collection::vec(any::<u8>(), 0..512),
            key in any::<[u8; 4]>(),
            offset in 0usize..1000,
        ) {
            let mut buf = payload.clone();
            apply_mask(&mut buf, key, offset);
            apply_mask(&mut buf, key, offset);
            prop_assert_eq!(buf, payload);
        }
    }
}
