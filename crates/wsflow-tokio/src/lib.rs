//! Tokio glue for wsflow: sockets and timers (filled by the runtime adapters issue).
#![forbid(unsafe_code)]
