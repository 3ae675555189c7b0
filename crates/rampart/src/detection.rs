//! Wiring of the detection engine into the proxy's request stage: one compiled [`Detector`] per route,
//! built from the route's `[routes.detection]` table whenever a policy is compiled.

use rampart_apispec::{ApiRequest, Contract, ViolationKind};
use rampart_detect::{DetectionConfig, Detector, Verdict};
use rampart_policy::{ConfigErrors, Diagnostic, OpenApiPolicy, Policy};
use rampart_proxy::inspect::{AnswerCheck, FindingSummary, RequestContext};
use rampart_proxy::{Inspection, Inspector, InspectorFactory};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

pub struct DetectionFactory;

impl InspectorFactory for DetectionFactory {
    fn build(&self, policy: &Policy) -> Result<Arc<dyn Inspector>, ConfigErrors> {
        let file = policy
            .source
            .clone()
            .unwrap_or_else(|| PathBuf::from("<embedded defaults>"));
        let mut errors = Vec::new();
        let mut by_route = HashMap::new();
        // Routes without a detection table share one detector with the defaults.
        let mut default: Option<Arc<Detector>> = None;
        for route in policy.routes.iter() {
            let (line, column) = route.detection_at;
            let diag = |message: String, hint: &str| Diagnostic {
                file: file.clone(),
                line,
                column,
                message,
                hint: Some(hint.to_string()),
            };
            let detector = match &route.detection {
                None => match &default {
                    Some(d) => d.clone(),
                    None => match Detector::new(&DetectionConfig::default()) {
                        Ok(d) => default.insert(Arc::new(d)).clone(),
                        Err(e) => {
                            errors.push(diag(
                                format!("default detection settings: {e}"),
                                "this is a bug; please report it",
                            ));
                            continue;
                        }
                    },
                },
                Some(table) => {
                    let mut cfg: DetectionConfig = match table.clone().try_into() {
                        Ok(c) => c,
                        Err(e) => {
                            errors.push(diag(
                                format!("route `{}`: [routes.detection]: {}", route.name, e.message().trim()),
                                "keys: sensitivity, threshold, exclusions, custom_rules, disabled_rules, graphql, grpc (README, docs/rules.md)",
                            ));
                            continue;
                        }
                    };
                    // .proto paths are relative to the config file, like every other path in it.
                    let base = policy
                        .source
                        .as_ref()
                        .and_then(|p| p.parent())
                        .map(std::path::Path::to_path_buf)
                        .unwrap_or_default();
                    for p in cfg
                        .grpc
                        .protos
                        .iter_mut()
                        .chain(cfg.grpc.include.iter_mut())
                        .chain(cfg.graphql.schema.iter_mut())
                    {
                        *p = base.join(&*p).to_string_lossy().into_owned();
                    }
                    match Detector::new(&cfg) {
                        Ok(d) => Arc::new(d),
                        Err(e) => {
                            errors.push(diag(
                                format!("route `{}`: {e}", route.name),
                                "see docs/rules.md for rule ids and classes",
                            ));
                            continue;
                        }
                    }
                }
            };
            by_route.insert(route.name.clone(), detector);
        }
        // OpenAPI contracts, one per spec file however many routes share it.
        let mut contracts = HashMap::new();
        let mut loaded: HashMap<PathBuf, Arc<Contract>> = HashMap::new();
        for route in policy.routes.iter() {
            let Some(o) = &route.openapi else { continue };
            let contract = match loaded.get(&o.spec) {
                Some(c) => c.clone(),
                None => {
                    match Contract::load(&o.spec) {
                        Ok(c) => loaded.entry(o.spec.clone()).or_insert(Arc::new(c)).clone(),
                        Err(e) => {
                            errors.push(Diagnostic {
                            file: file.clone(),
                            line: o.spec_at.0,
                            column: o.spec_at.1,
                            message: format!("route `{}`: OpenAPI spec refused: {e}", route.name),
                            hint: Some("fix the spec (`rampart openapi validate FILE` checks it); the running policy stays".into()),
                        });
                            continue;
                        }
                    }
                }
            };
            contracts.insert(route.name.clone(), (contract, o.clone()));
        }
        if errors.is_empty() {
            Ok(Arc::new(DetectInspector { by_route, contracts }))
        } else {
            Err(ConfigErrors(errors))
        }
    }
}

