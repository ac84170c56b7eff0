//! Playbooks: loading, step specs and templates.
