//! rampart's API contracts: OpenAPI 3.0 and 3.1 documents loaded and enforced on requests.
//!
//! Module map:
//! - [`load`]: the spec file and every file its relative `$ref`s reach (JSON or YAML), the version, and
//!   OpenAPI 3.0 schemas rewritten into JSON Schema 2020-12 so one validator serves both versions;
//! - [`contract`]: the compiled contract (server base paths, a path router, per operation its
//!   parameters, request bodies and security requirements) and the check of one request against it,
//!   which returns violations with their kind, rule id and location;
//! - [`values`]: request values as the spec types them (query, cookies, multipart, string coercion);
//! - [`discovery`]: the inventory learned from traffic (templates inferred, parameters typed, sensitive
//!   data counted), its export as OpenAPI 3.1, and its diff against specs (shadow, orphan, zombie);
//! - [`store`]: the inventory in SQLite, per API host.

pub mod contract;
pub mod discovery;
pub mod load;
pub mod store;
pub mod values;

pub use contract::{ApiRequest, Checked, Contract, OperationInfo, Violation, ViolationKind};
pub use load::{SpecError, Version};
