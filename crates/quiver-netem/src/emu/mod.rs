//! Real-socket link emulation (in progress).
