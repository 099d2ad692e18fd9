//! Negotiating permessage-deflate (RFC 7692 section 7.1): reading and checking its parameters
//! in offers and answers, choosing an answer for a server, checking the answer for a client.
//!
//! The handshake only settles the four parameters; compressing is the connection's business
//! (`wsflow-core`'s `PerMessageDeflate`). A server calls [`negotiate_deflate`] with the
//! client's offers and writes the answer it returns with
//! [`AcceptOptions::extensions`](crate::AcceptOptions::extensions); a client sends offers
//! written by [`DeflateParams`]'s `Display` with
//! [`ClientOptions::extensions`](crate::ClientOptions::extensions) and checks the server's
//! answer with [`check_deflate_response`].
//!
//! # Window bits 8
//!
//! RFC 7692 allows windows of 2^8 to 2^15 bytes; zlib cannot compress with a 256-byte window.
//! This is no reason to decline: a compressor limited to 256 bytes may run zlib with 9 bits,
//! whose matches never reach back more than 250 bytes (zlib keeps the last 262 bytes of its
//! window out of reach), and an inflater may always use a larger window than the compressor.
//! So every value from 8 to 15 is accepted and answered as such, in both roles.

use std::fmt;

use crate::error::HandshakeError;
use crate::extension::ExtensionOffer;

/// The name of the extension, as it appears in `Sec-WebSocket-Extensions`.
pub const PERMESSAGE_DEFLATE: &str = "permessage-deflate";

/// The parameters of one permessage-deflate offer or answer (RFC 7692 section 7.1).
///
/// A client's offer may carry `client_max_window_bits` without a value (it can limit its
/// window if asked); an answer always gives a value. Window bits range from 8 to 15; a missing
/// one means 15. `Display` writes the extension in header syntax.
///
/// ```
/// use wsflow_handshake::{DeflateParams, parse_extensions};
///
/// let offer = DeflateParams::new()
///     .with_server_no_context_takeover()
///     .with_client_max_window_bits(None);
/// assert_eq!(
///     offer.to_string(),
///     "permessage-deflate; server_no_context_takeover; client_max_window_bits"
/// );
/// let parsed = parse_extensions(&offer.to_string()).unwrap();
/// assert_eq!(DeflateParams::from_offer(&parsed[0]).unwrap(), offer);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct DeflateParams {
    /// `server_no_context_takeover`: the server starts every message with an empty window.
    pub server_no_context_takeover: bool,
    /// `client_no_context_takeover`: the client starts every message with an empty window.
    pub client_no_context_takeover: bool,
    /// `server_max_window_bits=N`: the server compresses with a window of at most 2^N bytes.
    pub server_max_window_bits: Option<u8>,
    /// `client_max_window_bits`: `Some(None)` without a value (in an offer: the client can
    /// limit its window when the answer asks), `Some(Some(n))` with one (in an offer, a hint
    /// that the client will not use more; in an answer, the limit).
    pub client_max_window_bits: Option<Option<u8>>,
}

impl DeflateParams {
    /// No parameter: context takeover and 15-bit windows both ways.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `server_no_context_takeover`.
    pub fn with_server_no_context_takeover(mut self) -> Self {
        self.server_no_context_takeover = true;
        self
    }

    /// Sets `client_no_context_takeover`.
    pub fn with_client_no_context_takeover(mut self) -> Self {
        self.client_no_context_takeover = true;
        self
    }

    /// Sets `server_max_window_bits` (8 to 15).
    pub fn with_server_max_window_bits(mut self, bits: u8) -> Self {
        self.server_max_window_bits = Some(bits);
        self
    }

    /// Sets `client_max_window_bits`, with a value (8 to 15) or without (`None`, offers only).
    pub fn with_client_max_window_bits(mut self, bits: Option<u8>) -> Self {
        self.client_max_window_bits = Some(bits);
        self
    }

    /// The window the server compresses with, as agreed by an answer: its
    /// `server_max_window_bits`, or 15.
    pub fn server_window_bits(&self) -> u8 {
        self.server_max_window_bits.unwrap_or(15)
    }

    /// The window the client compresses with, as agreed by an answer: its
    /// `client_max_window_bits`, or 15.
    pub fn client_window_bits(&self) -> u8 {
        self.client_max_window_bits.flatten().unwrap_or(15)
    }

