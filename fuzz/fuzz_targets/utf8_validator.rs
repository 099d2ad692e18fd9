//! Validates arbitrary bytes as text, whole and streamed in chunks of a size the input picks,
//! and compares every answer with `std::str::from_utf8`: the whole-message check, the
//! streaming validator, and where the streaming validator first fails (at the first byte after
//! which no continuation can make the bytes valid).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use wsflow_codec::{Utf8Bytes, Utf8Validator};

fuzz_target!(|data: &[u8]| {
    let Some((&control, text)) = data.split_first() else {
        return;
    };
    let valid = std::str::from_utf8(text).is_ok();
    assert_eq!(Utf8Bytes::try_from(Bytes::copy_from_slice(text)).is_ok(), valid);

    let chunk = usize::from(control) % 97 + 1;
    let mut validator = Utf8Validator::new();
    let mut fed = 0;
    for piece in text.chunks(chunk) {
        let accepted = validator.feed(piece).is_ok();
        fed += piece.len();
        // Whether the bytes so far are valid or the valid start of more.
        let could_be_valid = match std::str::from_utf8(&text[..fed]) {
            Ok(_) => true,
            Err(err) => err.error_len().is_none(),
        };
        if !accepted {
            // Failing early is allowed only once the bytes so far cannot become valid: at
            // the latest in the piece where that became true.
            assert!(!could_be_valid, "refused a valid start at {fed} bytes");
            return;
        }
        assert!(could_be_valid, "accepted an impossible start at {fed} bytes");
    }
    assert_eq!(validator.finish().is_ok(), valid);
});
