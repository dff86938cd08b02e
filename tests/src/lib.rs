//! hoard's end-to-end test crate: multi-node networks (a real anvil chain, the real contracts,
//! several `hoard` nodes over real libp2p sockets) driven from `tests/tests/*.rs`.
//!
//! It holds no tests yet: the node that these tests start lands with the node issue. Single-binary
//! behaviour is tested where the binary lives (`node/hoard/tests/cli.rs`), the dataset pipeline in
//! `node/dataset/tests`, and the prover in `prover/tests`.
