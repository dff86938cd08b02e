//! Reading and updating the shared `testdata/vectors.json`: each test owns some top-level keys
//! and leaves the others alone.

use std::{fs, io::Write, path::Path};

use serde_json::{Map, Value};

/// The shared vectors file.
pub(crate) const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/vectors.json");

/// `0x`-prefixed lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

/// The bytes of `0x`-prefixed hex.
pub(crate) fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s.strip_prefix("0x").expect("0x prefix")).expect("hex")
}

/// The committed file.
pub(crate) fn committed() -> Value {
    let text = fs::read_to_string(PATH).expect("testdata/vectors.json is readable");
    serde_json::from_str(&text).expect("testdata/vectors.json is JSON")
}

/// Fails unless every key of `fresh` has that value in the committed file (which must also be
/// in its canonical pretty form); with `UPDATE_VECTORS` set, writes them in instead.
pub(crate) fn check_or_update(fresh: Map<String, Value>, rerun: &str) {
    let text = fs::read_to_string(PATH).unwrap_or_default();
    let mut all: Map<String, Value> = serde_json::from_str(&text).unwrap_or_default();
    if std::env::var_os("UPDATE_VECTORS").is_some() {
        all.extend(fresh);
        let out = serde_json::to_string_pretty(&all).expect("serialisable") + "\n";
        let dir = Path::new(PATH).parent().expect("in a folder");
        let mut tmp = tempfile::NamedTempFile::new_in(dir).expect("temporary file");
        tmp.write_all(out.as_bytes()).expect("write");
        tmp.as_file().sync_all().expect("sync");
        tmp.persist(PATH).expect("rename into place");
        return;
    }
    for (key, value) in &fresh {
        assert!(
            all.get(key) == Some(value),
            "testdata/vectors.json key {key:?} is out of date with the code; if the change is \
             intended, run `UPDATE_VECTORS=1 {rerun}` and commit the file"
        );
    }
    assert!(
        serde_json::to_string_pretty(&all).expect("serialisable") + "\n" == text,
        "testdata/vectors.json is not in its canonical form; run `UPDATE_VECTORS=1 {rerun}`"
    );
}
