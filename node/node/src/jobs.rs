//! Long-running work started through the API (`put`, `get`), with progress the CLI polls.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use serde::{Deserialize, Serialize};

/// What a job reports.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobStatus {
    /// Job id.
    pub id: String,
    /// `put` or `get`.
    pub kind: String,
    /// What it is doing now (`packing`, `requesting`, `waiting for hosts`, `downloading`, …).
    pub phase: String,
    /// Units done in this phase (bytes, or slots while waiting for hosts).
    pub done: u64,
    /// Units in this phase.
    pub total: u64,
    /// Finished, successfully or not.
    pub finished: bool,
    /// Why it failed.
    pub error: Option<String>,
    /// What it produced (dataset id, request id, output path…).
    pub result: serde_json::Value,
}

/// The node's jobs.
#[derive(Debug, Default)]
pub(crate) struct Jobs {
    inner: Mutex<HashMap<String, (JobStatus, Arc<AtomicU64>)>>,
}

impl Jobs {
    /// Registers a new job and returns its id.
    pub(crate) fn start(&self, kind: &str) -> String {
        let id = hex::encode(rand::random::<[u8; 8]>());
        let status = JobStatus {
            id: id.clone(),
            kind: kind.into(),
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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (JobStatus, Arc<AtomicU64>)>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Forwards pack/unpack progress to a job counter.
#[derive(Debug)]
pub(crate) struct JobProgress {
    pub(crate) jobs: Arc<crate::node::Ctx>,
    pub(crate) id: String,
    pub(crate) counter: Mutex<Arc<AtomicU64>>,
}

impl hoard_dataset::Progress for JobProgress {
    fn phase(&self, name: &str, total: u64) {
        let c = self.jobs.jobs.phase(&self.id, name, total);
        *self.counter.lock().unwrap_or_else(|p| p.into_inner()) = c;
    }
    fn advance(&self, bytes: u64) {
        self.counter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .fetch_add(bytes, Ordering::Relaxed);
    }
}
