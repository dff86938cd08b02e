//! Pack → lose or damage slots → unpack, on real files.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use hoard_dataset::{
    DatasetError, MANIFEST_FILE, NoProgress, PackedDataset, SlotProblem, pack, slot_data_file,
    slot_roots_file, unpack,
};
use hoard_prover::{BLOCK_SIZE, LayoutError, SlotIndex};
use proptest::prelude::*;
use tempfile::TempDir;

/// Every entry under `root`: relative path → `None` for a directory, file bytes otherwise.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Option<Vec<u8>>>) {
        for e in fs::read_dir(dir).expect("readable") {
            let p = e.expect("entry").path();
            let rel = p.strip_prefix(root).expect("under root").to_owned();
            if p.is_dir() {
                out.insert(rel, None);
                walk(root, &p, out);
            } else {
                out.insert(rel, Some(fs::read(&p).expect("readable")));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Deterministic bytes that differ per file.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn write_tree(root: &Path, files: &[(String, usize)], empty_dirs: &[String]) {
    fs::create_dir_all(root).expect("mkdir");
    for (i, (path, len)) in files.iter().enumerate() {
        let p = root.join(path);
        fs::create_dir_all(p.parent().expect("has parent")).expect("mkdir");
        fs::write(&p, bytes(i as u64 + 1, *len)).expect("write");
    }
    for d in empty_dirs {
        fs::create_dir_all(root.join(d)).expect("mkdir");
    }
}

fn tree_strategy() -> impl Strategy<Value = (Vec<(String, usize)>, Vec<String>)> {
    let name = "[a-c]{1,2}";
    let path = prop::collection::vec(name, 1..=3).prop_map(|c| c.join("/"));
    // Files end in ".bin" so that no file shares its path with a directory.
    let file = (prop::collection::vec(name, 0..=2), name).prop_map(|(d, f)| {
        d.into_iter()
            .chain([format!("{f}.bin")])
            .collect::<Vec<_>>()
            .join("/")
    });
    let size = prop_oneof![
        0usize..3,
        1usize..5000,
        (BLOCK_SIZE - 2)..(BLOCK_SIZE + 2),
        100_000usize..300_000
    ];
    let files = prop::collection::btree_map(file, size, 1..6)
        .prop_map(|m| m.into_iter().map(|(p, s)| (format!("f/{p}"), s)).collect());
    let dirs = prop::collection::vec(path, 0..2)
        .prop_map(|d| d.into_iter().map(|p| format!("e/{p}")).collect());
    (files, dirs)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn any_m_lost_slots_restore_byte_identical(
        (files, dirs) in tree_strategy(), k in 1usize..=5, m in 1usize..=3, lose in prop::collection::btree_set(0usize..8, 0..=3),
    ) {
        prop_assume!(files.iter().any(|(_, s)| *s > 0));
        let tmp = TempDir::new().expect("tmp");
        let input = tmp.path().join("in");
        write_tree(&input, &files, &dirs);
        let packed = tmp.path().join("packed");
        let p = pack(&input, &packed, k, m, &NoProgress).expect("pack");
        // Lose up to m slots, chosen by proptest among all k + m.
        let lost: Vec<usize> = lose.into_iter().filter(|i| *i < k + m).take(m).collect();
        for i in &lost {
            fs::remove_file(packed.join(slot_data_file(SlotIndex(*i as u16)))).expect("rm");
        }
        let out = tmp.path().join("out");
        let u = unpack(&packed, &out, &NoProgress).expect("unpack");
        prop_assert_eq!(u.id, p.id);
        prop_assert_eq!(u.problems.len(), lost.len());
        prop_assert_eq!(u.decoded_stripes > 0, lost.iter().any(|i| *i < k));
        prop_assert_eq!(snapshot(&out), snapshot(&input));
    }
}

struct Fixture {
    tmp: TempDir,
    input: PathBuf,
    packed: PathBuf,
}

/// A 4+2 packed directory of about 1 MiB (4 blocks per slot).
fn fixture() -> Fixture {
    let tmp = TempDir::new().expect("tmp");
    let input = tmp.path().join("in");
    write_tree(
        &input,
        &[
            ("a.bin".into(), 700_000),
            ("sub/b.bin".into(), 300_000),
            ("sub/empty".into(), 0),
        ],
        &["nothing/here".into()],
    );
    let packed = tmp.path().join("packed");
    pack(&input, &packed, 4, 2, &NoProgress).expect("pack");
    Fixture { tmp, input, packed }
}

impl Fixture {
    fn slot(&self, i: u16) -> PathBuf {
        self.packed.join(slot_data_file(SlotIndex(i)))
    }
    fn unpack(&self) -> Result<hoard_dataset::Unpacked, DatasetError> {
        unpack(&self.packed, &self.tmp.path().join("out"), &NoProgress)
    }
}

fn flip(path: &Path, at: usize) {
    let mut b = fs::read(path).expect("read");
    b[at] ^= 0x01;
    fs::write(path, b).expect("write");
}

#[test]
fn one_flipped_byte_is_caught_on_restore_and_routed_around() {
    let f = fixture();
    flip(&f.slot(1), 3 * BLOCK_SIZE + 17);
    let u = f.unpack().expect("restores from the other slots");
    assert_eq!(
        u.problems,
        vec![(SlotIndex(1), SlotProblem::CorruptBlock { block: 3 })]
    );
    assert!(u.decoded_stripes > 0);
    assert_eq!(snapshot(&f.tmp.path().join("out")), snapshot(&f.input));
}

#[test]
fn m_plus_one_lost_slots_give_a_clear_error_and_no_output() {
    let f = fixture();
    for i in [0, 3, 5] {
        fs::remove_file(f.slot(i)).expect("rm");
    }
    let err = f.unpack().expect_err("3 of 6 slots lost with m = 2");
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            DatasetError::NotEnoughSlots {
                needed: 4,
                usable: 3,
                ..
            }
        ),
        "{msg}"
    );
    assert!(msg.contains("slot 3: missing"), "{msg}");
    assert!(!f.tmp.path().join("out").exists());
    let leftovers: Vec<_> = fs::read_dir(f.tmp.path())
        .expect("ls")
        .map(|e| e.expect("e").file_name())
        .collect();
    assert_eq!(leftovers.len(), 2, "no partial output left: {leftovers:?}");
}

