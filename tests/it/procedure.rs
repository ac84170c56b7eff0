//! Playbook loading and rendering as the planner and `check` use them: every load error names
//! `file:line:column`, templates are strict, and values reach the shell as single words.

use std::path::{Path, PathBuf};

use cluster_upgrade::inventory::Inventory;
use cluster_upgrade::procedure::{
    Delegate, Mode, OnResume, Procedure, ProcedureError, RenderError, RenderedStep, TemplateContext,
};
use serde_json::json;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/playbooks")
        .join(name)
}

fn strip_folder(message: &str) -> String {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/playbooks");
    message.replace(&format!("{}/", folder.display()), "")
}

fn load_error(name: &str) -> ProcedureError {
    Procedure::load(&fixture(name)).expect_err("the fixture is invalid")
}

fn lab() -> Inventory {
    Inventory::load(&fixture("lab_inventory.yaml"), &[]).unwrap_or_else(|e| panic!("{e}"))
}

fn render_playbook() -> Procedure {
    Procedure::load(&fixture("render.yaml")).unwrap_or_else(|e| panic!("{e}"))
}

/// The placeholder context of `host` (anchor: the last host), with extra variables.
fn context(
    inventory: &Inventory,
    host: &str,
    extra: &[(&str, serde_json::Value)],
) -> TemplateContext {
    let anchor = inventory.hosts.last().unwrap();
    let mut context =
        TemplateContext::placeholder(inventory, inventory.host(host).unwrap(), anchor);
    for (name, value) in extra {
        context.vars.insert(name.parse().unwrap(), value.clone());
    }
    context
}

fn render(
    procedure: &Procedure,
    step: &str,
    context: &TemplateContext,
) -> Result<Option<RenderedStep>, RenderError> {
    procedure.render_step(procedure.step(step).unwrap(), context)
}

fn command_for(message: &str) -> Result<String, RenderError> {
    let inventory = lab();
    let context = context(&inventory, "h1", &[("message", json!(message))]);
    Ok(render(&render_playbook(), "echo-value", &context)?
        .unwrap()
        .command
        .unwrap())
}

#[test]
fn quote_filter_makes_each_value_one_shell_word() {
    assert_eq!(command_for("plain").unwrap(), "echo plain");
    assert_eq!(command_for("two words").unwrap(), "echo 'two words'");
    assert_eq!(command_for("it's").unwrap(), "echo \"it's\"");
    assert_eq!(command_for("$HOME `id`").unwrap(), "echo '$HOME `id`'");
    assert_eq!(command_for("").unwrap(), "echo ''");
}

#[test]
fn quote_filter_refuses_nul() {
    let error = command_for("a\0b").unwrap_err();
    let message = strip_folder(&error.to_string());
    assert!(message.starts_with("render.yaml:12:"), "{message}");
    assert!(
        message.contains("step `echo-value` for host `h1`: command: quote:"),
        "{message}"
    );
    assert!(message.contains("NUL"), "{message}");
}

#[test]
fn undefined_variables_are_errors_naming_variable_step_host_and_position() {
    let inventory = lab();
    let error = render(&render_playbook(), "typo", &context(&inventory, "h2", &[])).unwrap_err();
    let RenderError::Template {
        variable,
        field,
        step,
        host,
        ..
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!(variable.as_deref(), Some("anchor.peer_idd"));
    assert_eq!((*field, step.as_str(), &**host), ("command", "typo", "h2"));
    assert_eq!(
        strip_folder(&error.to_string()),
        "render.yaml:26:15: step `typo` for host `h2`: command: undefined variable `anchor.peer_idd`"
    );
}

#[test]
fn playbook_defaults_sit_under_inventory_variables_and_the_command_line() {
    let inventory = lab();
    let rendered = render(
        &render_playbook(),
        "uses-defaults",
        &context(&inventory, "h1", &[]),
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        rendered.command.unwrap(),
        "echo hello /lab/hosts/h1/home/bin"
    );

    let overrides = [("greeting".to_string(), "hi there".to_string())];
    let inventory = Inventory::load(&fixture("lab_inventory.yaml"), &overrides).unwrap();
    let rendered = render(
        &render_playbook(),
        "uses-defaults",
        &context(&inventory, "h3", &[]),
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        rendered.command.unwrap(),
        "echo 'hi there' '/lab/hosts/h 3/home/bin'"
    );
}

#[test]
fn when_false_skips_the_step_for_that_host() {
    let inventory = lab();
    assert!(render(
        &render_playbook(),
        "only-local",
        &context(&inventory, "h1", &[])
    )
    .unwrap()
    .is_some());
    let example = Inventory::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("inventory.example.yaml"),
        &[],
    )
    .unwrap();
    assert!(render(
        &render_playbook(),
        "only-local",
        &context(&example, "peer0", &[])
    )
    .unwrap()
    .is_none());
}

