//! TODO: packet