#[test]
fn damage_found_mid_restore_with_too_few_spares_fails_cleanly() {
    let f = fixture();
    fs::remove_file(f.slot(4)).expect("rm");
    fs::remove_file(f.slot(5)).expect("rm");
    flip(&f.slot(2), 2 * BLOCK_SIZE);
    let err = f.unpack().expect_err("only 3 good slots");
    assert!(
        err.to_string()
            .contains("slot 2: block 2 does not match its root"),
        "{err}"
    );
    assert!(!f.tmp.path().join("out").exists());
}

#[test]
fn truncated_swapped_and_foreign_slots_are_named() {
    let f = fixture();
    let data = fs::read(f.slot(0)).expect("read");
    fs::write(f.slot(0), &data[..data.len() - 1]).expect("truncate");
    let (s1, s2) = (f.slot(1), f.slot(2));
    let (r1, r2) = (
        f.packed.join(slot_roots_file(SlotIndex(1))),
        f.packed.join(slot_roots_file(SlotIndex(2))),
    );
    for (a, b) in [(&s1, &s2), (&r1, &r2)] {
        let tmp = a.with_extension("tmp");
        fs::rename(a, &tmp).expect("mv");
        fs::rename(b, a).expect("mv");
        fs::rename(&tmp, b).expect("mv");
    }
    // Slot 3 replaced by a slot of another dataset.
    let other = TempDir::new().expect("tmp");
    fs::write(other.path().join("x"), bytes(99, 1_000_000)).expect("write");
    pack(
        &other.path().join("x"),
        &other.path().join("p"),
        4,
        2,
        &NoProgress,
    )
    .expect("pack");
    for name in [slot_data_file(SlotIndex(3)), slot_roots_file(SlotIndex(3))] {
        fs::copy(other.path().join("p").join(&name), f.packed.join(&name)).expect("cp");
    }
    let msg = f.unpack().expect_err("4 damaged slots").to_string();
    for want in [
        "slot 0: 262143 bytes instead of 262144",
        "slot 1: holds slot 2's data (files swapped)",
        "slot 2: holds slot 1's data (files swapped)",
        "slot 3: its block roots belong to no slot of this dataset",
    ] {
        assert!(msg.contains(want), "missing {want:?} in:\n{msg}");
    }
}

