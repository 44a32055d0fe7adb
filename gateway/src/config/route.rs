//! `[[routes]]`: the route table as written. Compiled and matched by
//! `stage::route_table`.

use serde::Deserialize;

/// One route as written in the configuration.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// A name for metrics and logs (default: the methods and path pattern).
    #[serde(default)]
    pub name: Option<String>,
    /// Host to match (case-insensitive, port ignored); absent or `*` for any.
    #[serde(default)]
    pub host: Option<String>,
    /// Methods to match (`GET`, `POST`, …); empty or `["*"]` for any.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Path pattern: literal segments, `{name}` for one segment, and a
    /// final `*` for any rest (e.g. `/envs/{env}/catalogs/{catalog}/tables/*`).
    pub path: String,
    /// Name of the upstream to forward to.
    pub upstream: String,
    /// The action checked (e.g. `read`).
    pub action: String,
    /// The resource checked, with `{name}` filled from the path (e.g. `catalog/{catalog}`).
    pub resource: String,
    /// Log denials but forward anyway (for rollouts).
    #[serde(default)]
    pub shadow: bool,
    /// Send the upstream an `X-Portcullis-Assertion`: a short-lived JWT
    /// the gateway signs (`[assertion]`) saying who asked, for what, on
    /// which revision — identity the upstream can verify, where the other
    /// `X-Portcullis-*` headers are only as trustworthy as the network.
    #[serde(default)]
    pub assertion: bool,
}

impl RouteSpec {
    /// The route's name in metrics and logs.
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None if self.methods.is_empty() => format!("* {}", self.path),
            None => format!("{} {}", self.methods.join(","), self.path),
        }
    }
}
