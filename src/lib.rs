//! Reproducible figures for "On the Learning Dynamics of Deep Neural
//! Networks" (Tachet des Combes et al., arXiv:1809.06848).
//!
//! The flow, one module per step (see ARCHITECTURE.md):
//! `spec` -> `pipeline` (plan, `cache`, `engine` via `kinds`) ->
//! `claims` -> `render`, with `theory` beside the measurements.

pub mod cache;
pub mod caption;
pub mod check;
pub mod claims;
pub mod datasets;
pub mod engine;
pub mod figure;
pub mod files;
pub mod gallery;
pub mod kinds;
pub mod lint;
pub mod pipeline;
pub mod preflight;
pub mod provenance;
pub mod publication;
pub mod records;
pub mod remote;
pub mod render;
pub mod rng;
pub mod shapes;
pub mod slurm;
pub mod spec;
pub mod stats;
pub mod status;
pub mod suggest;
pub mod theory;
pub mod values;
