//! How a [`PlannedStep`] is written in the plan file: what every host of a step shares (id,
//! name, mode, timeout, retries, on_resume, destructive) is written once on the step, and a
//! host's entry only says where it differs, with no `null` fields. At 10,000 hosts those repeats
//! were a fifth of the file. Reading fills every host back in, so a plan read back is the plan
//! that was written.

use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::model::PlannedStep;
use crate::inventory::{HostName, HumanDuration};
use crate::procedure::{
    Established, Mode, OnResume, RenderedStep, RenderedUpload, RenderedWait, StepId,
};

/// The values a step's host entries are written against: the step's own, plus the timeout and
/// retries of its first host (the same for all hosts of a rendered step).
struct Shared<'a> {
    step: &'a PlannedStep,
    timeout: Option<HumanDuration>,
    retries: u32,
}

impl Serialize for PlannedStep {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let first = self.hosts.first();
        let shared = Shared {
            step: self,
            timeout: first.and_then(|host| host.timeout),
            retries: first.map_or(0, |host| host.retries),
        };
        let mut out = serializer.serialize_struct("PlannedStep", 9)?;
        out.serialize_field("id", &self.id)?;
        out.serialize_field("name", &self.name)?;
        out.serialize_field("mode", &self.mode)?;
        out.serialize_field("destructive", &self.destructive)?;
        out.serialize_field("on_resume", &self.on_resume)?;
        write_if(&mut out, "takes_quorum", &true, self.takes_quorum)?;
        out.serialize_field("timeout", &shared.timeout)?;
        out.serialize_field("retries", &shared.retries)?;
        out.serialize_field("hosts", &Hosts(&shared))?;
        out.end()
    }
}

struct Hosts<'a>(&'a Shared<'a>);

impl Serialize for Hosts<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let shared = self.0;
        serializer.collect_seq(
            shared
                .step
                .hosts
                .iter()
                .map(|host| HostEntry { shared, host }),
        )
    }
}

/// One host's entry: `host`, then only the fields that differ from the step or are set.
struct HostEntry<'a> {
    shared: &'a Shared<'a>,
    host: &'a RenderedStep,
}

impl Serialize for HostEntry<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (step, host) = (self.shared.step, self.host);
        let mut out = serializer.serialize_struct("RenderedStep", 15)?;
        out.serialize_field("host", &host.host)?;
        write_if(&mut out, "run_on", &host.run_on, host.run_on != host.host)?;
        write_if(&mut out, "id", &host.id, host.id != step.id)?;
        write_if(&mut out, "name", &host.name, host.name != step.name)?;
        write_if(&mut out, "mode", &host.mode, host.mode != step.mode)?;
        write_some(&mut out, "command", &host.command)?;
        write_some(&mut out, "upload", &host.upload)?;
        write_some(&mut out, "check", &host.check)?;
        write_some(&mut out, "wait_until", &host.wait_until)?;
        let timeout_differs = host.timeout != self.shared.timeout;
        write_if(&mut out, "timeout", &host.timeout, timeout_differs)?;
        let retries_differ = host.retries != self.shared.retries;
        write_if(&mut out, "retries", &host.retries, retries_differ)?;
        let on_resume_differs = host.on_resume != step.on_resume;
        write_if(&mut out, "on_resume", &host.on_resume, on_resume_differs)?;
        let destructive_differs = host.destructive != step.destructive;
        write_if(
            &mut out,
            "destructive",
            &host.destructive,
            destructive_differs,
        )?;
        write_some(&mut out, "backup", &host.backup)?;
        write_some(&mut out, "establishes", &host.establishes)?;
        out.end()
    }
}

fn write_if<S: SerializeStruct, T: Serialize>(
    out: &mut S,
    key: &'static str,
    value: &T,
    write: bool,
) -> Result<(), S::Error> {
    if write {
        out.serialize_field(key, value)
    } else {
        out.skip_field(key)
    }
}

fn write_some<S: SerializeStruct, T: Serialize>(
    out: &mut S,
    key: &'static str,
    value: &Option<T>,
) -> Result<(), S::Error> {
    match value {
        Some(value) => out.serialize_field(key, value),
        None => out.skip_field(key),
    }
}

/// A step as written; `timeout` and `retries` exist only in the file.
#[derive(Deserialize)]
struct StepFile {
    id: StepId,
    name: String,
    mode: Mode,
    destructive: bool,
    on_resume: OnResume,
    #[serde(default)]
    takes_quorum: bool,
    #[serde(default)]
    timeout: Option<HumanDuration>,
    #[serde(default)]
    retries: u32,
    hosts: Vec<HostFile>,
}

/// A host entry as written: a missing shared field is the step's value.
#[derive(Deserialize)]
struct HostFile {
    host: HostName,
    run_on: Option<HostName>,
    id: Option<StepId>,
    name: Option<String>,
    mode: Option<Mode>,
    command: Option<String>,
    upload: Option<RenderedUpload>,
    check: Option<String>,
    wait_until: Option<RenderedWait>,
    /// Missing: the step's timeout; `null`: none (the two differ).
    #[serde(default, deserialize_with = "present")]
    timeout: Option<Option<HumanDuration>>,
    retries: Option<u32>,
    on_resume: Option<OnResume>,
    destructive: Option<bool>,
    backup: Option<String>,
    establishes: Option<Established>,
}