#[test]
fn tampered_manifest_is_refused() {
    let f = fixture();
    let path = f.packed.join(MANIFEST_FILE);
    let len = fs::metadata(&path).expect("stat").len() as usize;
    flip(&path, len - 5); // inside the dataset root
    let err = PackedDataset::open(&f.packed).expect_err("tampered");
    assert!(matches!(err, DatasetError::BadManifest { .. }), "{err}");
    fs::remove_file(&path).expect("rm");
    assert!(matches!(f.unpack(), Err(DatasetError::NoManifest(_))));
}

#[test]
fn single_file_round_trip_into_folder_or_path() {
    let tmp = TempDir::new().expect("tmp");
    let file = tmp.path().join("weights.bin");
    fs::write(&file, bytes(5, 200_001)).expect("write");
    let packed = tmp.path().join("p");
    pack(&file, &packed, 2, 1, &NoProgress).expect("pack");
    let u = unpack(&packed, &tmp.path().join("restored.bin"), &NoProgress).expect("unpack");
    assert_eq!(
        fs::read(&u.out).expect("read"),
        fs::read(&file).expect("read")
    );
    let dir = tmp.path().join("into");
    fs::create_dir(&dir).expect("mkdir");
    let u = unpack(&packed, &dir, &NoProgress).expect("unpack");
    assert_eq!(u.out, dir.join("weights.bin"));
    assert!(matches!(
        unpack(&packed, &dir, &NoProgress),
        Err(DatasetError::OutputExists(_))
    ));
}

#[test]
fn bad_pack_input_is_refused_and_writes_nothing() {
    let tmp = TempDir::new().expect("tmp");
    let out = tmp.path().join("out");
    let check = |input: &Path, k, m, want: &str| {
        let err = pack(input, &out, k, m, &NoProgress).expect_err(want);
        assert!(err.to_string().contains(want), "{err} lacks {want:?}");
        let left: Vec<_> = fs::read_dir(tmp.path())
            .expect("ls")
            .map(|e| e.expect("e").file_name())
            .collect();
        assert!(
            !left
                .iter()
                .any(|n| n.to_string_lossy().starts_with(".hoard")),
            "{left:?}"
        );
    };
    check(&tmp.path().join("nope"), 4, 2, "does not exist");
    let empty_file = tmp.path().join("empty");
    fs::write(&empty_file, b"").expect("write");
    check(&empty_file, 4, 2, "holds no data");
    let empty_dir = tmp.path().join("emptydir");
    fs::create_dir_all(empty_dir.join("sub")).expect("mkdir");
    check(&empty_dir, 4, 2, "holds no data");
    let file = tmp.path().join("data");
    fs::write(&file, b"x").expect("write");
    check(&file, 0, 2, &LayoutError::NoDataSlots.to_string());
    check(&file, 4, 0, &LayoutError::NoParitySlots.to_string());
    check(&file, 200, 57, "more than the supported maximum of 256");
    fs::create_dir_all(out.join("x")).expect("mkdir");
    check(&file, 4, 2, "already exists and is not empty");
    assert_eq!(
        fs::read_dir(&out).expect("ls").count(),
        1,
        "the existing output is untouched"
    );
}

/// A lost data slot and a lost parity slot are each rebuilt from the others, bit for bit.
#[test]
fn rebuild_restores_any_lost_slot_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("input.bin");
    let bytes: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&input, &bytes).expect("write input");
    let packed_dir = dir.path().join("packed");
    hoard_dataset::pack(&input, &packed_dir, 3, 2, &hoard_dataset::NoProgress).expect("pack");
    for lost in [1u16, 4] {
        let data = packed_dir.join(hoard_dataset::slot_data_file(hoard_prover::SlotIndex(lost)));
        let roots = packed_dir.join(hoard_dataset::slot_roots_file(hoard_prover::SlotIndex(
            lost,
        )));
        let original = std::fs::read(&data).expect("read slot");
        std::fs::remove_file(&data).expect("remove");
        std::fs::remove_file(&roots).expect("remove roots");
        hoard_dataset::rebuild_slot(
            &packed_dir,
            hoard_prover::SlotIndex(lost),
            &hoard_dataset::NoProgress,
        )
        .expect("rebuild");
        assert_eq!(
            std::fs::read(&data).expect("rebuilt"),
            original,
            "slot {lost}"
        );
    }
}
