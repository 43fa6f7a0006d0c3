//! A recording fake of the dataplane for tests of the pure layers.

use std::sync::Mutex;

use crate::{Dataplane, DataplaneError, Op};

/// Records every op; fails the op whose 0-based index equals `fail_at`.
#[derive(Default)]
pub struct Recorder {
    pub ops: Mutex<Vec<Op>>,
    pub tables: Mutex<Vec<String>>,
    pub fail_at: Mutex<Option<usize>>,
}

impl Recorder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Make the `n`-th op from now on fail.
    pub fn fail_after(&self, n: usize) {
        let done = self.ops.lock().unwrap().len();
        *self.fail_at.lock().unwrap() = Some(done + n);
    }

    pub fn take(&self) -> Vec<Op> {
        std::mem::take(&mut *self.ops.lock().unwrap())
    }
}

impl Dataplane for Recorder {
    fn execute(&self, op: &Op) -> Result<(), DataplaneError> {
        let mut ops = self.ops.lock().unwrap();
        if Some(ops.len()) == *self.fail_at.lock().unwrap() {
            *self.fail_at.lock().unwrap() = None;
            ops.push(op.clone());
            return Err(DataplaneError::new("recorder", "injected failure"));
        }
        ops.push(op.clone());
        Ok(())
    }

    fn load_tables(&self, script: &str) -> Result<(), DataplaneError> {
        self.tables.lock().unwrap().push(script.to_string());
        Ok(())
    }

    fn links_with_prefix(&self, _prefix: &str) -> Result<Vec<String>, DataplaneError> {
        Ok(Vec::new())
    }
}
