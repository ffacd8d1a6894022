//! hearth-worker