    /// Reads a client's offer. Fails on another extension, on a parameter RFC 7692 does not
    /// define, a parameter given twice, a value where none is allowed, no value where one is
    /// needed (`server_max_window_bits`), or window bits other than `8` to `15` written in
    /// decimal without leading zeros. A server declines such an offer (RFC 7692 section 5):
    /// [`negotiate_deflate`] skips it.
    ///
    /// ```
    /// use wsflow_handshake::{DeflateParams, HandshakeError, parse_extensions};
    ///
    /// let offers = parse_extensions(
    ///     "permessage-deflate; client_max_window_bits=\"10\"; server_max_window_bits=9, \
    ///      permessage-deflate; server_max_window_bits",
    /// )
    /// .unwrap();
    /// let first = DeflateParams::from_offer(&offers[0]).unwrap();
    /// assert_eq!(first.client_max_window_bits, Some(Some(10)));
    /// assert_eq!(first.server_max_window_bits, Some(9));
    /// assert!(matches!(
    ///     DeflateParams::from_offer(&offers[1]),
    ///     Err(HandshakeError::InvalidDeflateOffer { .. })
    /// ));
    /// ```
    pub fn from_offer(extension: &ExtensionOffer) -> Result<Self, HandshakeError> {
        Self::parse(extension, true).map_err(|reason| HandshakeError::InvalidDeflateOffer {
            offer: extension.to_string(),
            reason,
        })
    }

    /// Reads a server's answer: as [`DeflateParams::from_offer`], except that
    /// `client_max_window_bits` needs a value. A client fails the connection on an invalid
    /// answer ([`check_deflate_response`] does this and more).
    pub fn from_response(extension: &ExtensionOffer) -> Result<Self, HandshakeError> {
        Self::parse(extension, false).map_err(|reason| HandshakeError::InvalidDeflateResponse {
            response: extension.to_string(),
            reason,
        })
    }

    fn parse(extension: &ExtensionOffer, offer: bool) -> Result<Self, &'static str> {
        if !extension.name.eq_ignore_ascii_case(PERMESSAGE_DEFLATE) {
            return Err("it is not permessage-deflate");
        }
        let mut params = Self::new();
        let mut seen = [false; 4];
        for (name, value) in &extension.params {
            let index = PARAMS
                .iter()
                .position(|known| known.eq_ignore_ascii_case(name))
                .ok_or("it has a parameter RFC 7692 does not define")?;
            if std::mem::replace(&mut seen[index], true) {
                return Err("a parameter appears twice");
            }
            let value = value.as_deref();
            match index {
                0 | 1 => {
                    if value.is_some() {
                        return Err("a no_context_takeover parameter has a value");
                    }
                    if index == 0 {
                        params.server_no_context_takeover = true;
                    } else {
                        params.client_no_context_takeover = true;
                    }
                }
                2 => {
                    let value = value.ok_or("server_max_window_bits has no value")?;
                    params.server_max_window_bits = Some(window_bits(value)?);
                }
                _ => {
                    params.client_max_window_bits = Some(match value {
                        Some(value) => Some(window_bits(value)?),
                        None if offer => None,
                        None => return Err("client_max_window_bits has no value"),
                    });
                }
            }
        }
        Ok(params)
    }

    /// The extension with its parameters, ready for [`format_extensions`](crate::format_extensions).
    pub fn to_extension(&self) -> ExtensionOffer {
        let mut extension = ExtensionOffer::new(PERMESSAGE_DEFLATE);
        if self.server_no_context_takeover {
            extension = extension.with_param(PARAMS[0], None);
        }
        if self.client_no_context_takeover {
            extension = extension.with_param(PARAMS[1], None);
        }
        if let Some(bits) = self.server_max_window_bits {
            extension = extension.with_param(PARAMS[2], Some(&bits.to_string()));
        }
        if let Some(bits) = self.client_max_window_bits {
            let value = bits.map(|bits| bits.to_string());
            extension = extension.with_param(PARAMS[3], value.as_deref());
        }
        extension
    }
}

impl fmt::Display for DeflateParams {
    /// Header syntax: `permessage-deflate` and the parameters set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.to_extension().fmt(f)
    }
}

