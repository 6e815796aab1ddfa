//! TODO: range_set
