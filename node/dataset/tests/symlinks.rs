//! Symlinks in a packed directory (`docs/protocol.md` §4, "Symlinks"): a link that leads inside
//! the dataset is a link entry (no bytes) restored as a relative symlink; a link to a file
//! outside is packed as that file; everything else is refused with the link's path named.

use std::{
    collections::BTreeMap,
    fs,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
};

use hoard_dataset::{
    DatasetError, Entry, EntryKind, LinkProblem, MANIFEST_FILE, Manifest, NoProgress,
    PackedDataset, followed_links, pack, unpack,
};
use proptest::prelude::*;
use tempfile::TempDir;

/// What is at each relative path under `root`, links not followed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir,
    File(Vec<u8>),
    Link(PathBuf),
}

fn snapshot(root: &Path) -> BTreeMap<String, Node> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
        for e in fs::read_dir(dir).expect("readable") {
            let p = e.expect("entry").path();
            let rel = p
                .strip_prefix(root)
                .expect("under root")
                .to_str()
                .expect("utf-8")
                .to_owned();
            let t = fs::symlink_metadata(&p).expect("stat").file_type();
            if t.is_symlink() {
                out.insert(rel, Node::Link(fs::read_link(&p).expect("link")));
            } else if t.is_dir() {
                out.insert(rel, Node::Dir);
                walk(root, &p, out);
            } else {
                out.insert(rel, Node::File(fs::read(&p).expect("readable")));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn write(path: &Path, bytes: &[u8]) {
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(path, bytes).expect("write");
}

fn link(target: impl AsRef<Path>, at: &Path) {
    fs::create_dir_all(at.parent().expect("parent")).expect("mkdir");
    symlink(target, at).expect("symlink");
}

/// Packs `input` 2+1 into `tmp/packed` and unpacks it into `tmp/out`.
fn round_trip(tmp: &Path, input: &Path) -> (Manifest, BTreeMap<String, Node>) {
    let packed = tmp.join("packed");
    let p = pack(input, &packed, 2, 1, &NoProgress).expect("pack");
    let out = tmp.join("out");
    let u = unpack(&packed, &out, &NoProgress).expect("unpack");
    assert_eq!(u.id, p.id);
    (p.manifest, snapshot(&out))
}

fn kind_of<'a>(m: &'a Manifest, path: &str) -> &'a EntryKind {
    &m.entries
        .iter()
        .find(|e| e.path == path)
        .unwrap_or_else(|| panic!("{path} not in the manifest"))
        .kind
}

fn link_to(target: &str) -> EntryKind {
    EntryKind::Link {
        target: target.into(),
    }
}

#[test]
fn links_inside_are_link_entries_and_come_back_as_relative_links() {
    let tmp = TempDir::new().expect("tmp");
    let input = tmp.path().join("in");
    let weights = vec![7u8; 100_000];
    write(&input.join("models/big.bin"), &weights);
    write(&input.join("docs/readme.txt"), b"hello");
    link("big.bin", &input.join("models/latest.bin")); // same folder
    link("../models/big.bin", &input.join("docs/weights.bin")); // up and over
    link("models", &input.join("current")); // a directory
    link(input.join("docs/readme.txt"), &input.join("README")); // absolute, but inside
    link("current/latest.bin", &input.join("chain")); // link → link → file

    let (m, out) = round_trip(tmp.path(), &input);
    // No second copy: the stream is the two real files.
    assert_eq!(m.size, 100_000 + 5);
    assert_eq!(kind_of(&m, "models/latest.bin"), &link_to("models/big.bin"));
    assert_eq!(kind_of(&m, "docs/weights.bin"), &link_to("models/big.bin"));
    assert_eq!(kind_of(&m, "current"), &link_to("models"));
    assert_eq!(kind_of(&m, "README"), &link_to("docs/readme.txt"));
    assert_eq!(kind_of(&m, "chain"), &link_to("models/big.bin"));

    let want: BTreeMap<String, Node> = [
        ("README", Node::Link("docs/readme.txt".into())),
        ("chain", Node::Link("models/big.bin".into())),
        ("current", Node::Link("models".into())),
        ("docs", Node::Dir),
        ("docs/readme.txt", Node::File(b"hello".to_vec())),
        ("docs/weights.bin", Node::Link("../models/big.bin".into())),
        ("models", Node::Dir),
        ("models/big.bin", Node::File(weights.clone())),
        ("models/latest.bin", Node::Link("big.bin".into())),
    ]
    .into_iter()
    .map(|(p, n)| (p.to_owned(), n))
    .collect();
    assert_eq!(out, want);
    // The restored links work.
    let restored = tmp.path().join("out");
    assert_eq!(
        fs::read(restored.join("docs/weights.bin")).ok(),
        Some(weights)
    );
    assert_eq!(
        fs::read(restored.join("current/latest.bin")).ok(),
        fs::read(restored.join("models/big.bin")).ok()
    );
}

