//! Inventory loading and validation.