#[test]
fn when_must_render_to_a_boolean() {
    let inventory = lab();
    let error = render(
        &render_playbook(),
        "bad-when",
        &context(&inventory, "h1", &[]),
    )
    .unwrap_err();
    assert!(
        matches!(error, RenderError::WhenNotBoolean { ref rendered, .. } if rendered == "h1"),
        "{error}"
    );
}

#[test]
fn delegated_steps_run_on_the_anchor_and_wait_where_told() {
    let inventory = lab();
    let step = render(
        &render_playbook(),
        "from-anchor",
        &context(&inventory, "h1", &[]),
    )
    .unwrap()
    .unwrap();
    assert_eq!(step.host.as_str(), "h1");
    assert_eq!(step.run_on.as_str(), "h3");
    assert_eq!(
        step.command.as_deref(),
        Some("'/lab/hosts/h 3/home/bin'/ipfs-cluster-ctl peers rm QmPlaceholderPeerIdOfh1 # h1@127.0.0.2")
    );
    let wait = step.wait_until.as_ref().unwrap();
    assert_eq!(
        (wait.run_on.as_str(), wait.command.as_str()),
        ("h1", "test -n h1")
    );
    assert_eq!(
        (wait.interval.to_string(), wait.deadline.to_string()),
        ("500ms".into(), "1m".into())
    );
    assert_eq!(
        (step.timeout.unwrap().to_string(), step.retries),
        ("30s".into(), 2)
    );
    assert_eq!(
        (step.mode, step.on_resume, step.destructive),
        (Mode::Serial, OnResume::Check, true)
    );
    let spec = render_playbook().step("from-anchor").unwrap().clone();
    assert_eq!(spec.delegate_to, Delegate::Anchor);
}

#[test]
fn uploads_render_paths_and_keep_their_mode() {
    let inventory = lab();
    let step = render(
        &render_playbook(),
        "send-file",
        &context(&inventory, "h3", &[]),
    )
    .unwrap()
    .unwrap();
    let upload = step.upload.unwrap();
    assert_eq!(upload.mode, 0o750);
    assert!(
        upload
            .from
            .ends_with("releases/0.10.1/ipfs-cluster-service"),
        "{}",
        upload.from.display()
    );
    assert_eq!(
        upload.to,
        "/lab/hosts/h 3/home/bin/.cluster-upgrade/0.10.1/ipfs-cluster-service"
    );
    assert_eq!(
        step.command.as_deref(),
        Some("ls -l '/lab/hosts/h 3/home/bin/.cluster-upgrade/0.10.1'")
    );
}

#[test]
fn a_step_may_be_only_a_wait() {
    let inventory = lab();
    let step = render(&render_playbook(), "gate", &context(&inventory, "h1", &[]))
        .unwrap()
        .unwrap();
    assert_eq!(step.command, None);
    assert_eq!(step.wait_until.unwrap().deadline.to_string(), "10s");
}

