//! SSH transport (russh).
