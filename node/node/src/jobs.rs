//! Long-running work started through the API (`put`, `get`), with progress the CLI polls.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use hoard_api::{JobKind, JobStatus};

/// Each job's status and the counter its current phase advances, by job id.
type JobTable = HashMap<String, (JobStatus, Arc<AtomicU64>)>;

/// The node's jobs. Cheap to clone: clones share the table.
#[derive(Debug, Clone, Default)]
pub(crate) struct Jobs {
    inner: Arc<Mutex<JobTable>>,
}

impl Jobs {
    /// Registers a new job and returns its id.
    pub(crate) fn start(&self, kind: JobKind) -> String {
        let id = hex::encode(rand::random::<[u8; 8]>());
        let status = JobStatus {
            id: id.clone(),
            kind,
            phase: "starting".into(),
            done: 0,
            total: 0,
            finished: false,
            error: None,
            result: serde_json::Value::Null,
        };
        self.lock().insert(id.clone(), (status, Arc::default()));
        id
    }

    /// Enters a phase; returns the counter the work advances.
    pub(crate) fn phase(&self, id: &str, phase: &str, total: u64) -> Arc<AtomicU64> {
        let mut inner = self.lock();
        let Some((s, counter)) = inner.get_mut(id) else {
            return Arc::default();
        };
        s.phase = phase.into();
        s.total = total;
        *counter = Arc::default();
        counter.clone()
    }

    /// Sets the result so far.
    pub(crate) fn set_result(&self, id: &str, result: serde_json::Value) {
        if let Some((s, _)) = self.lock().get_mut(id) {
            s.result = result;
        }
    }

    /// Marks the job finished.
    pub(crate) fn finish(&self, id: &str, outcome: Result<(), String>) {
        if let Some((s, c)) = self.lock().get_mut(id) {
            s.done = c.load(Ordering::Relaxed);
            s.finished = true;
            if let Err(e) = outcome {
                s.error = Some(e);
            } else {
                s.phase = "done".into();
            }
        }
    }

    /// A job's status.
    pub(crate) fn get(&self, id: &str) -> Option<JobStatus> {
        self.lock().get(id).map(|(s, c)| {
            let mut s = s.clone();
            if !s.finished {
                s.done = c.load(Ordering::Relaxed);
            }
            s
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, JobTable> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One job's progress, as the work that does it sees it: phases and a counter (and pack/unpack
/// progress forwarded to that counter).
#[derive(Debug, Clone)]
pub(crate) struct JobProgress {
    jobs: Jobs,
    id: String,
    counter: Arc<Mutex<Arc<AtomicU64>>>,
}

impl JobProgress {
    /// Progress of job `id`.
    pub(crate) fn new(jobs: Jobs, id: String) -> Self {
        Self {
            jobs,
            id,
            counter: Arc::default(),
        }
    }

    /// Enters a phase of `total` units; returns the counter to advance.
    pub(crate) fn enter(&self, phase: &str, total: u64) -> Arc<AtomicU64> {
        let c = self.jobs.phase(&self.id, phase, total);
        *self.counter.lock().unwrap_or_else(|p| p.into_inner()) = c.clone();
        c
    }

    /// Sets the result so far.
    pub(crate) fn set_result(&self, result: serde_json::Value) {
        self.jobs.set_result(&self.id, result);
    }
}

impl hoard_dataset::Progress for JobProgress {
    fn phase(&self, name: &str, total: u64) {
        let c = self.jobs.phase(&self.id, name, total);
        *self.counter.lock().unwrap_or_else(|p| p.into_inner()) = c;
    }
    fn advance(&self, bytes: u64) {
        self.counter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .fetch_add(bytes, Ordering::Relaxed);
    }
}
