//! `--json` progress: one JSON object per line on stdout for every step and host event, with
//! durations (`docs/events.md`, schema 1). Views for people go to stderr meanwhile.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use serde_json::{json, Value};

use super::Printer;
use crate::exec::{Reporter, StepEvent, StepHeader};
use crate::inventory::HostName;
use crate::procedure::StepId;

/// The version of the event stream's shape, on every line.
pub const EVENTS_SCHEMA: u32 = 1;

/// Writes one event line: `{"schema": 1, "event": NAME, …fields}`.
pub fn emit(event: &str, fields: Value) {
    let mut line = json!({"schema": EVENTS_SCHEMA, "event": event});
    if let (Some(line), Value::Object(fields)) = (line.as_object_mut(), fields) {
        line.extend(fields);
    }
    Printer::current().json_line(&line);
}

/// Step and host events as JSON lines, with how long each host's step took.
pub struct JsonProgress {
    started: Mutex<HashMap<(String, String), Instant>>,
    run_started: Instant,
}

impl Default for JsonProgress {
    fn default() -> Self {
        JsonProgress {
            started: Mutex::new(HashMap::new()),
            run_started: Instant::now(),
        }
    }
}

impl JsonProgress {
    /// Milliseconds since the host's step started (0 when it did not start in this run).
    fn elapsed_ms(&self, step: &StepId, host: &HostName) -> u128 {
        let key = (step.to_string(), host.to_string());
        self.started
            .lock()
            .expect("events lock")
            .get(&key)
            .map_or(0, |at| at.elapsed().as_millis())
    }

    /// Milliseconds since the run started.
    pub fn run_ms(&self) -> u128 {
        self.run_started.elapsed().as_millis()
    }
}

impl Reporter for JsonProgress {
    fn step(&self, header: StepHeader<'_>) {
        emit(
            "step",
            json!({"index": header.index, "total": header.total, "step": header.id.as_str(), "name": header.name}),
        );
    }

    fn host_event(&self, step: &StepId, host: &HostName, event: &StepEvent) {
        let base =
            |state: &str| json!({"step": step.as_str(), "host": host.as_str(), "state": state});
        let fields = match event {
            StepEvent::Started { attempt } => {
                self.started
                    .lock()
                    .expect("events lock")
                    .insert((step.to_string(), host.to_string()), Instant::now());
                let mut fields = base("started");
                fields["attempt"] = (*attempt).into();
                fields
            }
            StepEvent::AlreadyDone => base("already_done"),
            StepEvent::DoneByCheck => base("done_by_check"),
            StepEvent::Waiting => base("waiting"),
            StepEvent::Finished => {
                let mut fields = base("finished");
                fields["elapsed_ms"] = json!(self.elapsed_ms(step, host));
                fields
            }
            StepEvent::Failed { error, stderr_tail } => {
                let mut fields = base("failed");
                fields["elapsed_ms"] = json!(self.elapsed_ms(step, host));
                fields["error"] = error.as_str().into();
                fields["stderr_tail"] = stderr_tail.as_str().into();
                fields
            }
        };
        emit("host_step", fields);
    }
}
