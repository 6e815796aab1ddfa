//! TODO: recovery
