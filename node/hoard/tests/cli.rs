//! The `hoard` binary as a user runs it: exit codes, messages, JSON output, files left behind.

use std::{fs, path::Path, process::Command};

use serde_json::Value;
use tempfile::TempDir;

fn hoard(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hoard"))
        .args(args)
        .output()
        .expect("hoard runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (ok, stdout, stderr) = hoard(&all);
    assert!(ok, "hoard {args:?} failed: {stderr}");
    serde_json::from_str(&stdout).expect("JSON on stdout")
}

fn p(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

/// A 2+2 packed dataset of a directory with two files.
fn packed(tmp: &TempDir) -> (std::path::PathBuf, std::path::PathBuf) {
    let input = tmp.path().join("in");
    fs::create_dir_all(input.join("d")).expect("mkdir");
    fs::write(input.join("a"), vec![7u8; 300_000]).expect("write");
    fs::write(input.join("d/b"), b"hello").expect("write");
    let out = tmp.path().join("packed");
    let r = json(&["pack", p(&input), "-k", "2", "-m", "2", "--out", p(&out)]);
    assert_eq!(r["dataSlots"], 2);
    assert_eq!(r["files"], 2);
    (input, out)
}

#[test]
fn pack_lose_m_unpack_is_identical_and_m_plus_one_fails() {
    let tmp = TempDir::new().expect("tmp");
    let (input, packed) = packed(&tmp);
    fs::remove_file(packed.join("slot-000.bin")).expect("rm");
    fs::remove_file(packed.join("slot-001.bin")).expect("rm");
    let out = tmp.path().join("out");
    let r = json(&["unpack", p(&packed), "--out", p(&out)]);
    assert_eq!(r["badSlots"].as_array().map(Vec::len), Some(2));
    assert_eq!(fs::read(out.join("a")).ok(), fs::read(input.join("a")).ok());
    assert_eq!(fs::read(out.join("d/b")).ok(), Some(b"hello".to_vec()));

    fs::remove_file(packed.join("slot-002.bin")).expect("rm");
    let (ok, stdout, stderr) =
        hoard(&["unpack", p(&packed), "--out", p(&tmp.path().join("again"))]);
    assert!(!ok);
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("2 good slots are needed, 1 usable"),
        "{stderr}"
    );
    assert!(!tmp.path().join("again").exists());
}

#[test]
fn proof_round_trip_and_a_flipped_slot_byte_breaks_it() {
    let tmp = TempDir::new().expect("tmp");
    let (_, packed) = packed(&tmp);
    let seed = format!("0x{}", "ab".repeat(32));
    let proof = tmp.path().join("proof.json");
    let create = [
        "proof",
        "create",
        p(&packed),
        "--slot",
        "3",
        "--seed",
        &seed,
        "--samples",
        "64",
        "--out",
    ];
    let mut args = create.to_vec();
    args.push(p(&proof));
    json(&args);
    let r = json(&["proof", "verify", p(&proof), "--dir", p(&packed)]);
    assert_eq!(r["valid"], true);

    // A forged cell is rejected.
    let mut doc: Value =
        serde_json::from_str(&fs::read_to_string(&proof).expect("read")).expect("json");
    let hex = doc["proof"].as_str().expect("hex").to_owned();
    let flipped = if &hex[2..3] == "0" { "1" } else { "0" };
    doc["proof"] = Value::String(format!("0x{flipped}{}", &hex[3..]));
    let forged = tmp.path().join("forged.json");
    fs::write(&forged, doc.to_string()).expect("write");
    let (ok, _, stderr) = hoard(&["proof", "verify", p(&forged)]);
    assert!(!ok);
    assert!(
        stderr.contains("proof does not match the slot root"),
        "{stderr}"
    );

    // Damage every block of slot 3: the host cannot prove it any more.
    let slot = packed.join("slot-003.bin");
    let mut bytes = fs::read(&slot).expect("read");
    for b in bytes.iter_mut().step_by(256) {
        *b ^= 1;
    }
    fs::write(&slot, bytes).expect("write");
    let mut args = create.to_vec();
    let again = tmp.path().join("again.json");
    args.push(p(&again));
    let (ok, _, stderr) = hoard(&args);
    assert!(!ok);
    assert!(
        stderr.contains("does not match its committed root"),
        "{stderr}"
    );
    assert!(!again.exists());
}

#[test]
fn bad_input_gets_a_clear_message_and_non_zero_exit() {
    let tmp = TempDir::new().expect("tmp");
    let file = tmp.path().join("f");
    fs::write(&file, b"data").expect("write");
    let out = tmp.path().join("o");
    let cases: &[(&[&str], &str)] = &[
        (
            &["pack", "/nonexistent/x", "--out", p(&out)],
            "does not exist",
        ),
        (
            &["pack", p(&file), "-k", "0", "--out", p(&out)],
            "data slots (k) must be at least 1",
        ),
        (
            &["pack", p(&file), "-m", "0", "--out", p(&out)],
            "parity slots (m) must be at least 1",
        ),
        (
            &["pack", p(&file), "-k", "250", "-m", "7", "--out", p(&out)],
            "supported maximum of 256",
        ),
        (
            &["unpack", p(tmp.path()), "--out", p(&out)],
            "has no manifest",
        ),
        (&["proof", "verify", p(&file)], "is not a proof document"),
        (
            &[
                "proof",
                "create",
                p(tmp.path()),
                "--slot",
                "0",
                "--seed",
                "0x12",
            ],
            "expected 32 bytes",
        ),
    ];
    for (args, want) in cases {
        let (ok, _, stderr) = hoard(args);
        assert!(!ok, "{args:?} succeeded");
        assert!(stderr.contains(want), "{args:?}: {stderr:?} lacks {want:?}");
    }
    assert!(!out.exists(), "nothing written for refused input");
}

/// `hoard node run` refuses to start with a clear cause: no key, no deployment file, no chain.
#[test]
fn node_run_names_what_is_missing() {
    let tmp = TempDir::new().expect("tempdir");
    let data = tmp.path().join("node");
    let deployment = tmp.path().join("deployment.json");
    let run = |key: Option<&str>, deployment: &Path| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hoard"));
        cmd.args([
            "node",
            "run",
            "--data-dir",
            p(&data),
            "--api",
            "127.0.0.1:0",
        ])
        .args([
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--rpc-url",
            "http://127.0.0.1:9",
        ])
        .args(["--deployment", p(deployment)])
        .env_remove("HOARD_PRIVATE_KEY")
        .env_remove("HOARD_CONFIG");
        if let Some(k) = key {
            cmd.env("HOARD_PRIVATE_KEY", k);
        }
        let out = cmd.output().expect("run hoard");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let key = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

    let (ok, err) = run(None, &deployment);
    assert!(
        !ok && err.contains("no chain key: set HOARD_PRIVATE_KEY"),
        "{err}"
    );

    let (ok, err) = run(Some(key), &deployment);
    assert!(!ok && err.contains("deployment.json"), "{err}");

    // A well-formed deployment file (docs/contracts.md, "Deployment file") for a chain that is
    // not there.
    fs::write(
        &deployment,
        r#"{"chainId": 31337, "marketplace": "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
            "token": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
            "randomness": "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512", "deploymentBlock": 8,
            "periodLength": 64, "graceBlocks": 64, "maxMissed": 3, "slashBps": 1000,
            "reporterRewardBps": 2500, "repairRewardBps": 1000}"#,
    )
    .expect("write a deployment file");
    let (ok, err) = run(Some(key), &deployment);
    assert!(
        !ok && err.contains("cannot reach the chain at http://127.0.0.1:9"),
        "{err}"
    );
}