/// The parameters, in the order they are written and checked.
const PARAMS: [&str; 4] = [
    "server_no_context_takeover",
    "client_no_context_takeover",
    "server_max_window_bits",
    "client_max_window_bits",
];

/// A window-bits value: `8` to `15`, decimal, no leading zero, no sign.
fn window_bits(value: &str) -> Result<u8, &'static str> {
    match value {
        "8" | "9" | "10" | "11" | "12" | "13" | "14" | "15" => {
            value.parse().map_err(|_| "window bits must be 8 to 15")
        }
        _ => Err("window bits must be 8 to 15, in decimal without leading zeros"),
    }
}

/// Chooses the answer of a server to a client's offers, or `None` to decline them all.
///
/// `offers` is everything the client offered, in its order of preference
/// ([`UpgradeRequest::requested_extensions`](crate::UpgradeRequest::requested_extensions));
/// extensions other than permessage-deflate are ignored, and invalid permessage-deflate offers
/// are declined (RFC 7692 section 5). The first offer the server can accept is answered;
/// `server` says what the server wants, as the parameters of an answer:
///
/// - `server_no_context_takeover`: the server never uses context takeover (always answered);
///   a client asking for it gets it anyway;
/// - `client_no_context_takeover`: the server asks the client not to use it (always
///   answered; a client can always comply);
/// - `server_max_window_bits`: the largest window the server compresses with; the answer
///   gives the smaller of it and the client's request, if either is below 15;
/// - `client_max_window_bits` with a value: the largest window the server accepts from the
///   client; only offers that let the server limit it (offers with `client_max_window_bits`)
///   can be accepted then. Without a limit, a client's hint (`client_max_window_bits=10`) is
///   answered, so that the server inflates with the smaller window.
///
/// ```
/// use wsflow_handshake::{DeflateParams, negotiate_deflate, parse_extensions};
///
/// let offers = parse_extensions(
///     "x-webkit-deflate-frame, \
///      permessage-deflate; server_max_window_bits=10; server_max_window_bits=10, \
///      permessage-deflate; server_max_window_bits=8; client_max_window_bits, \
///      permessage-deflate",
/// )
/// .unwrap();
/// // The server limits clients to 12 bits; the offer with a duplicate parameter is declined.
/// let server = DeflateParams::new().with_client_max_window_bits(Some(12));
/// let answer = negotiate_deflate(&offers, &server).unwrap();
/// assert_eq!(
///     answer.to_string(),
///     "permessage-deflate; server_max_window_bits=8; client_max_window_bits=12"
/// );
/// assert_eq!((answer.server_window_bits(), answer.client_window_bits()), (8, 12));
/// ```
pub fn negotiate_deflate(
    offers: &[ExtensionOffer],
    server: &DeflateParams,
) -> Option<DeflateParams> {
    offers
        .iter()
        .filter(|offer| offer.name.eq_ignore_ascii_case(PERMESSAGE_DEFLATE))
        .filter_map(|offer| DeflateParams::from_offer(offer).ok())
        .find_map(|offer| answer(&offer, server))
}

/// The answer to one valid offer, or `None` if the server cannot accept it.
fn answer(offer: &DeflateParams, server: &DeflateParams) -> Option<DeflateParams> {
    let server_limit = server.server_max_window_bits.filter(|&bits| bits < 15);
    let client_limit = server
        .client_max_window_bits
        .flatten()
        .filter(|&bits| bits < 15);
    let client_max_window_bits = match offer.client_max_window_bits {
        // The client cannot be limited: a server that must limit it declines.
        None if client_limit.is_some() => return None,
        None => None,
        Some(hint) => {
            let bits = hint.unwrap_or(15).min(client_limit.unwrap_or(15));
            (bits < 15).then_some(Some(bits))
        }
    };
    Some(DeflateParams {
        server_no_context_takeover: offer.server_no_context_takeover
            || server.server_no_context_takeover,
        client_no_context_takeover: server.client_no_context_takeover,
        server_max_window_bits: match (offer.server_max_window_bits, server_limit) {
            (Some(requested), limit) => Some(requested.min(limit.unwrap_or(15))),
            (None, limit) => limit,
        },
        client_max_window_bits,
    })
}

