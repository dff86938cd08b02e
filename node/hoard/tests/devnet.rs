//! `hoard devnet` end to end, as a user runs it: the built binary, real anvil, real node
//! processes (and Prometheus when installed). Each test checks afterwards that nothing the devnet
//! started is still running.

use std::{
    fs,
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

const HOARD: &str = env!("CARGO_BIN_EXE_hoard");

/// Ports for one devnet, all free when chosen.
struct Ports {
    anvil: u16,
    api_base: u16,
    prometheus: u16,
    nodes: u16,
}

impl Ports {
    /// One run of free ports ([`hoard_tests::free_ports`]): 2 per node (API, p2p), then
    /// anvil's and Prometheus'.
    fn pick(hosts: u16) -> Self {
        let nodes = hosts + 1;
        let base = hoard_tests::free_ports(2 * nodes + 2).expect("a run of free ports");
        Self {
            api_base: base,
            anvil: base + 2 * nodes,
            prometheus: base + 2 * nodes + 1,
            nodes,
        }
    }

    fn args(&self) -> Vec<String> {
        vec![
            "--port".into(),
            self.anvil.to_string(),
            "--api-base-port".into(),
            self.api_base.to_string(),
            "--prometheus-port".into(),
            self.prometheus.to_string(),
        ]
    }

    /// Fails if anything still listens on a port of this devnet.
    fn assert_all_closed(&self) {
        for port in [self.anvil, self.prometheus] {
            assert!(
                TcpListener::bind(("127.0.0.1", port)).is_ok(),
                "port {port} is still taken after the devnet exited"
            );
        }
        for i in 0..self.nodes {
            let port = self.api_base + 2 * i;
            assert!(
                TcpStream::connect(("127.0.0.1", port)).is_err(),
                "a node still answers on port {port} after the devnet exited"
            );
        }
    }
}

/// Fails if any process still runs with `dir` on its command line (anvil's --state, the nodes'
/// --data-dir and Prometheus' --config.file all point into it).
fn assert_no_process_uses(dir: &Path) {
    let needle = dir.to_string_lossy().into_owned();
    let mut stray = Vec::new();
    for entry in fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&needle) {
            stray.push(cmdline);
        }
    }
    assert!(stray.is_empty(), "processes left running: {stray:#?}");
}

fn prometheus_installed() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join("prometheus").is_file()))
}

/// Starts `hoard devnet` with `args`, its output in files under `out`.
fn spawn(args: &[String], out: &Path, name: &str) -> (Child, PathBuf, PathBuf) {
    let (stdout, stderr) = (
        out.join(format!("{name}.out")),
        out.join(format!("{name}.err")),
    );
    let child = Command::new(HOARD)
        .arg("devnet")
        .args(args)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&stdout).expect("stdout file"))
        .stderr(fs::File::create(&stderr).expect("stderr file"))
        .spawn()
        .expect("starting hoard devnet");
    (child, stdout, stderr)
}

