//! The sans-IO WebSocket connection state machine of wsflow (filled by the connection core issue).
#![forbid(unsafe_code)]
