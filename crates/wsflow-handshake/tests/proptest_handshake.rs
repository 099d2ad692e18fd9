//! Property tests: what the client writes the server accepts and what the server answers the
//! client accepts, for any protocols, extensions, headers and split of the bytes, with the
//! bytes after each head handed back exactly; and the parsers never panic on arbitrary input.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use wsflow_handshake::{
    AcceptOptions, ClientHandshake, ClientOptions, ExtensionOffer, HandshakeError, HeadProgress,
    Parsed, RequestLimits, SetCookie, WsUrl, format_extensions, parse_extensions, parse_request,
    parse_request_resumed,
};

/// Feeds `wire` to `parse` in pieces ending at `cuts`, as reads from a socket would deliver it,
/// and returns the value and the length of the head. Every call before the head is complete
/// must say `Incomplete`, and the head must be complete as soon as all of it has arrived.
fn parse_in_pieces<T: std::fmt::Debug>(
    wire: &[u8],
    head_len: usize,
    cuts: &[usize],
    mut parse: impl FnMut(&[u8]) -> Result<Parsed<T>, HandshakeError>,
) -> (T, usize) {
    let mut ends: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    ends.push(wire.len());
    ends.sort_unstable();
    ends.dedup();
    let mut buf = Vec::new();
    let mut start = 0;
    for end in ends {
        buf.extend_from_slice(&wire[start..end]);
        start = end;
        match parse(&buf).unwrap() {
            Parsed::Incomplete => assert!(buf.len() < head_len, "complete head not recognised"),
            Parsed::Complete { value, consumed } => {
                assert!(buf.len() >= head_len, "head completed early");
                return (value, consumed);
            }
        }
    }
    panic!("the whole head never completed");
}

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9!#$&'*+.^_`|~-]{1,12}"
}

/// Distinct (ASCII case-insensitively) subprotocol names.
fn protocols() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(token(), 0..6).prop_map(|mut list| {
        let mut seen = Vec::<String>::new();
        list.retain(|p| {
            let lower = p.to_ascii_lowercase();
            let fresh = !seen.contains(&lower);
            seen.push(lower);
            fresh
        });
        list
    })
}

/// Extra headers no side reserves: `X-` names and printable values without surrounding
/// whitespace.
fn extra_headers() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::vec(("X-[A-Za-z0-9-]{1,12}", "[!-~]([ -~]{0,30}[!-~])?"), 0..5)
}

fn extension() -> impl Strategy<Value = ExtensionOffer> {
    (
        token(),
        proptest::collection::vec((token(), proptest::option::of("[ -~\t]{0,12}")), 0..4),
    )
        .prop_map(|(name, params)| ExtensionOffer { name, params })
}

