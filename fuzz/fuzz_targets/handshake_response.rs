//! Feeds arbitrary bytes, split at arbitrary points, to the client's response parser, either as
//! they are or after a valid `101` prefix with the right accept hash (to reach the protocol and
//! extension checks). The parser must never panic, never claim more bytes than it was given or
//! than the head size limit, and every failure must be a response error; resumed from a
//! `HeadProgress`, it must answer as the stateless parse does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsflow_handshake::{ClientHandshake, ClientOptions, HeadProgress, Parsed, WsUrl};

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let Ok(url) = WsUrl::parse("ws://example.com/chat") else {
        return;
    };
    let max_head_size = if control & 2 == 0 { 16 * 1024 } else { 256 };
    let options = ClientOptions::new()
        .protocols(["chat", "superchat"])
        .extensions("permessage-deflate; client_max_window_bits, x-foo")
        .max_response_head_size(max_head_size)
        .max_response_headers(usize::from(control >> 4) * 4 + 4);
    let Ok((client, _request)) = ClientHandshake::with_key(&url, &options, *b"the sample nonce")
    else {
        return;
    };
    let mut input = Vec::new();
    if control & 1 == 1 {
        input.extend_from_slice(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n",
        );
    }
    input.extend_from_slice(rest);
    let chunk = usize::from((control >> 2) % 8) * 5 + 1;
    let mut buf = Vec::new();
    let mut progress = HeadProgress::new();
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        let parsed = client.parse_response(&buf);
        let resumed = client.parse_response_resumed(&buf, &mut progress);
        assert_eq!(format!("{resumed:?}"), format!("{parsed:?}"));
        match parsed {
            Ok(Parsed::Incomplete) => {}
            Ok(Parsed::Complete { value, consumed }) => {
                assert!(consumed <= buf.len() && consumed <= max_head_size);
                if let Some(protocol) = value.protocol() {
                    assert!(protocol == "chat" || protocol == "superchat");
                }
                return;
            }
            Err(err) => {
                assert!(err.is_response_error(), "{err}");
                return;
            }
        }
    }
});