/// A Hugging Face hub cache: `snapshots/<rev>/` holds links into `../../blobs/`.
fn hub_cache(root: &Path) -> Vec<u8> {
    let blob = (0..70_000u32)
        .map(|i| (i * 31 % 251) as u8)
        .collect::<Vec<_>>();
    write(&root.join("blobs/5f2a"), &blob);
    write(&root.join("blobs/9c1e"), b"{\"model_type\": \"x\"}");
    let snap = root.join("snapshots/abc123");
    link("../../blobs/5f2a", &snap.join("model.safetensors"));
    link("../../blobs/9c1e", &snap.join("config.json"));
    blob
}

#[test]
fn a_hub_snapshot_folder_is_packed_as_the_files_its_links_lead_to() {
    let tmp = TempDir::new().expect("tmp");
    let cache = tmp.path().join("models--x");
    let blob = hub_cache(&cache);
    let (m, out) = round_trip(tmp.path(), &cache.join("snapshots/abc123"));
    assert_eq!(m.size, blob.len() as u64 + 19);
    assert!(matches!(
        kind_of(&m, "model.safetensors"),
        EntryKind::File { .. }
    ));
    assert_eq!(out["model.safetensors"], Node::File(blob));
    assert_eq!(
        out["config.json"],
        Node::File(b"{\"model_type\": \"x\"}".to_vec())
    );
}

#[test]
fn the_whole_hub_cache_keeps_its_links_and_stores_each_blob_once() {
    let tmp = TempDir::new().expect("tmp");
    let cache = tmp.path().join("models--x");
    let blob = hub_cache(&cache);
    let (m, out) = round_trip(tmp.path(), &cache);
    assert_eq!(m.size, blob.len() as u64 + 19, "each blob once");
    assert_eq!(
        kind_of(&m, "snapshots/abc123/model.safetensors"),
        &link_to("blobs/5f2a")
    );
    assert_eq!(
        out["snapshots/abc123/model.safetensors"],
        Node::Link("../../blobs/5f2a".into())
    );
    assert_eq!(out["blobs/5f2a"], Node::File(blob));
}

/// The files whose bytes would leave through links are listed before anything is packed, so a
/// node can refuse its own secrets behind a link.
#[test]
fn followed_links_lists_what_leaves_through_links() {
    let tmp = TempDir::new().expect("tmp");
    let cache = tmp.path().join("models--x");
    hub_cache(&cache);
    let snap = cache.join("snapshots/abc123");
    let blobs = fs::canonicalize(cache.join("blobs")).expect("canonical");
    assert_eq!(
        followed_links(&snap).expect("scan"),
        vec![
            (snap.join("config.json"), blobs.join("9c1e")),
            (snap.join("model.safetensors"), blobs.join("5f2a")),
        ]
    );
    assert_eq!(followed_links(&cache).expect("scan"), vec![], "all inside");
    let single = tmp.path().join("weights");
    link(snap.join("model.safetensors"), &single);
    assert_eq!(
        followed_links(&single).expect("scan"),
        vec![(single.clone(), blobs.join("5f2a"))]
    );
    assert_eq!(followed_links(&blobs.join("5f2a")).expect("scan"), vec![]);
}

