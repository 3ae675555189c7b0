//! The request stage's decision for a request whose body is already in memory, as `rampart eval` and
//! `rampart explain` need it: the same framing checks, route lookup, body rules, inspector and mode logic as
//! the live proxy, without sockets or an upstream.

use crate::headers::{self, Reject};
use crate::inspect::{Inspection, RequestContext};
use crate::runtime::Runtime;
use rampart_policy::{Mode, Oversize};
use std::net::IpAddr;

#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Decision {
    /// Refused by the HTTP layer before routing.
    Reject {
        reason: &'static str,
        status: u16,
    },
    NoRoute,
    /// `OPTIONS *`, which asks about the server, not a resource: the gateway answers it (200, `Allow`).
    ServerOptions,
    /// Body over the route's inspection limit with `oversize = "block"` in block mode, or over `max_size`.
    TooLarge,
    Block {
        route: String,
        inspection: Inspection,
    },
    /// An attack on a monitor-mode route: logged, passed.
    Monitor {
        route: String,
        inspection: Inspection,
    },
    Pass {
        route: String,
        inspection: Option<Inspection>,
    },
}

impl Decision {
    /// The status the proxy answers with, or `None` when the request goes upstream.
    pub fn status(&self, rt: &Runtime) -> Option<u16> {
        match self {
            Decision::Reject { status, .. } => Some(*status),
            Decision::NoRoute => Some(404),
            Decision::ServerOptions => Some(200),
            Decision::TooLarge => Some(413),
            Decision::Block { .. } => Some(rt.policy.block.status),
            Decision::Monitor { .. } | Decision::Pass { .. } => None,
        }
    }
}

pub fn decide(rt: &Runtime, parts: &http::request::Parts, body: &[u8], client_ip: IpAddr) -> Decision {
    if let Err(reject) = headers::check_request(parts, &rt.policy.limits) {
        return rejected(reject);
    }
    if headers::is_server_options(parts) {
        return Decision::ServerOptions;
    }
    let host = headers::request_host(parts);
    let Some(route) = rt.policy.routes.find(host, parts.uri.path()) else {
        return Decision::NoRoute;
    };
    let name = route.name.to_string();
    if route.body.max_size.is_some_and(|max| body.len() as u64 > max) {
        return Decision::TooLarge;
    }
    if route.mode == Mode::Off {
        return Decision::Pass {
            route: name,
            inspection: None,
        };
    }
    let truncated = body.len() > route.body.inspect_limit;
    if truncated && route.mode == Mode::Block && route.body.oversize == Oversize::Block {
        return Decision::TooLarge;
    }
    let inspected = &body[..body.len().min(route.body.inspect_limit)];
    let inspection = rt.inspector.inspect(&RequestContext {
        route,
        parts,
        body: inspected,
        body_truncated: truncated,
        client_ip,
        message: false,
    });
    match (inspection.attack, route.mode) {
        (true, Mode::Block) => Decision::Block {
            route: name,
            inspection,
        },
        (true, _) => Decision::Monitor {
            route: name,
            inspection,
        },
        (false, _) => Decision::Pass {
            route: name,
            inspection: Some(inspection),
        },
    }
}

fn rejected(reject: Reject) -> Decision {
    Decision::Reject {
        reason: reject.reason(),
        status: reject.status().as_u16(),
    }
}