#[test]
fn rendered_steps_round_trip_through_json() {
    let inventory = lab();
    let step = render(
        &render_playbook(),
        "from-anchor",
        &context(&inventory, "h2", &[]),
    )
    .unwrap()
    .unwrap();
    let text = serde_json::to_string(&step).unwrap();
    assert!(text.contains("\"on_resume\":\"check\""), "{text}");
    assert!(text.contains("\"deadline\":\"1m\""), "{text}");
    let back: RenderedStep = serde_json::from_str(&text).unwrap();
    assert_eq!(back, step);
}

#[test]
fn validate_against_reports_every_step_and_host_that_fails() {
    let error = render_playbook().validate_against(&lab()).unwrap_err();
    let lines: Vec<String> = error
        .errors()
        .iter()
        .map(|e| strip_folder(&e.to_string()))
        .collect();
    // `message` is undefined in echo-value, `anchor.peer_idd` in typo, bad-when is not boolean:
    // each for h1, h2 and h3.
    assert_eq!(lines.len(), 9, "{lines:#?}");
    assert!(lines.contains(&"render.yaml:12:22: step `echo-value` for host `h2`: command: undefined variable `message`".to_string()), "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("step `typo` for host `h3`")),
        "{lines:#?}"
    );
    assert!(lines
        .iter()
        .any(|l| l.contains("step `bad-when` for host `h1`: `when` must render to true or false")));
}

#[test]
fn validate_against_finds_unknown_hosts() {
    let example = Inventory::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("inventory.example.yaml"),
        &[],
    )
    .unwrap();
    let error = render_playbook().validate_against(&example).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("step `gate`: unknown host `h1` (not in the inventory)"),
        "{error}"
    );
}

#[test]
fn unknown_key_names_its_position() {
    let message = strip_folder(&load_error("unknown_key.yaml").to_string());
    assert!(
        message.starts_with("unknown_key.yaml:6:5: unknown field `comand`, expected one of"),
        "{message}"
    );
}

#[test]
fn wrong_type_names_its_position() {
    let message = strip_folder(&load_error("wrong_type.yaml").to_string());
    assert!(message.starts_with("wrong_type.yaml:7:14: "), "{message}");
}

#[test]
fn missing_field_names_the_step() {
    let message = strip_folder(&load_error("missing_field.yaml").to_string());
    assert!(message.starts_with("missing_field.yaml:"), "{message}");
    assert!(message.contains("missing field `name`"), "{message}");
}

#[test]
fn duplicate_step_ids_name_both_positions() {
    let message = strip_folder(&load_error("duplicate_id.yaml").to_string());
    assert_eq!(
        message,
        "duplicate_id.yaml:11:9: duplicate step id `one` (first defined at duplicate_id.yaml:3:9)"
    );
}

#[test]
fn invalid_values_are_all_reported_with_positions() {
    let error = load_error("bad_values.yaml");
    let lines: Vec<String> = error
        .errors()
        .iter()
        .map(|e| strip_folder(&e.to_string()))
        .collect();
    assert_eq!(lines.len(), 5, "{lines:#?}");
    assert!(
        lines[0].starts_with("bad_values.yaml:3:9: invalid step id `Bad_Id`"),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l
                .starts_with("bad_values.yaml:9:9: step `bad-timeout`: invalid on `everywhere`"))
    );
    assert!(lines.iter().any(|l| l
        .starts_with("bad_values.yaml:11:14: step `bad-timeout`: invalid timeout `10 seconds`")));
    assert!(lines
        .iter()
        .any(|l| l.starts_with("bad_values.yaml:12:5: step `nothing`: needs a `command`")));
    assert!(lines.iter().any(
        |l| l.starts_with("bad_values.yaml:22:13: step `bad-mode`: invalid upload.mode `0999`")
    ));
}

#[test]
fn template_syntax_errors_point_into_the_template() {
    let error = load_error("syntax_error.yaml");
    let lines: Vec<String> = error
        .errors()
        .iter()
        .map(|e| strip_folder(&e.to_string()))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(
        lines[0].starts_with("syntax_error.yaml:8:27: step `one`: command: template syntax error:"),
        "{lines:#?}"
    );
    assert!(lines[1].starts_with("syntax_error.yaml:12:"), "{lines:#?}");
}