/// Waits for `child`; SIGTERM (then a failed test) if it outlives `timeout`.
fn wait(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("waiting for the devnet") {
            return status;
        }
        if Instant::now() > deadline {
            sigterm(child);
            let status = child.wait();
            panic!("the devnet ran longer than {timeout:?}; stopped it ({status:?})");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn sigterm(child: &Child) {
    rustix::process::kill_process(
        rustix::process::Pid::from_child(child),
        rustix::process::Signal::TERM,
    )
    .expect("SIGTERM to the devnet");
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn once_stores_proves_fetches_then_stops_everything() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("devnet");
    let ports = Ports::pick(6);
    let mut args = vec![
        "--once".to_string(),
        "--dir".into(),
        dir.display().to_string(),
        "--hosts".into(),
        "6".into(),
        "--size-mib".into(),
        "4".into(),
    ];
    args.extend(ports.args());
    if prometheus_installed() {
        args.push("--check-dashboards".into());
    } else {
        // CI installs it first (scripts/test); there the live check must never be skipped.
        assert!(
            std::env::var_os("CI").is_none(),
            "prometheus is not installed: scripts/test installs it before the Rust tests"
        );
        println!(
            "SKIP --check-dashboards: prometheus is not installed (scripts/test installs it \
             through scripts/monitoring-check)"
        );
    }
    let (mut child, stdout, stderr) = spawn(&args, tmp.path(), "once");
    let status = wait(&mut child, Duration::from_secs(480));
    let (out, err) = (read(&stdout), read(&stderr));
    println!("{out}\n{err}");
    // Whatever the outcome, nothing may be left running.
    ports.assert_all_closed();
    assert_no_process_uses(&dir);
    assert!(
        status.success(),
        "hoard devnet --once failed ({status}): {err}"
    );
    assert!(
        out.contains("byte-for-byte identical"),
        "no verified fetch in the output"
    );
    assert!(
        out.contains("6/6 proofs accepted"),
        "no proof period in the output"
    );
    if args.iter().any(|a| a == "--check-dashboards") {
        assert!(out.contains("every panel query returns data"), "{out}");
    }
}

#[test]
fn a_second_devnet_on_the_same_dir_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("devnet");
    let ports = Ports::pick(3);
    let mut args = vec![
        "--dir".to_string(),
        dir.display().to_string(),
        "--hosts".into(),
        "3".into(),
        "--size-mib".into(),
        "1".into(),
    ];
    args.extend(ports.args());
    let (mut first, stdout, stderr) = spawn(&args, tmp.path(), "first");

    // Running: every node answers.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !read(&stdout).contains("nodes up") {
        if let Some(status) = first.try_wait().expect("waiting for the devnet") {
            panic!(
                "the first devnet exited early ({status}): {}",
                read(&stderr)
            );
        }
        assert!(Instant::now() < deadline, "the first devnet did not start");
        std::thread::sleep(Duration::from_millis(200));
    }

    // Same folder, same flags: refused by the lock, before any port is looked at.
    let second = Command::new(HOARD)
        .arg("devnet")
        .args(&args)
        .output()
        .expect("running a second devnet");
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "the second devnet started");
    assert!(
        err.contains("another hoard devnet is using")
            && err.contains(&format!("pid {}", first.id()))
            && err.contains("--dir"),
        "{err}"
    );

    sigterm(&first);
    let status = wait(&mut first, Duration::from_secs(60));
    let out = read(&stdout);
    assert!(
        status.success(),
        "stopping on SIGTERM failed ({status}): {}",
        read(&stderr)
    );
    assert!(out.contains("SIGTERM: stopping the devnet"), "{out}");
    ports.assert_all_closed();
    assert_no_process_uses(&dir);
}

#[test]
fn bad_setups_fail_at_once_with_what_to_change() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ports = Ports::pick(3);
    let run = |extra: &[String]| {
        let out = Command::new(HOARD)
            .arg("devnet")
            .args(extra)
            .output()
            .expect("running hoard devnet");
        assert!(!out.status.success(), "{extra:?} was accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };

    // A --dir that cannot be created.
    let file = tmp.path().join("a-file");
    fs::write(&file, b"").expect("write");
    let mut args = ports.args();
    args.extend(["--dir".into(), file.join("devnet").display().to_string()]);
    let err = run(&args);
    assert!(err.contains("pass a writable --dir"), "{err}");

    // A busy anvil port, named with the flag that moves it.
    let busy = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = busy.local_addr().expect("addr").port();
    let mut args = ports.args();
    args[1] = port.to_string();
    args.extend(["--hosts".into(), "3".into()]);
    args.extend(["--dir".into(), tmp.path().join("d").display().to_string()]);
    let err = run(&args);
    assert!(
        err.contains(&format!("port {port}")) && err.contains("--port"),
        "{err}"
    );
    assert!(!tmp.path().join("d/logs").exists(), "something started");

    // Too few hosts for k + m slots.
    let err = run(&["--hosts".into(), "2".into()]);
    assert!(err.contains("--hosts"), "{err}");
}

/// The first child of `parent` whose command name is `name`.
fn child_named(parent: u32, name: &str) -> Option<u32> {
    fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let stat = fs::read_to_string(e.path().join("stat")).ok()?;
        // pid (comm) state ppid …
        let (comm, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
        let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
        (ppid == parent && comm == name).then_some(pid)
    })
}