/// A field that is present, even as `null`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

impl<'de> Deserialize<'de> for PlannedStep {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<PlannedStep, D::Error> {
        let file = StepFile::deserialize(deserializer)?;
        let mut hosts = Vec::with_capacity(file.hosts.len());
        for entry in file.hosts {
            let id = entry.id.unwrap_or_else(|| file.id.clone());
            hosts.push(RenderedStep {
                id,
                name: entry.name.unwrap_or_else(|| file.name.clone()),
                run_on: entry.run_on.unwrap_or_else(|| entry.host.clone()),
                host: entry.host,
                mode: entry.mode.unwrap_or(file.mode),
                command: entry.command,
                upload: entry.upload,
                check: entry.check,
                wait_until: entry.wait_until,
                timeout: entry.timeout.unwrap_or(file.timeout),
                retries: entry.retries.unwrap_or(file.retries),
                on_resume: entry.on_resume.unwrap_or(file.on_resume),
                destructive: entry.destructive.unwrap_or(file.destructive),
                backup: entry.backup,
                establishes: entry.establishes,
            });
        }
        Ok(PlannedStep {
            id: file.id,
            name: file.name,
            mode: file.mode,
            destructive: file.destructive,
            on_resume: file.on_resume,
            takes_quorum: file.takes_quorum,
            hosts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str) -> RenderedStep {
        RenderedStep {
            id: "stop-peers".parse().unwrap(),
            name: "Stop the peers".into(),
            host: name.parse().unwrap(),
            run_on: name.parse().unwrap(),
            mode: Mode::Serial,
            command: Some(format!("stop {name}")),
            upload: None,
            check: None,
            wait_until: None,
            timeout: Some(HumanDuration::from_secs(120)),
            retries: 2,
            on_resume: OnResume::Check,
            destructive: true,
            backup: None,
            establishes: None,
        }
    }

    fn step(hosts: Vec<RenderedStep>) -> PlannedStep {
        PlannedStep {
            id: "stop-peers".parse().unwrap(),
            name: "Stop the peers".into(),
            mode: Mode::Serial,
            destructive: true,
            on_resume: OnResume::Check,
            takes_quorum: false,
            hosts,
        }
    }

    fn round_trip(step: &PlannedStep) -> (String, PlannedStep) {
        let text = serde_json::to_string(step).unwrap();
        (text.clone(), serde_json::from_str(&text).unwrap())
    }

    #[test]
    fn shared_fields_are_written_once_and_filled_back() {
        let written = step(vec![host("h1"), host("h2")]);
        let (text, read) = round_trip(&written);
        assert_eq!(read, written);
        assert_eq!(text.matches("Stop the peers").count(), 1, "{text}");
        assert!(!text.contains("null"), "{text}");
        assert!(
            text.contains(r#"{"host":"h1","command":"stop h1"}"#),
            "{text}"
        );
    }

    #[test]
    fn hosts_that_differ_from_their_step_keep_their_own_values() {
        // A staged plan prefixes the step's name but not its hosts'; a host may lack a timeout
        // where the first has one; every optional part set.
        let mut odd = host("h2");
        odd.name = "Stop".into();
        odd.run_on = "h9".parse().unwrap();
        odd.id = "other".parse().unwrap();
        odd.mode = Mode::Parallel;
        odd.timeout = None;
        odd.retries = 0;
        odd.on_resume = OnResume::Rerun;
        odd.destructive = false;
        odd.check = Some("test -x y".into());
        odd.backup = Some("state-h2.json".into());
        odd.upload = Some(RenderedUpload {
            from: "/tmp/a".into(),
            to: "/tmp/b".into(),
            mode: 0o755,
        });
        odd.wait_until = Some(RenderedWait {
            command: "true".into(),
            interval: HumanDuration::from_secs(2),
            deadline: HumanDuration::from_secs(60),
            fail_when: Some("! running".into()),
            run_on: "h1".parse().unwrap(),
        });
        let mut first = host("h1");
        first.timeout = None;
        for written in [
            step(vec![host("h1"), odd.clone()]),
            step(vec![first, host("h2")]),
            step(vec![]),
        ] {
            assert_eq!(round_trip(&written).1, written);
        }
    }

    #[test]
    fn a_format_2_entry_with_every_field_still_reads() {
        let text = r#"{"id":"stop-peers","name":"Stop the peers","mode":"serial","destructive":true,
            "on_resume":"check","hosts":[{"id":"stop-peers","name":"Stop the peers","host":"h1",
            "run_on":"h1","mode":"serial","command":"stop h1","upload":null,"check":null,
            "wait_until":null,"timeout":"2m","retries":2,"on_resume":"check","destructive":true,
            "backup":null}]}"#;
        let read: PlannedStep = serde_json::from_str(text).unwrap();
        assert_eq!(read, step(vec![host("h1")]));
    }
}
