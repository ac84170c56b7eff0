//! `check INVENTORY` for playbooks: render every step for every host with stand-in facts, so
//! undefined variables, bad `when`s and refused values surface before anything connects.

use crate::inventory::{Host, Inventory};

use super::context::TemplateContext;
use super::error::ProcedureError;
use super::render::WhenPolicy;
use super::step::Targets;
use super::Procedure;

impl Procedure {
    /// Renders every step for every host it applies to, with placeholder facts and the last
    /// host as anchor (the bootstrap procedure's choice). Steps are rendered even where their
    /// `when` is false, so a mistake in a rarely taken branch is still found.
    pub fn validate_against(&self, inventory: &Inventory) -> Result<(), ProcedureError> {
        let Some(anchor) = inventory.hosts.last() else {
            return Ok(());
        };
        // Each host's context is built and converted once, not once per step.
        let contexts: std::collections::HashMap<&str, (TemplateContext, minijinja::Value)> =
            inventory
                .hosts
                .iter()
                .map(|host| {
                    let context = TemplateContext::placeholder(inventory, host, anchor);
                    let value = self.context_value(&context);
                    (host.name.as_str(), (context, value))
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
            for host in hosts_of(step, inventory, anchor) {
                let (context, value) = &contexts[host.name.as_str()];
                if let Err(error) =
                    self.render_with(step, context, value, WhenPolicy::RenderEverything)
                {
                    errors.push(ProcedureError::from(error));
                }
            }
        }
        ProcedureError::from_list(errors).map_or(Ok(()), Err)
    }
}

fn hosts_of<'a>(step: &super::StepSpec, inventory: &'a Inventory, anchor: &Host) -> Vec<&'a Host> {
    inventory
        .hosts
        .iter()
        .filter(|host| match &step.on {
            Targets::All => true,
            Targets::Anchor => host.name == anchor.name,
            Targets::Others => host.name != anchor.name,
            Targets::Host(name) => &host.name == name,
        })
        .collect()
}
