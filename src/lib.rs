//! Shared helpers for wsflow's cross-crate integration tests (`tests/`) and benchmarks
//! (`benches/`). Not published.