fn signal(pid: u32, sig: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(pid as i32).expect("a pid");
    rustix::process::kill_process(pid, sig).expect("signalling");
}

/// One metric of the node whose API listens on `port` (a plain HTTP/1.0 GET of /metrics).
fn metric(port: u16, name: &str) -> Option<f64> {
    use std::io::{Read as _, Write as _};
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Waits until `path`'s text has `needle` after byte `from`; returns where it ends.
fn wait_for(path: &Path, needle: &str, from: usize, child: &mut Child, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        let text = read(path);
        if let Some(at) = text.get(from..).and_then(|t| t.find(needle)) {
            return from + at + needle.len();
        }
        if let Some(status) = child.try_wait().expect("waiting for the devnet") {
            let err = read(&path.with_extension("err"));
            panic!("the devnet exited ({status}) before {needle:?}:\n{text}\nstderr:\n{err}");
        }
        if Instant::now() > deadline {
            sigterm(child);
            let _ = child.wait();
            panic!("no {needle:?} within {timeout:?}:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The chain stalls (anvil paused with SIGSTOP): every node and anvil keep running, the nodes'
/// head lag grows, and proofs resume when it is back. Stopped while anvil is paused again, the
/// devnet wakes it so that it saves the chain, and exits cleanly. (A 5-minute pause was run by
/// hand: docs/performance.md.)
#[test]
fn a_chain_stall_is_ridden_out_and_a_paused_chain_is_saved_at_stop() {
    /// How long anvil is paused (longer than a period, and than the story's 10 s wait).
    const STALL: Duration = Duration::from_secs(20);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("devnet");
    let ports = Ports::pick(3);
    let mut args = vec![
        "--dir".to_string(),
        dir.display().to_string(),
        "--hosts".into(),
        "3".into(),
        "--size-mib".into(),
        "1".into(),
    ];
    args.extend(ports.args());
    let (mut child, stdout, stderr) = spawn(&args, tmp.path(), "stall");
    let mut at = wait_for(
        &stdout,
        "watching periods",
        0,
        &mut child,
        Duration::from_secs(300),
    );
    let anvil = child_named(child.id(), "anvil").expect("anvil is a child of the devnet");
    let host1 = ports.api_base + 2;

    signal(anvil, rustix::process::Signal::STOP);
    let paused = Instant::now();
    // The RPC hangs; the node's head lag is computed when scraped, so it keeps growing.
    let mut lag = 0.0;
    while paused.elapsed() < STALL {
        lag = metric(host1, "hoard_chain_head_lag_seconds").unwrap_or(lag);
        std::thread::sleep(Duration::from_millis(500));
    }
    signal(anvil, rustix::process::Signal::CONT);
    assert!(
        lag >= (STALL.as_secs() - 5) as f64,
        "head lag {lag} s after a {STALL:?} stall"
    );
    at = wait_for(
        &stdout,
        "the chain is not answering",
        at,
        &mut child,
        Duration::from_secs(30),
    );
    at = wait_for(
        &stdout,
        "the chain answers again",
        at,
        &mut child,
        Duration::from_secs(60),
    );
    // Proofs resume: a whole period with every required proof accepted after the stall.
    wait_for(
        &stdout,
        "3/3 proofs accepted",
        at,
        &mut child,
        Duration::from_secs(90),
    );
    let out = read(&stdout);
    assert!(
        !out.contains(" exited ("),
        "a child exited during the stall:\n{out}"
    );

    // Stop while the chain is paused: anvil is woken and saves the chain before it exits.
    let state = dir.join("anvil-state.json");
    signal(anvil, rustix::process::Signal::STOP);
    let stop = std::time::SystemTime::now();
    sigterm(&child);
    let status = wait(&mut child, Duration::from_secs(120));
    let (out, err) = (read(&stdout), read(&stderr));
    ports.assert_all_closed();
    assert_no_process_uses(&dir);
    assert!(status.success(), "stopping failed ({status}): {err}\n{out}");
    let saved = fs::metadata(&state)
        .and_then(|m| m.modified())
        .expect("anvil-state.json");
    assert!(saved >= stop, "the chain was not saved at stop:\n{out}");
}
