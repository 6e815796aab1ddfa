//! TODO: connection
