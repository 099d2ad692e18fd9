//! Feeds arbitrary bytes, split at arbitrary points, to the server's upgrade request parser,
//! either as they are or after a valid request prefix (to reach the header checks: extensions,
//! cookies, protocols). The parser must never panic, must never claim more bytes than it was
//! given or than the head size limit, and whatever it accepts must be answerable; resumed from
//! a `HeadProgress`, it must answer as the stateless parse does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsflow_handshake::{
    AcceptOptions, HeadProgress, Parsed, RequestLimits, parse_extensions, parse_request,
    parse_request_resumed,
};

const PREFIX: &[u8] = b"GET /chat?room=1&x=%41+b HTTP/1.1\r\nHost: example.com\r\n\
    Upgrade: websocket\r\nConnection: Upgrade\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    if let Ok(text) = std::str::from_utf8(rest) {
        let _ = parse_extensions(text);
    }
    let mut input = Vec::new();
    if control & 1 == 1 {
        input.extend_from_slice(PREFIX);
    }
    input.extend_from_slice(rest);
    let max_head_size = if control & 2 == 0 { 16 * 1024 } else { 256 };
    let max_headers = usize::from(control >> 4) * 2;
    let limits = RequestLimits::default()
        .max_head_size(max_head_size)
        .max_headers(if control & 4 == 0 { 64 } else { max_headers });
    let chunk = usize::from((control >> 3) % 8) * 7 + 1;
    let mut buf = Vec::new();
    let mut progress = HeadProgress::new();
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        let parsed = parse_request(&buf, &limits);
        let resumed = parse_request_resumed(&buf, &limits, &mut progress);
        assert_eq!(format!("{resumed:?}"), format!("{parsed:?}"));
        match parsed {
            Ok(Parsed::Incomplete) => {}
            Ok(Parsed::Complete { value, consumed }) => {
                assert!(consumed <= buf.len() && consumed <= max_head_size);
                let _ = value.query_pairs();
                let _ = value.x_forwarded_for();
                let protocol = value.requested_protocols().first().cloned();
                let mut options = AcceptOptions::new().protocol(protocol.as_deref());
                if let Some(offer) = value.requested_extensions().first() {
                    options = options.extensions(&offer.to_string());
                }
                let response = value.accept(&options);
                assert!(response.is_ok(), "{response:?}");
                return;
            }
            Err(err) => {
                assert!(err.http_status().is_some(), "{err}");
                let response = err.to_response();
                assert!(response.ends_with(b"\r\n\r\n"));
                return;
            }
        }
    }
});