/// The config file's `data_dir` is used (the CLI's own `--node-data-dir` default once hid it),
/// and a config file that cannot be read is named with its cause, once.
#[test]
fn node_run_takes_data_dir_from_the_config_file() {
    let tmp = TempDir::new().expect("tempdir");
    let config = tmp.path().join("node.toml");
    fs::write(
        &config,
        "data_dir = \"from-file\"\n[chain]\ndeployment = \"missing.json\"\n",
    )
    .expect("write the config");
    let out = Command::new(env!("CARGO_BIN_EXE_hoard"))
        .args(["node", "run", "--config", p(&config)])
        .current_dir(tmp.path())
        .env_remove("HOARD_DATA_DIR")
        .env_remove("HOARD_DEPLOYMENT")
        .env(
            "HOARD_PRIVATE_KEY",
            "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
        )
        .output()
        .expect("run hoard");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("missing.json"),
        "{err}"
    );
    assert!(tmp.path().join("from-file").is_dir(), "{err}");
    assert!(!tmp.path().join(".hoard").exists(), "{err}");

    let (ok, _, err) = hoard(&["node", "run", "--config", p(&tmp.path().join("none.toml"))]);
    assert!(!ok && err.contains("cannot read the config file"), "{err}");
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");
}

/// A reader that goes away (`hoard status … | head -1`) ends the command quietly, not in a panic.
#[test]
fn a_closed_stdout_is_not_a_panic() {
    let tmp = TempDir::new().expect("tempdir");
    let file = tmp.path().join("f");
    fs::write(&file, b"data").expect("write");
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_hoard"))
        .args(["pack", p(&file), "--out", p(&tmp.path().join("o"))])
        .stdout(writer)
        .output()
        .expect("run hoard");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
