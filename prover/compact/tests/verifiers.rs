//! The committed Solidity verifiers are the generator's output for the devnet keys: this fails if
//! `contracts/src/verifiers/CompactVerifier*.sol` differs from a fresh set-up from the published
//! seed. `UPDATE_VERIFIERS=1` rewrites them.
//!
//! The large circuit's set-up takes minutes and about 4 GiB, so its check is `#[ignore]`d and not
//! in CI's run: run it with `--include-ignored` whenever the circuit changes.

mod common;

use hoard_compact::{DEVNET_SEED, Keys, Shape, solidity};

fn check(shape: Shape, keys: &Keys) {
    let name = solidity::contract_name(shape);
    let path = format!(
        "{}/../../contracts/src/verifiers/{name}.sol",
        env!("CARGO_MANIFEST_DIR")
    );
    let fresh = solidity::verifier_source(shape, keys.vk(), solidity::DEVNET_ORIGIN);
    if std::env::var_os("UPDATE_VERIFIERS").is_some() {
        std::fs::write(&path, &fresh).expect("write the verifier");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "{path} does not match the devnet key; if the circuit changed on purpose, bump \
         CIRCUIT_VERSION, run `UPDATE_VERIFIERS=1 cargo test -p hoard-compact --release --test \
         verifiers -- --include-ignored`, `scripts/contracts --update`, and commit both"
    );
}

#[test]
fn small_verifier_matches_the_devnet_key() {
    check(Shape::SMALL, common::small_keys());
}

#[test]
#[ignore = "a minute and 4 GiB of set-up; run with --include-ignored"]
fn large_verifier_matches_the_devnet_key() {
    let keys = Keys::setup(Shape::LARGE, DEVNET_SEED).expect("set-up");
    check(Shape::LARGE, &keys);
}
