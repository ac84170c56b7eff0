//! Runs a shipped playbook, step by step, against a lab made by `cluster-lab up` — a stand-in
//! for the executor, to prove the playbooks' commands work against real sshd hosts running the
//! stand-in peers. Ignored by default (it needs a running lab):
//!
//! ```sh
//! cluster-lab up --dir /tmp/lab --version 0.10.1 --target 0.11.0
//! LAB_DIR=/tmp/lab PLAYBOOK=standard.yaml cargo test --test procedure_lab -- --ignored --nocapture
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use cluster_upgrade::inventory::{Host, Identity, Inventory};
use cluster_upgrade::procedure::{CurrentContext, Procedure, RenderedStep, RunContext, TemplateContext};

struct Lab {
    inventory: Inventory,
}

impl Lab {
    fn host(&self, name: &str) -> &Host {
        self.inventory.host(name).unwrap()
    }

    fn ssh_base(&self, host: &Host, program: &str) -> Command {
        let mut command = Command::new(program);
        let Identity::File(key) = &host.identity else { panic!("the lab uses key files") };
        command.arg("-i").arg(key);
        command.arg("-o").arg(format!("UserKnownHostsFile={}", self.inventory.ssh.known_hosts.display()));
        command.args(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"]);
        command
    }

    fn run(&self, host: &Host, script: &str) -> Output {
        let mut command = self.ssh_base(host, "ssh");
        command.arg("-p").arg(host.port.to_string());
        command.arg(format!("{}@{}", host.user, host.address));
        command.arg(format!("sh -c {}", shlex::try_quote(script).unwrap()));
        command.output().unwrap()
    }

    fn upload(&self, host: &Host, from: &Path, to: &str, mode: u32) {
        let mut command = self.ssh_base(host, "scp");
        command.arg("-P").arg(host.port.to_string()).arg(from);
        command.arg(format!("{}@{}:{}", host.user, host.address, to));
        assert!(command.status().unwrap().success(), "upload of {} failed", from.display());
        let chmod = self.run(host, &format!("chmod {mode:o} {}", shlex::try_quote(to).unwrap()));
        assert!(chmod.status.success());
    }

    /// Peer ID and cluster multiaddr of `host`, from its ctl.
    fn facts(&self, host: &Host) -> CurrentContext {
        let bin = host.vars.str("bin_dir").unwrap();
        let api = host.vars.str("api").unwrap();
        let out = self.run(host, &format!("{bin}/ipfs-cluster-ctl --host {api} --enc json id"));
        let id: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let peer_id = id["id"].as_str().map(str::to_string);
        let multiaddr = id["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str())
            .find(|a| a.contains(host.address.as_str()))
            .map(str::to_string);
        CurrentContext { version: id["version"].as_str().map(str::to_string), state_format: None, peer_id, multiaddr }
    }
}

fn execute(lab: &Lab, step: &RenderedStep) {
    let started = Instant::now();
    let run_on = lab.host(step.run_on.as_str());
    if let Some(check) = &step.check {
        if lab.run(run_on, check).status.success() {
            println!("  {} on {}: already done", step.id, step.host);
            return;
        }
    }
    if let Some(upload) = &step.upload {
        lab.upload(run_on, &upload.from, &upload.to, upload.mode);
    }
    if let Some(command) = &step.command {
        let mut attempt = 0;
        loop {
            let out = lab.run(run_on, command);
            if out.status.success() {
                break;
            }
            attempt += 1;
            assert!(
                attempt <= step.retries,
                "{} on {} failed: {}\n--- command\n{command}\n--- stdout\n{}\n--- stderr\n{}",
                step.id,
                step.run_on,
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    if let Some(wait) = &step.wait_until {
        let host = lab.host(wait.run_on.as_str());
        let deadline = Instant::now() + wait.deadline.get();
        loop {
            let out = lab.run(host, &wait.command);
            if out.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} on {}: wait_until never held:\n{}\n{}",
                step.id,
                wait.run_on,
                wait.command,
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(wait.interval.get());
        }
    }
    println!("  {} on {} (via {}): done in {:.1?}", step.id, step.host, step.run_on, started.elapsed());
}

#[test]
#[ignore = "needs a lab: set LAB_DIR (see the module comment)"]
fn a_shipped_playbook_upgrades_a_lab() {
    let dir = PathBuf::from(std::env::var("LAB_DIR").expect("LAB_DIR"));
    let name = std::env::var("PLAYBOOK").unwrap_or_else(|_| "standard.yaml".into());
    let inventory = Inventory::load(&dir.join("inventory.yaml"), &[]).unwrap_or_else(|e| panic!("{e}"));
    let procedure = Procedure::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks").join(&name)).unwrap();
    procedure.validate_against(&inventory).unwrap_or_else(|e| panic!("{e}"));
    let lab = Lab { inventory };
    let anchor = lab.inventory.hosts.last().unwrap();
    let anchor_facts = lab.facts(anchor);
    let names: Vec<_> = lab.inventory.hosts.iter().map(|h| h.name.clone()).collect();
    let contexts: Vec<TemplateContext> = lab
        .inventory
        .hosts
        .iter()
        .map(|host| {
            let mut context = TemplateContext::new(&lab.inventory, host, anchor);
            context.current = lab.facts(host);
            context.anchor.peer_id = anchor_facts.peer_id.clone();
            context.anchor.multiaddr = anchor_facts.multiaddr.clone();
            context.run = RunContext::new("lab-test", host.vars.str("bin_dir").unwrap());
            context
        })
        .collect();
    for step in &procedure.steps {
        println!("{}: {}", step.id, step.name);
        for host in step.on.select(&names, &anchor.name) {
            let index = names.iter().position(|n| n == host).unwrap();
            if let Some(rendered) = procedure.render_step(step, &contexts[index]).unwrap() {
                execute(&lab, &rendered);
            }
        }
    }
}
