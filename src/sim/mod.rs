//! The simulator (sim.md).
