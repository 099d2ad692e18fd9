//! Validates arbitrary bytes as text, whole and streamed in chunks whose sizes (0 to 96) the
//! input picks, and compares every answer with `std::str::from_utf8`: the whole-message check,
//! the streaming validator, and where the streaming validator first fails (at the first chunk
//! after which no continuation can make the bytes valid, never earlier).
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
