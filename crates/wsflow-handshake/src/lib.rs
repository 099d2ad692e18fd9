//! The sans-IO HTTP/1.1 upgrade handshake of wsflow, for servers and clients (filled by the handshake issue).
#![forbid(unsafe_code)]