struct DetectInspector {
    by_route: HashMap<Arc<str>, Arc<Detector>>,
    contracts: HashMap<Arc<str>, (Arc<Contract>, OpenApiPolicy)>,
}

/// A contract violation's weight: above every sensitivity's threshold, as an enforced contract is meant
/// to decide alone.
const VIOLATION_SCORE: u32 = 10;

impl Inspector for DetectInspector {
    fn inspect(&self, ctx: &RequestContext<'_>) -> Inspection {
        let Some(detector) = self.by_route.get(&ctx.route.name) else {
            return Inspection::default();
        };
        let view = rampart_inspect::RequestView {
            method: &ctx.parts.method,
            uri: &ctx.parts.uri,
            headers: &ctx.parts.headers,
            body: ctx.body,
            body_truncated: ctx.body_truncated,
        };
        let analysis = if ctx.message {
            detector.analyze_message(&view)
        } else {
            detector.analyze(&view)
        };
        let mut inspection = Inspection {
            attack: analysis.verdict == Verdict::Block,
            mask_graphql_suggestions: analysis.mask_graphql_suggestions,
            score: analysis.score,
            findings: analysis
                .findings
                .into_iter()
                .map(|f| FindingSummary {
                    class: f.class.as_str().to_string(),
                    rule_id: f.rule_id.into_owned(),
                    score: f.score,
                    point: f.point,
                    decode_chain: f.decode_chain,
                    evidence: f.evidence,
                })
                .collect(),
            report: false,
        };
        if let Some((contract, policy)) = self.contracts.get(&ctx.route.name).filter(|_| !ctx.message) {
            let checked = contract.check(&ApiRequest {
                method: ctx.parts.method.as_str(),
                path: ctx.parts.uri.path(),
                query: ctx.parts.uri.query(),
                headers: &ctx.parts.headers,
                body: ctx.body,
                body_complete: !ctx.body_truncated,
            });
            let unknown = |k: ViolationKind| matches!(k, ViolationKind::UnknownPath | ViolationKind::UnknownMethod);
            let violations: Vec<_> = checked
                .violations
                .into_iter()
                .filter(|v| policy.unknown_is_violation || !unknown(v.kind))
                .collect();
            if !violations.is_empty() {
                let score = if policy.enforce { VIOLATION_SCORE } else { 0 };
                inspection
                    .findings
                    .extend(violations.into_iter().map(|v| violation_finding(v, score)));
                if policy.enforce {
                    inspection.score += VIOLATION_SCORE;
                    inspection.attack = true;
                } else {
                    inspection.report = true;
                }
            }
        }
        inspection
    }

    fn answer_check(&self, ctx: &RequestContext<'_>) -> Option<Box<dyn AnswerCheck>> {
        let (contract, policy) = self.contracts.get(&ctx.route.name)?;
        policy.check_responses.then(|| {
            Box::new(ContractAnswer {
                contract: contract.clone(),
                method: ctx.parts.method.as_str().to_string(),
                path: ctx.parts.uri.path().to_string(),
            }) as Box<dyn AnswerCheck>
        })
    }
}

/// The check of one answer against the operation its request matched.
struct ContractAnswer {
    contract: Arc<Contract>,
    method: String,
    path: String,
}

impl AnswerCheck for ContractAnswer {
    fn check(&self, status: u16, content_type: Option<&str>, body: &[u8], complete: bool) -> Vec<FindingSummary> {
        self.contract
            .check_response(&self.method, &self.path, status, content_type, body, complete)
            .into_iter()
            .map(|v| violation_finding(v, 0))
            .collect()
    }
}

/// A contract violation as a finding of class `api`, its message as evidence.
fn violation_finding(v: rampart_apispec::Violation, score: u32) -> FindingSummary {
    FindingSummary {
        class: "api".into(),
        rule_id: v.kind.rule_id().into(),
        score,
        point: v.location,
        decode_chain: Vec::new(),
        evidence: v.message.chars().take(160).collect(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_level_a_trigger_may_set_is_a_detection_sensitivity() {
        for level in rampart_policy::events::SENSITIVITY_LEVELS {
            assert!(level.parse::<rampart_detect::Sensitivity>().is_ok(), "{level}");
        }
    }
}
