//! wsflow: an RFC 6455 WebSocket library (the facade; filled by the runtime adapters issue).
#![forbid(unsafe_code)]