fn path() -> impl Strategy<Value = String> {
    "(/[a-zA-Z0-9._~-]{0,8}){0,3}(\\?[a-z0-9=&%]{0,12})?"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn client_and_server_agree_for_any_split(
        protocols in protocols(),
        chosen in any::<prop::sample::Index>(),
        choose_none in any::<bool>(),
        offers in proptest::collection::vec(extension(), 0..3),
        client_headers in extra_headers(),
        server_headers in extra_headers(),
        origin in proptest::option::of("https://[a-z]{1,10}\\.example"),
        version in prop_oneof![Just(13u8), Just(8u8)],
        path in path(),
        port in proptest::option::of(1u16..),
        key in any::<[u8; 16]>(),
        request_tail in proptest::collection::vec(any::<u8>(), 0..40),
        response_tail in proptest::collection::vec(any::<u8>(), 0..40),
        request_cuts in proptest::collection::vec(any::<usize>(), 0..8),
        response_cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let url_text = match port {
            Some(port) => format!("ws://example.com:{port}{path}"),
            None => format!("ws://example.com{path}"),
        };
        let url = WsUrl::parse(&url_text).unwrap();
        let mut options = ClientOptions::new().protocols(protocols.clone()).version(version);
        if let Some(origin) = &origin {
            options = options.origin(origin.as_str());
        }
        if !offers.is_empty() {
            options = options.extensions(&format_extensions(&offers));
        }
        for (name, value) in &client_headers {
            options = options.header(name, value);
        }
        let (client, request) = ClientHandshake::with_key(&url, &options, key).unwrap();

        // The server reads the request, whatever the reads look like.
        let mut wire = request.clone();
        wire.extend_from_slice(&request_tail);
        let limits = RequestLimits::default();
        let (upgrade, consumed) =
            parse_in_pieces(&wire, request.len(), &request_cuts, |buf| parse_request(buf, &limits));
        prop_assert_eq!(consumed, request.len());
        prop_assert_eq!(&wire[consumed..], &request_tail[..]);
        prop_assert_eq!(upgrade.resource(), url.resource());
        prop_assert_eq!(upgrade.host(), url.host_header());
        prop_assert_eq!(upgrade.version(), version);
        prop_assert_eq!(upgrade.key(), client.key());
        prop_assert_eq!(upgrade.origin(), origin.as_deref());
        prop_assert_eq!(upgrade.requested_protocols_as_sent(), &protocols[..]);
        let lower: Vec<String> = protocols.iter().map(|p| p.to_ascii_lowercase()).collect();
        prop_assert_eq!(upgrade.requested_protocols(), &lower[..]);
        prop_assert_eq!(upgrade.requested_extensions(), &offers[..]);
        for (name, value) in &client_headers {
            prop_assert!(upgrade.headers().contains(&(name.clone(), value.clone())));
        }

        // The server answers, choosing a protocol (in any case) and the first offer.
        let protocol = (!choose_none && !protocols.is_empty())
            .then(|| chosen.get(&protocols).to_ascii_uppercase());
        let mut accept = AcceptOptions::new()
            .protocol(protocol.as_deref())
            .cookie(SetCookie::new("session", "abc").http_only(true));
        if let Some(first) = offers.first() {
            accept = accept.extensions(&first.to_string());
        }
        for (name, value) in &server_headers {
            accept = accept.header(name, value);
        }
        let response = upgrade.accept(&accept).unwrap();

        // The client reads the answer, whatever the reads look like.
        let mut wire = response.clone();
        wire.extend_from_slice(&response_tail);
        let (answer, consumed) =
            parse_in_pieces(&wire, response.len(), &response_cuts, |buf| client.parse_response(buf));
        prop_assert_eq!(consumed, response.len());
        prop_assert_eq!(&wire[consumed..], &response_tail[..]);
        let expected_protocol = protocol.as_ref().map(|_| chosen.get(&protocols).as_str());
        prop_assert_eq!(answer.protocol(), expected_protocol);
        prop_assert_eq!(answer.extensions(), &offers[..offers.len().min(1)]);
        prop_assert_eq!(answer.header("set-cookie"), Some("session=abc; HttpOnly"));
        for (name, value) in &server_headers {
            prop_assert!(answer.headers().contains(&(name.clone(), value.clone())));
        }
    }

    #[test]
    fn extensions_survive_format_and_parse(offers in proptest::collection::vec(extension(), 0..5)) {
        prop_assert_eq!(parse_extensions(&format_extensions(&offers)).unwrap(), offers);
    }

    #[test]
    fn urls_survive_display_and_parse(
        secure in any::<bool>(),
        host in prop_oneof!["[a-z0-9-]{1,10}(\\.[a-z0-9-]{1,10}){0,2}", Just("[::1]".to_string()), Just("127.0.0.1".to_string())],
        port in proptest::option::of(1u16..),
        path in path(),
    ) {
        let scheme = if secure { "wss" } else { "ws" };
        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        let url = WsUrl::parse(&format!("{scheme}://{host}{port}{path}")).unwrap();
        prop_assert_eq!(WsUrl::parse(&url.to_string()).unwrap(), url);
    }

    #[test]
    fn resumed_parsers_answer_as_the_stateless_ones_at_every_read(
        mutations in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        garbage in proptest::collection::vec(prop::sample::select(b"\r\n: aG/".to_vec()), 0..64),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        max_head_size in prop_oneof![Just(16 * 1024), 0usize..200],
        response in any::<bool>(),
    ) {
        let mut bytes = if response {
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n".to_vec()
        } else {
            b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".to_vec()
        };
        let at = mutations.first().map_or(0, |(at, _)| at.index(bytes.len()));
        bytes.splice(at..at, garbage);
        for (at, byte) in mutations {
            let at = at.index(bytes.len());
            bytes[at] = byte;
        }
        let mut ends: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
        ends.push(bytes.len());
        ends.sort_unstable();
        let url = WsUrl::parse("ws://h/").unwrap();
        let options = ClientOptions::new().max_response_head_size(max_head_size);
        let (client, _) = ClientHandshake::with_key(&url, &options, *b"the sample nonce").unwrap();
        let limits = RequestLimits::default().max_head_size(max_head_size);
        let mut progress = HeadProgress::new();
        for end in ends {
            let buf = &bytes[..end];
            let (resumed, fresh) = if response {
                (
                    format!("{:?}", client.parse_response_resumed(buf, &mut progress)),
                    format!("{:?}", client.parse_response(buf)),
                )
            } else {
                (
                    format!("{:?}", parse_request_resumed(buf, &limits, &mut progress)),
                    format!("{:?}", parse_request(buf, &limits)),
                )
            };
            prop_assert_eq!(&resumed, &fresh, "after {} bytes", end);
            if fresh != "Ok(Incomplete)" {
                break;
            }
        }
    }

    #[test]
    fn request_parser_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
        max_head_size in 0usize..4096,
        max_headers in 0usize..100,
    ) {
        let limits = RequestLimits::default().max_head_size(max_head_size).max_headers(max_headers);
        if let Ok(Parsed::Complete { consumed, .. }) = parse_request(&bytes, &limits) {
            prop_assert!(consumed <= bytes.len().min(max_head_size));
        }
    }

    #[test]
    fn request_parser_never_panics_on_near_requests(
        mutations in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = b"GET /chat?x=1 HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\
            Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
            Sec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: a; b=\"c\"\r\n\
            Cookie: a=%41\r\n\r\n".to_vec();
        for (at, byte) in mutations {
            let at = at.index(bytes.len());
            bytes[at] = byte;
        }
        let bytes = &bytes[..cut.index(bytes.len() + 1)];
        if let Ok(Parsed::Complete { value, consumed }) = parse_request(bytes, &RequestLimits::default()) {
            prop_assert!(consumed <= bytes.len());
            let _ = value.accept(&AcceptOptions::new());
            let _ = value.query_pairs();
        }
    }

    #[test]
    fn response_parser_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
        max_head_size in 0usize..4096,
    ) {
        let url = WsUrl::parse("ws://h/").unwrap();
        let options = ClientOptions::new().protocols(["chat"]).extensions("x").max_response_head_size(max_head_size);
        let (client, _) = ClientHandshake::new(&url, &options).unwrap();
        if let Ok(Parsed::Complete { consumed, .. }) = client.parse_response(&bytes) {
            prop_assert!(consumed <= bytes.len().min(max_head_size));
        }
        let mut prefixed = b"HTTP/1.1 101 Switching Protocols\r\n".to_vec();
        prefixed.extend_from_slice(&bytes);
        let _ = client.parse_response(&prefixed);
    }
}
