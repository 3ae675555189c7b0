//! Detection configuration (per route): sensitivity, threshold, exclusions,
//! custom rules, disabled rules.

use serde::Deserialize;

/// How eager the engine is to block: maps to an anomaly threshold.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Sensitivity {
    Low,
    #[default]
    Medium,
    High,
    Paranoid,
}

impl std::str::FromStr for Sensitivity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "low" => Sensitivity::Low,
            "medium" => Sensitivity::Medium,
            "high" => Sensitivity::High,
            "paranoid" => Sensitivity::Paranoid,
            other => {
                return Err(format!(
                    "`{other}` is not a sensitivity level (low, medium, high, paranoid)"
                ))
            }
        })
    }
}

impl Sensitivity {
    /// The anomaly threshold of the level: a request blocks when the sum of
    /// its finding scores reaches it.
    pub fn threshold(self) -> u32 {
        match self {
            Sensitivity::Low => 10,
            Sensitivity::Medium => 5,
            Sensitivity::High => 4,
            Sensitivity::Paranoid => 3,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectionConfig {
    pub sensitivity: Sensitivity,
    /// Explicit anomaly threshold; overrides `sensitivity`.
    pub threshold: Option<u32>,
    pub exclusions: Vec<Exclusion>,
    pub custom_rules: Vec<CustomRule>,
    /// Rule ids (e.g. "SQLI-005") that never produce a finding.
    pub disabled_rules: Vec<String>,
    /// Limits on GraphQL documents (`query` fields of JSON bodies, `?query=`).
    pub graphql: crate::graphql::GraphqlLimits,
    /// .proto files of the route's gRPC services.
    pub grpc: GrpcConfig,
}

/// `[routes.detection.grpc]`: paths relative to the config file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcConfig {
    pub protos: Vec<String>,
    /// Directories imports are looked up in (default: the directory of each file).
    pub include: Vec<String>,
}

/// Findings of `classes` (all classes when empty) on points matching the
/// `point` glob (and, when set, requests whose path matches `path`) are
/// dropped.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exclusion {
    pub point: String,
    #[serde(default)]
    pub classes: Vec<String>,
    #[serde(default)]
    pub path: Option<String>,
}

/// A regex on points matching a glob.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomRule {
    pub id: String,
    pub point: String,
    pub pattern: String,
    #[serde(default)]
    pub class: Option<String>,
    #[serde(default)]
    pub score: Option<u32>,
    /// "block" (score at least the threshold), "score" (default: add the
    /// score, the threshold when omitted) or "log" (score 0 unless given).
    #[serde(default)]
    pub action: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid detection config at `{field}`: {hint}")]
    Invalid { field: String, hint: String },
}
