//! Validates arbitrary bytes as text, whole and streamed in chunks whose sizes (0 to 96) the
//! input picks, and compares every answer with `std::str::from_utf8`: the whole-message check,
//! the streaming validator, and where the streaming validator first fails (at the first chunk
//! after which no continuation can make the bytes valid, never earlier). The same bytes,
//! masked, streamed in chunks 16 times as long through `unmask_and_feed` must give the same
//! answers as unmasking them and then `feed`, and come out unmasked.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use wsflow_codec::{Utf8Bytes, Utf8Validator};

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let (sizes, text) = data.split_at(3);
    let valid = std::str::from_utf8(text).is_ok();
    assert_eq!(Utf8Bytes::try_from(Bytes::copy_from_slice(text)).is_ok(), valid);

    // Unmasking while validating, in longer chunks (its fused pass starts at 512 bytes).
    let key = [sizes[0], sizes[1], sizes[2], 0x5a];
    let mut masked = text.to_vec();
    wsflow_codec::apply_mask(&mut masked, key, 0);
    let (mut fused, mut plain) = (Utf8Validator::new(), Utf8Validator::new());
    let mut start = 0;
    for size in sizes.iter().map(|size| usize::from(*size) * 16 + 1).cycle() {
        let end = (start + size).min(text.len());
        let chunk = &mut masked[start..end];
        let outcome = fused.unmask_and_feed(chunk, key, start);
        assert_eq!(chunk, &text[start..end], "unmasked {start}..{end}");
        let expected = plain.feed(&text[start..end]);
        assert_eq!(outcome, expected, "chunk {start}..{end}");
        if expected.is_err() {
            break;
        }
        start = end;
        if start == text.len() {
            assert_eq!(fused.finish(), plain.finish());
            break;
        }
    }

    // The chunk sizes repeat in this cycle; an empty chunk is fed as such.
    let mut sizes = sizes.iter().map(|size| usize::from(*size) % 97).cycle();
    let mut validator = Utf8Validator::new();
    let mut fed = 0;
    let mut empty_in_a_row = 0;
    while fed < text.len() {
        let size = sizes.next().unwrap_or(1);
        // Three empty chunks in a row would never finish: take one byte then.
        empty_in_a_row = if size == 0 { empty_in_a_row + 1 } else { 0 };
        let size = if empty_in_a_row == 3 {
            empty_in_a_row = 0;
            1
        } else {
            size
        };
        let piece = &text[fed..(fed + size).min(text.len())];
        let accepted = validator.feed(piece).is_ok();
        fed += piece.len();
        // Whether the bytes so far are valid or the valid start of more.
        let could_be_valid = match std::str::from_utf8(&text[..fed]) {
            Ok(_) => true,
            Err(err) => err.error_len().is_none(),
        };
        if !accepted {
            assert!(!could_be_valid, "refused a valid start at {fed} bytes");
            return;
        }
        assert!(could_be_valid, "accepted an impossible start at {fed} bytes");
    }
    assert_eq!(validator.finish().is_ok(), valid);
});
