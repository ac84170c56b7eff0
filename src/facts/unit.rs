//! What systemd says of the peer's unit on a host whose peer is a systemd unit
//! (`service_manager: systemd`): read with `systemctl show` by the probe, so that the plan starts
//! the unit with its own command line (after every drop-in, an administrator's `override.conf`
//! included) and runs state commands as the unit's `User=`.

use serde::{Deserialize, Serialize};

/// The properties of the unit the probe reads, in `systemctl show` order.
pub const UNIT_PROPERTIES: &str =
    "-p LoadState -p ActiveState -p User -p FragmentPath -p DropInPaths -p ExecStart";

/// The peer's unit as systemd loaded it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitFacts {
    /// `loaded`, `not-found`, `masked`, …
    pub load_state: String,
    /// `active`, `inactive`, `failed`, `activating`, …
    pub active_state: String,
    /// `User=`; `None` for root (systemd's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The unit file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fragment_path: Option<String>,
    /// Its drop-ins, in the order systemd applies them (a later one wins).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drop_ins: Vec<String>,
    /// The words of the effective `ExecStart=` (after every drop-in), as systemd shows them;
    /// empty when the unit has none or more than one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exec_start: Vec<String>,
}

impl UnitFacts {
    /// Why the unit cannot be driven by the playbooks (fail closed): not loaded, or no single
    /// `ExecStart=` to start it with extra flags.
    pub fn problem(&self) -> Option<String> {
        if self.load_state != "loaded" {
            return Some(format!(
                "systemd reports its LoadState as `{}`",
                self.load_state
            ));
        }
        if self.exec_start.is_empty() {
            return Some(
                "its ExecStart= could not be read (none, more than one, or words with spaces or quotes)"
                    .to_string(),
            );
        }
        None
    }
}

/// Parses the `systemctl show` output of [`UNIT_PROPERTIES`] (`Name=value` lines).
pub fn parse_unit(body: &str) -> UnitFacts {
    let mut unit = UnitFacts::default();
    let mut exec_starts = 0;
    for line in body.lines() {
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        match name {
            "LoadState" => unit.load_state = value.to_string(),
            "ActiveState" => unit.active_state = value.to_string(),
            "User" => unit.user = Some(value.to_string()).filter(|u| !u.is_empty()),
            "FragmentPath" => {
                unit.fragment_path = Some(value.to_string()).filter(|p| !p.is_empty())
            }
            "DropInPaths" => unit.drop_ins = value.split_whitespace().map(str::to_string).collect(),
            "ExecStart" if !value.is_empty() => {
                exec_starts += 1;
                unit.exec_start = exec_start_words(value).unwrap_or_default();
            }
            _ => {}
        }
    }
    if exec_starts > 1 {
        unit.exec_start.clear();
    }
    unit
}

/// The `argv[]` words of one `ExecStart={ path=… ; argv[]=… ; ignore_errors=… ; … }` value.
/// systemd shows the words joined by spaces, unquoted: a word holding a space, a quote or a
/// backslash cannot be told apart, so such a command line is not read at all (`None`).
fn exec_start_words(value: &str) -> Option<Vec<String>> {
    let (_, rest) = value.split_once("argv[]=")?;
    let (argv, _) = rest.split_once(" ; ignore_errors=")?;
    if argv.contains(['"', '\'', '\\']) {
        return None;
    }
    let words: Vec<String> = argv.split_whitespace().map(str::to_string).collect();
    (!words.is_empty()).then_some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOWN: &str = "LoadState=loaded\nActiveState=active\nUser=ipfs\n\
        FragmentPath=/etc/systemd/system/ipfs-cluster.service\n\
        DropInPaths=/etc/systemd/system/ipfs-cluster.service.d/override.conf /run/systemd/system/ipfs-cluster.service.d/zz.conf\n\
        ExecStart={ path=/usr/local/bin/ipfs-cluster-service ; argv[]=/usr/local/bin/ipfs-cluster-service daemon --stats ; ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }\n";

    #[test]
    fn the_effective_command_line_user_and_drop_ins_are_read() {
        let unit = parse_unit(SHOWN);
        assert_eq!(unit.user.as_deref(), Some("ipfs"));
        assert_eq!(
            unit.exec_start,
            ["/usr/local/bin/ipfs-cluster-service", "daemon", "--stats"]
        );
        assert_eq!(unit.drop_ins.len(), 2);
        assert!(unit.drop_ins[0].ends_with("override.conf"));
        assert_eq!(unit.problem(), None);
    }

    #[test]
    fn a_unit_that_cannot_be_driven_is_a_problem() {
        let missing = parse_unit("LoadState=not-found\nActiveState=inactive\nUser=\nExecStart=\n");
        assert_eq!(missing.user, None);
        assert!(missing.problem().unwrap().contains("not-found"));
        // A word with a space would be shown unquoted: not guessed at.
        let quoted = parse_unit(&SHOWN.replace("--stats", "--config \"/a b\""));
        assert!(quoted.exec_start.is_empty());
        assert!(quoted.problem().unwrap().contains("ExecStart"));
        let two = format!("{SHOWN}{}", SHOWN.lines().last().unwrap());
        assert!(parse_unit(&two).exec_start.is_empty());
    }
}
