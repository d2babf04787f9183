//! hookguard: an admission webhook and finalizer sidecar that makes Argo CD resource hooks,
//! and the Helm hooks Argo CD maps onto them, safe, explicit and cleaned up.
//!
//! Layout: pure decisions in the middle (`hooks`, `rules`, `mutation`, `admission`), I/O at
//! the edges (`server`, `certs`, `cli`).

pub mod admission;
pub mod alloc;
pub mod certs;
pub mod certs_cluster;
pub mod cli;
pub mod finalizer;
pub mod hooks;
pub mod jsonline;
pub mod lint;
pub mod mutation;
pub mod policy;
pub mod recent;
pub mod rules;
pub mod server;