/// Checks a server's answer against what the client offered (RFC 7692 sections 5 and 7.1),
/// as a client must before using the extension.
///
/// `offered` lists the permessage-deflate offers the client sent, `agreed` the extensions the
/// server answered with ([`ServerResponse::extensions`](crate::ServerResponse::extensions)).
/// Returns `Ok(None)` when the server did not enable permessage-deflate, the agreed parameters
/// when it did, and [`HandshakeError::InvalidDeflateResponse`] (the client fails the
/// connection) when the answer is invalid or fits none of the offers: permessage-deflate
/// answered twice or not offered, an unknown, duplicate or malformed parameter, a
/// `client_max_window_bits` the client did not offer or larger than its hint, no
/// `server_no_context_takeover` or `server_max_window_bits` (no larger than asked) where the
/// client asked for them.
///
/// ```
/// use wsflow_handshake::{DeflateParams, HandshakeError, check_deflate_response, parse_extensions};
///
/// let offer = DeflateParams::new().with_server_max_window_bits(10).with_client_max_window_bits(None);
/// let answer = parse_extensions("permessage-deflate; server_max_window_bits=9; client_max_window_bits=8").unwrap();
/// let agreed = check_deflate_response(&[offer], &answer).unwrap().unwrap();
/// assert_eq!((agreed.server_window_bits(), agreed.client_window_bits()), (9, 8));
///
/// // The server ignored the request for a 10-bit window.
/// let answer = parse_extensions("permessage-deflate").unwrap();
/// assert!(matches!(
///     check_deflate_response(&[offer], &answer),
///     Err(HandshakeError::InvalidDeflateResponse { .. })
/// ));
/// ```
pub fn check_deflate_response(
    offered: &[DeflateParams],
    agreed: &[ExtensionOffer],
) -> Result<Option<DeflateParams>, HandshakeError> {
    let mut answers = agreed
        .iter()
        .filter(|extension| extension.name.eq_ignore_ascii_case(PERMESSAGE_DEFLATE));
    let Some(extension) = answers.next() else {
        return Ok(None);
    };
    let fail = |reason| HandshakeError::InvalidDeflateResponse {
        response: extension.to_string(),
        reason,
    };
    if answers.next().is_some() {
        return Err(fail("permessage-deflate is answered more than once"));
    }
    if offered.is_empty() {
        return Err(fail("permessage-deflate was not offered"));
    }
    let answer = DeflateParams::from_response(extension)?;
    let mut reason = "";
    for offer in offered {
        match fits(offer, &answer) {
            Ok(()) => return Ok(Some(answer)),
            Err(why) => reason = why,
        }
    }
    Err(fail(reason))
}

