//! The chain client against a real anvil (1-second blocks) with the contracts deployed from the
//! committed artifacts. Every test starts its own anvil, so they run in parallel. One test binary
//! (modules below) so alloy is linked once.

mod common;
mod connect;
mod events;
mod lifecycle;
mod transactions;