/// Packing `input` fails with a link error about `at`; nothing is left behind.
fn refused(tmp: &Path, input: &Path, at: &Path, want: LinkProblem, says: &str) {
    let out = tmp.join("packed");
    let err = pack(input, &out, 2, 1, &NoProgress).expect_err("refused");
    let msg = err.to_string();
    match err {
        DatasetError::Link { path, problem } => {
            assert_eq!((path.as_path(), problem), (at, want), "{msg}");
        }
        other => panic!("not a link error: {other}"),
    }
    assert!(msg.contains(&at.display().to_string()), "{msg}");
    assert!(msg.contains(says), "{msg} lacks {says:?}");
    assert!(!out.exists());
    let partial = fs::read_dir(tmp)
        .expect("ls")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().starts_with(".hoard"))
        })
        .count();
    assert_eq!(partial, 0, "no partial output");
}

#[test]
fn dangling_looping_and_outward_directory_links_are_refused_by_name() {
    let tmp = TempDir::new().expect("tmp");
    let input = tmp.path().join("in");
    write(&input.join("a.bin"), b"data");

    let at = input.join("gone");
    link("nothing-here", &at);
    refused(
        tmp.path(),
        &input,
        &at,
        LinkProblem::Dangling,
        "remove it or point it at a file",
    );
    fs::remove_file(&at).expect("rm");

    // Links pointing at each other: a → b → a (the walk meets one of them first).
    let (a, b) = (input.join("sub/a"), input.join("sub/b"));
    link("b", &a);
    link("a", &b);
    let err = pack(&input, &tmp.path().join("packed"), 2, 1, &NoProgress).expect_err("loop");
    assert!(
        matches!(&err, DatasetError::Link { path, problem: LinkProblem::Loop } if *path == a || *path == b),
        "{err}"
    );
    fs::remove_dir_all(input.join("sub")).expect("rm");
    let at = input.join("me");
    link("me", &at);
    refused(tmp.path(), &input, &at, LinkProblem::Loop, "never resolves");
    fs::remove_file(&at).expect("rm");

    let outside = tmp.path().join("elsewhere");
    fs::create_dir_all(&outside).expect("mkdir");
    let at = input.join("ext");
    link(&outside, &at);
    refused(
        tmp.path(),
        &input,
        &at,
        LinkProblem::OutsideDirectory {
            target: fs::canonicalize(&outside).expect("canonical"),
        },
        "copy the folder in",
    );
    fs::remove_file(&at).expect("rm");

    let at = input.join("self");
    link(".", &at);
    refused(
        tmp.path(),
        &input,
        &at,
        LinkProblem::DatasetRoot,
        "own root folder",
    );
    fs::remove_file(&at).expect("rm");

    // With the bad links gone the same tree packs.
    pack(&input, &tmp.path().join("packed"), 2, 1, &NoProgress).expect("packs");
}

