//! TODO: cc
