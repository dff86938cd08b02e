//! The devnet's child processes ([`Procs`]) and the signals that stop them ([`StopSignal`]).
//!
//! Every child runs in its own process group with its output appended to its log, so a
//! terminal's Ctrl-C reaches only the devnet, which then stops the children in order: the nodes,
//! Prometheus, then anvil (last, so the nodes never lose the chain while they stop, and so it
//! saves its state with everything done).

use std::{
    fs::OpenOptions,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context as _;

use super::{Story, read_from};

/// How long a child gets to stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long anvil gets: it writes the whole chain state to `--state` as it exits.
const ANVIL_STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// One child process.
#[derive(Debug)]
struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
    /// Length of the log when this run started it: what came before is an earlier run's.
    log_from: u64,
}

/// The children of this devnet. Stopped in order by [`Procs::shutdown`], or by `Drop` on an
/// early error or a panic.
#[derive(Debug, Default)]
pub(super) struct Procs {
    nodes: Vec<Proc>,
    prometheus: Vec<Proc>,
    anvil: Vec<Proc>,
}

/// Which kind of child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Node,
    Prometheus,
    Anvil,
}

impl Procs {
    /// Starts `cmd` as child `name`, its stdout and stderr appended to `log`.
    pub(super) fn spawn(
        &mut self,
        kind: Kind,
        name: &str,
        mut cmd: Command,
        log: &Path,
    ) -> anyhow::Result<()> {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let log_from = out.metadata().map_or(0, |m| m.len());
        let err = out.try_clone()?;
        std::os::unix::process::CommandExt::process_group(
            cmd.stdin(Stdio::null()).stdout(out).stderr(err),
            0,
        );
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name} ({})", cmd.get_program().display()))?;
        self.group(kind).push(Proc {
            name: name.into(),
            child,
            log: log.into(),
            log_from,
        });
        Ok(())
    }

    fn group(&mut self, kind: Kind) -> &mut Vec<Proc> {
        match kind {
            Kind::Node => &mut self.nodes,
            Kind::Prometheus => &mut self.prometheus,
            Kind::Anvil => &mut self.anvil,
        }
    }

    /// The children of `kind` that have exited, with how.
    pub(super) fn exited(&mut self, kind: Kind) -> Vec<(String, ExitStatus)> {
        self.group(kind)
            .iter_mut()
            .filter_map(|p| Some((p.name.clone(), p.child.try_wait().ok()??)))
            .collect()
    }

    /// How child `name` exited, if it has.
    pub(super) fn exit_of(&mut self, kind: Kind, name: &str) -> Option<ExitStatus> {
        self.exited(kind)
            .into_iter()
            .find_map(|(n, s)| (n == name).then_some(s))
    }

    /// The last `n` lines child `name` logged in this run, joined with " | ", and its log.
    pub(super) fn tail(&mut self, kind: Kind, name: &str, n: usize) -> (String, PathBuf) {
        let Some(p) = self.group(kind).iter().find(|p| p.name == name) else {
            return (String::new(), PathBuf::new());
        };
        let text = read_from(&p.log, p.log_from);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        (
            lines[lines.len().saturating_sub(n)..].join(" | "),
            p.log.clone(),
        )
    }

    /// Stops every child in order; returns the names of those that had to be killed.
    pub(super) fn shutdown(&mut self, story: &Story) -> Vec<String> {
        let mut killed = Vec::new();
        for (what, group) in [
            ("nodes", &mut self.nodes),
            ("Prometheus", &mut self.prometheus),
            ("anvil (it saves the chain)", &mut self.anvil),
        ] {
            if !group.is_empty() {
                if what == "nodes" {
                    story.say(format!("peak memory (VmHWM) per node: {}", peak_rss(group)));
                }
                story.say(format!("stopping {what}"));
                killed.extend(stop_group(group, timeout_of(what)));
            }
        }
        killed
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        stop_group(&mut self.nodes, STOP_TIMEOUT);
        stop_group(&mut self.prometheus, STOP_TIMEOUT);
        stop_group(&mut self.anvil, ANVIL_STOP_TIMEOUT);
    }
}

fn timeout_of(what: &str) -> Duration {
    if what.starts_with("anvil") {
        ANVIL_STOP_TIMEOUT
    } else {
        STOP_TIMEOUT
    }
}

/// Each running process's peak resident memory, from `/proc/<pid>/status`.
fn peak_rss(group: &[Proc]) -> String {
    group
        .iter()
        .map(|p| {
            let kib = std::fs::read_to_string(format!("/proc/{}/status", p.child.id()))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("VmHWM:"))
                        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                });
            match kib {
                Some(k) => format!("{} {} MiB", p.name, k / 1024),
                None => format!("{} ?", p.name),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// SIGCONT (a paused process acts on no other signal: anvil stopped with SIGSTOP would never
/// save the chain) and SIGTERM to every process of `group`, up to `timeout` for them to exit,
/// then SIGKILL. Empties `group`; returns the names of those killed.
fn stop_group(group: &mut Vec<Proc>, timeout: Duration) -> Vec<String> {
    use rustix::process::{Pid, Signal, kill_process};
    for p in group.iter_mut() {
        if matches!(p.child.try_wait(), Ok(None)) {
            let _ = kill_process(Pid::from_child(&p.child), Signal::CONT);
            let _ = kill_process(Pid::from_child(&p.child), Signal::TERM);
        }
    }
    let deadline = Instant::now() + timeout;
    let mut killed = Vec::new();
    loop {
        let mut running = 0;
        for p in group.iter_mut() {
            if matches!(p.child.try_wait(), Ok(None)) {
                running += 1;
            }
        }
        if running == 0 {
            break;
        }
        if Instant::now() >= deadline {
            for p in group.iter_mut() {
                if matches!(p.child.try_wait(), Ok(None)) {
                    let _ = p.child.kill();
                    let _ = p.child.wait();
                    killed.push(p.name.clone());
                }
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    group.clear();
    killed
}

/// SIGINT, SIGTERM and SIGHUP, listened for before the first child starts.
#[derive(Debug)]
pub(super) struct StopSignal {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl StopSignal {
    pub(super) fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |k| signal(k).context("listening for signals");
        Ok(Self {
            int: listen(SignalKind::interrupt())?,
            term: listen(SignalKind::terminate())?,
            hup: listen(SignalKind::hangup())?,
        })
    }

    /// The name of the first signal to arrive.
    pub(super) async fn wait(mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "Ctrl-C",
            _ = self.term.recv() => "SIGTERM",
            _ = self.hup.recv() => "SIGHUP",
        }
    }
}

/// Seconds a child gets after SIGTERM, for messages.
pub(super) fn stop_timeout_secs() -> u64 {
    STOP_TIMEOUT.as_secs()
}
