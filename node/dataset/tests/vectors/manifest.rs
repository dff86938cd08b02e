//! Manifest vectors: a small dataset written out file by file, its manifest bytes and its id.

use std::{fs, os::unix::fs::symlink, path::Path};

use hoard_dataset::{Manifest, NoProgress, pack};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

use crate::shared::{hex, unhex};

/// The inputs of each vector: what an implementer recreates on disk.
fn inputs() -> Vec<Value> {
    vec![
        json!({
            "name": "single file (k=1 m=1)",
            "k": 1,
            "m": 1,
            "directory": false,
            "files": [{ "path": "hello.txt", "contents": "hello, hoard\n" }],
            "directories": [],
            "links": [],
        }),
        json!({
            "name": "directory: files, an empty file, an empty folder and a link (k=2 m=1)",
            "k": 2,
            "m": 1,
            "directory": true,
            "files": [
                { "path": "README.md", "contents": "A manifest vector.\n" },
                { "path": "data/a.txt", "contents": "first file\n" },
                { "path": "data/b.txt", "contents": "second file, a little longer than the first\n" },
                { "path": "data/empty", "contents": "" },
            ],
            "directories": ["data", "empty-dir"],
            "links": [{ "path": "latest", "target": "data/a.txt" }],
        }),
    ]
}

/// Recreates a vector's dataset under `dir`; returns the path to pack.
fn build(input: &Value, dir: &Path) -> std::path::PathBuf {
    let list = |key: &str| input[key].as_array().expect("an array").clone();
    let str_of = |v: &Value, key: &str| v[key].as_str().expect("a string").to_owned();
    if input["directory"] == json!(false) {
        let file = &list("files")[0];
        let path = dir.join(str_of(file, "path"));
        fs::write(&path, str_of(file, "contents")).expect("write");
        return path;
    }
    let root = dir.join("dataset");
    fs::create_dir(&root).expect("mkdir");
    for d in list("directories") {
        fs::create_dir_all(root.join(d.as_str().expect("a path"))).expect("mkdir");
    }
    for f in list("files") {
        let path = root.join(str_of(&f, "path"));
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, str_of(&f, "contents")).expect("write");
    }
    for l in list("links") {
        let at = str_of(&l, "path");
        // A relative link from the link's folder up to the root, then down to the target.
        let text = "../".repeat(at.matches('/').count()) + &str_of(&l, "target");
        symlink(text, root.join(&at)).expect("symlink");
    }
    root
}

/// Packs a vector's dataset and returns the vector: its inputs and what packing gives.
fn vector(input: &Value) -> Value {
    let tmp = TempDir::new().expect("tmp");
    let path = build(input, tmp.path());
    let k = input["k"].as_u64().expect("k") as usize;
    let m = input["m"].as_u64().expect("m") as usize;
    let p = pack(&path, &tmp.path().join("packed"), k, m, &NoProgress).expect("pack");
    let bytes = p.manifest.encode();
    let mut v = input.clone();
    let out = v.as_object_mut().expect("an object");
    out.insert("manifest".into(), json!(hex(&bytes)));
    out.insert("manifestBytes".into(), json!(bytes.len()));
    out.insert("datasetId".into(), json!(p.id));
    out.insert("datasetRoot".into(), json!(p.manifest.root));
    out.insert("slotRoots".into(), json!(p.manifest.slot_roots));
    v
}

pub(crate) fn vectors() -> Vec<Value> {
    inputs().iter().map(vector).collect()
}

/// Each committed vector, rebuilt from nothing but the files it writes out, packs to the
/// committed manifest bytes and id; the bytes decode, and the id is their SHA-256.
#[test]
fn committed_manifest_vectors_rebuild_from_their_files() {
    let committed = crate::shared::committed();
    let cases = committed["manifests"]
        .as_array()
        .expect("a manifests array");
    assert_eq!(cases.len(), inputs().len());
    for c in cases {
        let rebuilt = vector(c);
        for key in ["manifest", "datasetId", "datasetRoot", "slotRoots"] {
            assert_eq!(rebuilt[key], c[key], "{}: {key}", c["name"]);
        }
        let bytes = unhex(c["manifest"].as_str().expect("hex"));
        let m = Manifest::decode(&bytes).expect("the vector decodes");
        assert_eq!(json!(m.id()), c["datasetId"]);
        assert_eq!(
            hex(&Sha256::digest(&bytes)),
            c["datasetId"].as_str().expect("hex")
        );
    }
}

/// The single-file vector, byte by byte as `docs/protocol.md` §4 spells it out.
#[test]
fn single_file_vector_layout() {
    let committed = crate::shared::committed();
    let bytes = unhex(committed["manifests"][0]["manifest"].as_str().expect("hex"));
    let m = Manifest::decode(&bytes).expect("decodes");
    let mut want = vec![
        0x02, // format 2
        0x01, 0x01, 0x01, // k = 1, m = 1, S = 1
        0x0d, // size 13
        0x00, // a single file
        0x01, // one entry
        0x09, // path: 9 bytes
    ];
    want.extend(b"hello.txt");
    want.extend([0x01, 0x00, 0x0d]); // File, offset 0, size 13
    want.push(0x02); // two slot roots, 32 raw bytes each
    want.extend(m.slot_roots[0].0);
    want.extend(m.slot_roots[1].0);
    want.extend(m.root.0); // the dataset root, 32 raw bytes
    assert_eq!(bytes, want);
    assert_eq!(bytes.len(), 117);
}

/// `docs/protocol.md` quotes the single-file vector and the field's constants; they must be the
/// ones the code and the reference use.
#[test]
fn the_protocol_document_quotes_the_vectors() {
    let doc = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/protocol.md"
    ))
    .expect("docs/protocol.md");
    let committed = crate::shared::committed();
    let v = &committed["manifests"][0];
    let id = v["datasetId"].as_str().expect("hex");
    assert!(doc.contains(&format!("dataset id is `{id}`")), "{id}");
    for h in [&v["slotRoots"][0], &v["slotRoots"][1], &v["datasetRoot"]] {
        let h = h.as_str().expect("hex").trim_start_matches("0x");
        assert!(doc.contains(h), "the document lacks {h}");
    }
    let basis: Vec<String> = crate::reed_solomon::gf::CANTOR_BASIS
        .iter()
        .map(|b| format!("0x{b:04X}"))
        .collect();
    let (first, second) = basis.split_at(8);
    assert!(doc.contains(&format!("β_0 … β_15 = {}", first.join(" "))));
    assert!(doc.contains(&format!("             {}\n", second.join(" "))));
    assert!(doc.contains(&format!(
        "the polynomial `0x{:X}`",
        crate::reed_solomon::gf::POLYNOMIAL
    )));
}