#[test]
fn on_demand_steps_are_rolled_and_written_after_every_regular_step() {
    let error = load_error("bad_on_demand.yaml");
    let lines: Vec<String> = error
        .errors()
        .iter()
        .map(|e| strip_folder(&e.to_string()))
        .collect();
    assert_eq!(
        lines,
        [
            "bad_on_demand.yaml:8:5: step `resync-parallel`: invalid on_demand `resync`: an \
             on-demand step runs on one picked peer at a time: it needs `mode: rolling`",
            "bad_on_demand.yaml:19:5: step `after`: invalid on_demand `(none)`: a regular step \
             cannot follow the on-demand step `resync`: on-demand steps run after every regular \
             step, so write them last",
        ]
    );
}

/// A folder holding `files` (name, text).
fn folder_of(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

const SHARING: &str = "name: sharing
partials_from: shared.yaml
partials:
  mine: echo own
steps:
  - id: both
    name: Uses a shared partial and one of its own
    on: all
    command: '{% include \"greet\" %}; {% include \"mine\" %}'
    on_resume: rerun
";

#[test]
fn partials_from_a_file_beside_the_playbook_come_first_and_its_own_replace_them() {
    let dir = folder_of(&[
        ("p.yaml", SHARING),
        (
            "shared.yaml",
            "partials:\n  greet: echo hi {{ host.name | quote }}\n  mine: echo shared\n",
        ),
    ]);
    let procedure = Procedure::load(&dir.path().join("p.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let inventory = lab();
    let rendered = render(&procedure, "both", &context(&inventory, "h1", &[]))
        .unwrap()
        .unwrap();
    assert_eq!(rendered.command.as_deref(), Some("echo hi h1; echo own"));
}

#[test]
fn a_partials_file_that_is_missing_broken_or_outside_the_folder_is_refused_with_its_place() {
    let in_dir = |dir: &tempfile::TempDir, message: String| {
        message.replace(&format!("{}/", dir.path().display()), "")
    };
    // Missing: the playbook's line names the file it looked for.
    let dir = folder_of(&[("p.yaml", SHARING)]);
    let error = Procedure::load(&dir.path().join("p.yaml")).unwrap_err();
    let message = in_dir(&dir, error.to_string());
    assert!(
        message.starts_with("p.yaml:2:16: partials_from: cannot read shared.yaml: "),
        "{message}"
    );
    // A template that does not compile: its line in the partials file.
    let dir = folder_of(&[
        ("p.yaml", SHARING),
        ("shared.yaml", "partials:\n  greet: echo {{ oops\n"),
    ]);
    let error = Procedure::load(&dir.path().join("p.yaml")).unwrap_err();
    let message = in_dir(&dir, error.to_string());
    assert!(
        message.starts_with("shared.yaml:2:") && message.contains("partial `greet`"),
        "{message}"
    );
    // Not a partials file.
    let dir = folder_of(&[("p.yaml", SHARING), ("shared.yaml", "steps: []\n")]);
    let message = in_dir(
        &dir,
        Procedure::load(&dir.path().join("p.yaml"))
            .unwrap_err()
            .to_string(),
    );
    assert!(message.starts_with("shared.yaml:1:"), "{message}");
    // A path, not a file name beside the playbook.
    let outside = SHARING.replace("shared.yaml", "../shared.yaml");
    let dir = folder_of(&[("p.yaml", &outside)]);
    let message = in_dir(
        &dir,
        Procedure::load(&dir.path().join("p.yaml"))
            .unwrap_err()
            .to_string(),
    );
    assert_eq!(
        message,
        "p.yaml:2:16: invalid partials_from `../shared.yaml`: name a `.yaml` file beside the \
         playbook (a file name, no folder)"
    );
}