#[test]
fn links_to_sockets_are_refused_like_sockets() {
    let tmp = TempDir::new().expect("tmp");
    let input = tmp.path().join("in");
    write(&input.join("a.bin"), b"data");
    let sock = tmp.path().join("s.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
    let at = input.join("sock");
    link(&sock, &at);
    let err = pack(&input, &tmp.path().join("p"), 2, 1, &NoProgress).expect_err("refused");
    assert!(
        matches!(&err, DatasetError::Unsupported(p) if p == &at),
        "{err}"
    );
    assert!(err.to_string().contains("FIFOs cannot"), "{err}");
}

/// A manifest is untrusted input: a link entry leading out of the output folder never decodes,
/// so unpack refuses the folder and writes nothing.
#[test]
fn unpack_refuses_a_manifest_whose_link_leads_outside() {
    let tmp = TempDir::new().expect("tmp");
    let input = tmp.path().join("in");
    write(&input.join("a.bin"), b"data");
    link("a.bin", &input.join("l"));
    let packed = tmp.path().join("packed");
    let good = pack(&input, &packed, 2, 1, &NoProgress).expect("pack");
    for evil in ["../../etc/passwd", "/etc/passwd", "a.bin/../..", "nope"] {
        let mut m = good.manifest.clone();
        m.entries[1] = Entry {
            path: "l".into(),
            kind: link_to(evil),
        };
        fs::write(packed.join(MANIFEST_FILE), m.encode()).expect("write");
        let err = unpack(&packed, &tmp.path().join("out"), &NoProgress).expect_err(evil);
        assert!(
            matches!(&err, DatasetError::BadManifest { reason, .. } if reason.contains("links to")),
            "{evil}: {err}"
        );
        assert!(!tmp.path().join("out").exists());
    }
    fs::write(packed.join(MANIFEST_FILE), good.manifest.encode()).expect("write");
    assert!(PackedDataset::open(&packed).is_ok());
}

/// Files as (path, size); links as (name, which file, point at the file's folder instead).
type TreeWithLinks = (Vec<(String, usize)>, Vec<(String, usize, bool)>);

fn tree_with_links() -> impl Strategy<Value = TreeWithLinks> {
    let name = "[a-c]{1,2}";
    let file = (prop::collection::vec(name, 0..=2), name).prop_map(|(d, f)| {
        d.into_iter()
            .chain([format!("{f}.bin")])
            .collect::<Vec<_>>()
            .join("/")
    });
    let files = prop::collection::btree_map(file, 1usize..70_000, 1..5)
        .prop_map(|m| m.into_iter().map(|(p, s)| (format!("f/{p}"), s)).collect());
    let links = prop::collection::btree_map(name, (0usize..8, any::<bool>()), 0..4)
        .prop_map(|m| m.into_iter().map(|(p, (i, d))| (p, i, d)).collect());
    (files, links)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// Inside links (to files and folders, at any depth) come back as the same links; links to
    /// files outside come back as copies of those files; the regular files are byte-identical.
    #[test]
    fn trees_with_links_round_trip(
        (files, links) in tree_with_links(), outside in prop::collection::vec(1usize..5_000, 0..3),
    ) {
        let tmp = TempDir::new().expect("tmp");
        let input = tmp.path().join("in");
        for (i, (path, len)) in files.iter().enumerate() {
            write(&input.join(path), &vec![i as u8 + 1; *len]);
        }
        let mut want = snapshot(&input);
        for (n, (at, i, folder)) in links.iter().enumerate() {
            let target = &files[i % files.len()].0;
            let target = if *folder { target.rsplit_once('/').map_or("f", |(d, _)| d) } else { target };
            let at = format!("l/{n}/{at}");
            link(input.join(target), &input.join(&at));
            let depth = at.matches('/').count();
            want.insert("l".into(), Node::Dir);
            want.insert(format!("l/{n}"), Node::Dir);
            want.insert(at, Node::Link(format!("{}{target}", "../".repeat(depth)).into()));
        }
        for (n, len) in outside.iter().enumerate() {
            let ext = tmp.path().join(format!("ext-{n}"));
            write(&ext, &vec![0xee; *len]);
            link(&ext, &input.join(format!("x{n}")));
            want.insert(format!("x{n}"), Node::File(vec![0xee; *len]));
        }
        let (m, out) = round_trip(tmp.path(), &input);
        let stored: usize = files.iter().map(|(_, s)| s).sum::<usize>() + outside.iter().sum::<usize>();
        prop_assert_eq!(m.size, stored as u64);
        prop_assert_eq!(out, want);
    }
}