/// Whether `answer` is a valid answer to `offer`.
fn fits(offer: &DeflateParams, answer: &DeflateParams) -> Result<(), &'static str> {
    match (
        offer.client_max_window_bits,
        answer.client_max_window_bits.flatten(),
    ) {
        (None, Some(_)) => return Err("client_max_window_bits is answered but was not offered"),
        (Some(Some(hint)), Some(bits)) if bits > hint => {
            return Err("client_max_window_bits is answered larger than offered");
        }
        _ => {}
    }
    if offer.server_no_context_takeover && !answer.server_no_context_takeover {
        return Err("server_no_context_takeover was requested and not answered");
    }
    if let Some(requested) = offer.server_max_window_bits {
        match answer.server_max_window_bits {
            None => return Err("server_max_window_bits was requested and not answered"),
            Some(bits) if bits > requested => {
                return Err("server_max_window_bits is answered larger than requested");
            }
            Some(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extension::parse_extensions;

    fn one(value: &str) -> ExtensionOffer {
        let mut parsed = parse_extensions(value).unwrap();
        assert_eq!(parsed.len(), 1, "{value}");
        parsed.remove(0)
    }

    fn offer(value: &str) -> Result<DeflateParams, HandshakeError> {
        DeflateParams::from_offer(&one(value))
    }

    fn response(value: &str) -> Result<DeflateParams, HandshakeError> {
        DeflateParams::from_response(&one(value))
    }

    fn negotiate(offers: &str, server: &DeflateParams) -> Option<String> {
        negotiate_deflate(&parse_extensions(offers).unwrap(), server).map(|a| a.to_string())
    }

    fn check(
        offers: &[DeflateParams],
        answer: &str,
    ) -> Result<Option<DeflateParams>, HandshakeError> {
        check_deflate_response(offers, &parse_extensions(answer).unwrap())
    }

    #[test]
    fn every_parameter_is_read_in_offers() {
        assert_eq!(offer("permessage-deflate").unwrap(), DeflateParams::new());
        assert_eq!(
            offer(
                "Permessage-Deflate; server_no_context_takeover; CLIENT_NO_CONTEXT_TAKEOVER; \
                 server_max_window_bits=10; client_max_window_bits=\"8\""
            )
            .unwrap(),
            DeflateParams {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: Some(10),
                client_max_window_bits: Some(Some(8)),
            }
        );
        assert_eq!(
            offer("permessage-deflate; client_max_window_bits")
                .unwrap()
                .client_max_window_bits,
            Some(None)
        );
        for bits in 8..=15u8 {
            let parsed = offer(&format!(
                "permessage-deflate; server_max_window_bits={bits}"
            ));
            assert_eq!(parsed.unwrap().server_max_window_bits, Some(bits));
        }
    }

    #[test]
    fn invalid_or_duplicate_parameters_are_refused() {
        for bad in [
            "x-deflate",
            "permessage-deflate; unknown",
            "permessage-deflate; max_window_bits=10",
            "permessage-deflate; server_no_context_takeover=true",
            "permessage-deflate; client_no_context_takeover=\"\"",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=08",
            "permessage-deflate; server_max_window_bits=+9",
            "permessage-deflate; server_max_window_bits=9.0",
            "permessage-deflate; client_max_window_bits=0",
            "permessage-deflate; client_max_window_bits=\"1 0\"",
            "permessage-deflate; client_max_window_bits=abc",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
            "permessage-deflate; server_max_window_bits=10; Server_Max_Window_Bits=10",
        ] {
            assert!(
                matches!(offer(bad), Err(HandshakeError::InvalidDeflateOffer { .. })),
                "{bad:?} was accepted as an offer"
            );
            assert!(
                matches!(
                    response(bad),
                    Err(HandshakeError::InvalidDeflateResponse { .. })
                ),
                "{bad:?} was accepted as a response"
            );
        }
        // Only an answer needs client_max_window_bits' value.
        assert!(offer("permessage-deflate; client_max_window_bits").is_ok());
        assert!(response("permessage-deflate; client_max_window_bits").is_err());
    }

    #[test]
    fn params_write_back_as_they_read() {
        for value in [
            "permessage-deflate",
            "permessage-deflate; server_no_context_takeover",
            "permessage-deflate; client_no_context_takeover; client_max_window_bits",
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=8; client_max_window_bits=15",
        ] {
            assert_eq!(offer(value).unwrap().to_string(), value);
        }
    }

    #[test]
    fn the_server_answers_the_first_acceptable_offer() {
        let default = DeflateParams::new();
        assert_eq!(negotiate("", &default), None);
        assert_eq!(negotiate("x-foo, deflate-frame", &default), None);
        assert_eq!(
            negotiate("permessage-deflate", &default).as_deref(),
            Some("permessage-deflate")
        );
        // Invalid offers are skipped, the next one is taken.
        assert_eq!(
            negotiate(
                "permessage-deflate; bogus, \
                 permessage-deflate; server_max_window_bits=99, \
                 permessage-deflate; server_no_context_takeover, \
                 permessage-deflate",
                &default
            )
            .as_deref(),
            Some("permessage-deflate; server_no_context_takeover")
        );
        assert_eq!(negotiate("permessage-deflate; x=1", &default), None);
    }

    #[test]
    fn requests_of_the_client_are_honoured() {
        let default = DeflateParams::new();
        let cases = [
            (
                "permessage-deflate; server_no_context_takeover",
                "permessage-deflate; server_no_context_takeover",
            ),
            // A hint that the client does without context takeover needs no answer.
            (
                "permessage-deflate; client_no_context_takeover",
                "permessage-deflate",
            ),
            (
                "permessage-deflate; server_max_window_bits=8",
                "permessage-deflate; server_max_window_bits=8",
            ),
            (
                "permessage-deflate; server_max_window_bits=15",
                "permessage-deflate; server_max_window_bits=15",
            ),
            (
                "permessage-deflate; client_max_window_bits",
                "permessage-deflate",
            ),
            // A hint with a value lets the server inflate with a smaller window.
            (
                "permessage-deflate; client_max_window_bits=8",
                "permessage-deflate; client_max_window_bits=8",
            ),
            (
                "permessage-deflate; client_max_window_bits=15",
                "permessage-deflate",
            ),
        ];
        for (offers, expected) in cases {
            assert_eq!(
                negotiate(offers, &default).as_deref(),
                Some(expected),
                "{offers}"
            );
        }
    }

    #[test]
    fn the_server_applies_its_own_limits() {
        let server = DeflateParams::new()
            .with_server_no_context_takeover()
            .with_client_no_context_takeover()
            .with_server_max_window_bits(10)
            .with_client_max_window_bits(Some(11));
        // A client that cannot be limited is declined; the next offer can be.
        assert_eq!(
            negotiate(
                "permessage-deflate, permessage-deflate; client_max_window_bits",
                &server
            )
            .as_deref(),
            Some(
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                 server_max_window_bits=10; client_max_window_bits=11"
            )
        );
        assert_eq!(negotiate("permessage-deflate", &server), None);
        // The smaller of both limits wins, each way.
        let answer = negotiate_deflate(
            &parse_extensions(
                "permessage-deflate; server_max_window_bits=9; client_max_window_bits=13",
            )
            .unwrap(),
            &server,
        )
        .unwrap();
        assert_eq!(
            (answer.server_window_bits(), answer.client_window_bits()),
            (9, 11)
        );
        let answer = negotiate_deflate(
            &parse_extensions(
                "permessage-deflate; server_max_window_bits=12; client_max_window_bits=8",
            )
            .unwrap(),
            &server,
        )
        .unwrap();
        assert_eq!(
            (answer.server_window_bits(), answer.client_window_bits()),
            (10, 8)
        );
        // 15 is no limit.
        let unlimited = DeflateParams::new()
            .with_server_max_window_bits(15)
            .with_client_max_window_bits(Some(15));
        assert_eq!(
            negotiate("permessage-deflate", &unlimited).as_deref(),
            Some("permessage-deflate")
        );
    }

    #[test]
    fn autobahn_offers_are_accepted() {
        // What wstest's fuzzing client offers in sections 12 and 13.
        let default = DeflateParams::new();
        for (offers, expected) in [
            (
                "permessage-deflate; client_no_context_takeover; client_max_window_bits",
                "permessage-deflate",
            ),
            (
                "permessage-deflate; client_no_context_takeover; client_max_window_bits; \
                 server_no_context_takeover; server_max_window_bits=9",
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=9",
            ),
            (
                "permessage-deflate; client_no_context_takeover; client_max_window_bits; \
                 server_max_window_bits=15",
                "permessage-deflate; server_max_window_bits=15",
            ),
        ] {
            assert_eq!(negotiate(offers, &default).as_deref(), Some(expected));
        }
    }

    #[test]
    fn the_client_checks_the_answer_against_its_offer() {
        let plain = DeflateParams::new();
        let with_bits = DeflateParams::new().with_client_max_window_bits(None);
        let hinted = DeflateParams::new().with_client_max_window_bits(Some(10));
        let asking = DeflateParams::new()
            .with_server_no_context_takeover()
            .with_server_max_window_bits(10);
        assert_eq!(check(&[plain], "").unwrap(), None);
        assert_eq!(check(&[plain], "x-other").unwrap(), None);
        assert_eq!(check(&[plain], "permessage-deflate").unwrap(), Some(plain));
        // Allowed whatever the offer: no context takeover either way, a smaller server window.
        assert_eq!(
            check(
                &[plain],
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                 server_max_window_bits=8"
            )
            .unwrap()
            .unwrap()
            .server_window_bits(),
            8
        );
        assert_eq!(
            check(&[with_bits], "permessage-deflate; client_max_window_bits=8")
                .unwrap()
                .unwrap()
                .client_window_bits(),
            8
        );
        assert!(check(&[hinted], "permessage-deflate; client_max_window_bits=10").is_ok());
        assert!(
            check(
                &[asking],
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=9"
            )
            .is_ok()
        );
        for (offers, answer) in [
            (
                &[plain][..],
                "permessage-deflate; client_max_window_bits=10",
            ),
            (
                &[hinted][..],
                "permessage-deflate; client_max_window_bits=11",
            ),
            (
                &[asking][..],
                "permessage-deflate; server_max_window_bits=10",
            ),
            (
                &[asking][..],
                "permessage-deflate; server_no_context_takeover",
            ),
            (
                &[asking][..],
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=11",
            ),
            (
                &[with_bits][..],
                "permessage-deflate; client_max_window_bits",
            ),
            (&[plain][..], "permessage-deflate; foo"),
            (&[plain][..], "permessage-deflate; server_max_window_bits=7"),
            (
                &[plain][..],
                "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            ),
            (&[plain][..], "permessage-deflate, permessage-deflate"),
            (&[][..], "permessage-deflate"),
        ] {
            assert!(
                matches!(
                    check(offers, answer),
                    Err(HandshakeError::InvalidDeflateResponse { .. })
                ),
                "{answer:?} to {offers:?} was accepted"
            );
        }
        // With several offers, an answer that fits any of them is accepted.
        assert!(check(&[asking, plain], "permessage-deflate").is_ok());
        assert!(
            check(
                &[asking, with_bits],
                "permessage-deflate; client_max_window_bits=9"
            )
            .is_ok()
        );
    }

    fn params() -> impl proptest::strategy::Strategy<Value = DeflateParams> {
        use proptest::prelude::*;
        (
            any::<bool>(),
            any::<bool>(),
            proptest::option::of(8u8..=15),
            proptest::option::of(proptest::option::of(8u8..=15)),
        )
            .prop_map(|(snct, cnct, sbits, cbits)| DeflateParams {
                server_no_context_takeover: snct,
                client_no_context_takeover: cnct,
                server_max_window_bits: sbits,
                client_max_window_bits: cbits,
            })
    }

    proptest::proptest! {
        #[test]
        fn offers_survive_format_and_parse(params in params()) {
            let parsed = parse_extensions(&params.to_string()).unwrap();
            proptest::prop_assert_eq!(DeflateParams::from_offer(&parsed[0]).unwrap(), params);
        }

        #[test]
        fn every_answer_passes_the_clients_check(offer in params(), server in params()) {
            let offers = [offer.to_extension()];
            if let Some(answer) = negotiate_deflate(&offers, &server) {
                let written = parse_extensions(&answer.to_string()).unwrap();
                let checked = check_deflate_response(&[offer], &written).unwrap();
                proptest::prop_assert_eq!(checked, Some(answer));
                // The server's own wishes hold.
                let limit = |bits: Option<u8>| bits.unwrap_or(15);
                proptest::prop_assert!(answer.server_window_bits() <= limit(server.server_max_window_bits));
                proptest::prop_assert!(
                    answer.client_window_bits() <= limit(server.client_max_window_bits.flatten())
                );
                proptest::prop_assert!(answer.server_no_context_takeover >= server.server_no_context_takeover);
                proptest::prop_assert!(answer.client_no_context_takeover >= server.client_no_context_takeover);
            } else {
                // Declined only when the server must limit a client that cannot be limited.
                proptest::prop_assert!(offer.client_max_window_bits.is_none());
                proptest::prop_assert!(server.client_max_window_bits.flatten().is_some_and(|b| b < 15));
            }
        }

        #[test]
        fn arbitrary_values_never_panic(value in "[a-z_=;, \"0-9]{0,80}") {
            if let Ok(offers) = parse_extensions(&format!("permessage-deflate; {value}")) {
                let _ = negotiate_deflate(&offers, &DeflateParams::new());
                let _ = check_deflate_response(&[DeflateParams::new()], &offers);
                for offer in &offers {
                    if let Ok(params) = DeflateParams::from_offer(offer) {
                        let again = parse_extensions(&params.to_string()).unwrap();
                        proptest::prop_assert_eq!(DeflateParams::from_offer(&again[0]).unwrap(), params);
                    }
                }
            }
        }
    }
}
