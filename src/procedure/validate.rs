//! Playbooks against an inventory before anything connects: render every step with stand-in
//! facts, so undefined variables, bad `when`s and refused values surface first.

use crate::inventory::Inventory;

use super::context::TemplateContext;
use super::error::ProcedureError;
use super::render::WhenPolicy;
use super::sample::one_per_variable_set;
use super::step::Targets;
use super::Procedure;

/// Which hosts a playbook is rendered for when it is validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// Every host: what `check` does.
    EveryHost,
    /// One host per distinct variable set (see `sample.rs`), the anchor, and every host a step
    /// names: what `plan`, `apply` and `recover` do before connecting. The planner then renders
    /// the chosen playbook for every host anyway, so a full pass here would double its work
    /// for the chosen playbook and render the other one for nothing.
    OnePerVariableSet,
}

impl Procedure {
    /// Renders every step for every host it applies to, with placeholder facts and the last
    /// host as anchor (the bootstrap procedure's choice). Steps are rendered even where their
    /// `when` is false, so a mistake in a rarely taken branch is still found.
    pub fn validate_against(&self, inventory: &Inventory) -> Result<(), ProcedureError> {
        self.validate(inventory, Coverage::EveryHost)
    }

    /// [`Procedure::validate_against`] for the hosts that `coverage` names.
    pub fn validate(
        &self,
        inventory: &Inventory,
        coverage: Coverage,
    ) -> Result<(), ProcedureError> {
        let Some(anchor) = inventory.hosts.last() else {
            return Ok(());
        };
        let named = |name: &crate::inventory::HostName| {
            self.steps
                .iter()
                .any(|step| matches!(&step.on, Targets::Host(host) if host == name))
        };
        let positions: Vec<usize> = match coverage {
            Coverage::EveryHost => (0..inventory.hosts.len()).collect(),
            Coverage::OnePerVariableSet => {
                one_per_variable_set(&inventory.hosts, inventory.hosts.len() - 1, |host| {
                    named(&host.name)
                })
            }
        };
        // Each host's context is built and converted once, not once per step.
        let contexts: Vec<_> = positions
            .iter()
            .map(|&index| {
                let host = &inventory.hosts[index];
                let context = TemplateContext::placeholder(inventory, host, anchor);
                (host, self.prepare(&context))
            })
            .collect();
        let mut errors = Vec::new();
        for step in &self.steps {
            if let Targets::Host(name) = &step.on {
                if inventory.host(name.as_str()).is_none() {
                    errors.push(ProcedureError::UnknownHost {
                        at: step.position.clone(),
                        step: step.id.clone(),
                        host: name.to_string(),
                    });
                    continue;
                }
            }
            for (host, context) in &contexts {
                if !step.on.includes(&host.name, &anchor.name) {
                    continue;
                }
                if let Err(error) = self.render_with(step, context, WhenPolicy::RenderEverything) {
                    errors.push(ProcedureError::from(error));
                }
            }
        }
        ProcedureError::from_list(errors).map_or(Ok(()), Err)
    }
}
