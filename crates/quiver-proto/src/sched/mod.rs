//! Stream schedulers.
