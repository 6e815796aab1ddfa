//! TODO: streams
