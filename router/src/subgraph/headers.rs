//! The headers of subgraph requests: the client headers of `subgraph_defaults.forward_headers`,
//! then the `headers` rules (for all subgraphs, then per subgraph), compiled once per (re)load
//! and applied once per request; and the response rules, which collect subgraph response
//! headers (and merge their `Cache-Control`) for the client's response.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http::header::CACHE_CONTROL;
use http::{HeaderMap, HeaderName, HeaderValue};
use regex::Regex;
use xxhash_rust::xxh3::Xxh3;

use crate::config::{
    ConfigError, HeadersConfig, MergeAlgorithm, RequestHeaderRule, ResponseHeaderRule, header_name,
};

/// Headers the router sets itself or the HTTP layer owns: no rule may set them, and a
/// `matching` rule never copies them from the client.
const RESERVED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "content-type",
    "content-encoding",
    "accept",
    "accept-encoding",
    "shippy-router-signature",
    "shippy-subgraph-secret",
    shippy_security::login_limits::CLIENT_IP_HEADER,
];

fn reserved(name: &HeaderName) -> bool {
    RESERVED.contains(&name.as_str())
}

enum Selector {
    Named(HeaderName),
    Matching(Regex),
}

impl Selector {
    fn matches(&self, name: &HeaderName) -> bool {
        match self {
            Selector::Named(named) => named == name,
            Selector::Matching(pattern) => !reserved(name) && pattern.is_match(name.as_str()),
        }
    }
}

enum Rule {
    Propagate {
        selector: Selector,
        rename: Option<HeaderName>,
        default: Option<HeaderValue>,
    },
    Remove(Selector),
    Insert(HeaderName, HeaderValue),
}

impl Rule {
    fn apply(&self, client: &HeaderMap, out: &mut HeaderMap) {
        match self {
            Rule::Propagate {
                selector: Selector::Named(name),
                rename,
                default,
            } => {
                let target = rename.as_ref().unwrap_or(name);
                let mut values = client.get_all(name).iter().peekable();
                if values.peek().is_none() {
                    if let Some(default) = default {
                        out.insert(target.clone(), default.clone());
                    }
                    return;
                }
                out.remove(target);
                for value in values {
                    out.append(target.clone(), value.clone());
                }
            }
            Rule::Propagate { selector, .. } => {
                for name in client.keys().filter(|name| selector.matches(name)) {
                    out.remove(name);
                    for value in client.get_all(name) {
                        out.append(name.clone(), value.clone());
                    }
                }
            }
            Rule::Remove(selector) => {
                let names: Vec<HeaderName> = out
                    .keys()
                    .filter(|n| selector.matches(n))
                    .cloned()
                    .collect();
                for name in names {
                    out.remove(name);
                }
            }
            Rule::Insert(name, value) => {
                out.insert(name.clone(), value.clone());
            }
        }
    }
}

/// A compiled response rule.
struct ResponseRule {
    selector: Selector,
    rename: Option<HeaderName>,
    default: Option<HeaderValue>,
    algorithm: MergeAlgorithm,
}

impl ResponseRule {
    fn collect(&self, response: &HeaderMap, out: &mut HeaderMap) {
        let copy = |name: &HeaderName, target: &HeaderName, out: &mut HeaderMap| {
            let mut values = response.get_all(name).iter().peekable();
            if values.peek().is_none() {
                return;
            }
            match self.algorithm {
                MergeAlgorithm::First if out.contains_key(target) => return,
                MergeAlgorithm::First | MergeAlgorithm::Last => {
                    out.remove(target);
                }
                MergeAlgorithm::Append => {}
            }
            for value in values {
                out.append(target.clone(), value.clone());
            }
        };
        match &self.selector {
            Selector::Named(name) => copy(name, self.rename.as_ref().unwrap_or(name), out),
            Selector::Matching(_) => {
                for name in response.keys().filter(|n| self.selector.matches(n)) {
                    copy(name, name, out);
                }
            }
        }
    }
}

/// The compiled header configuration.
pub(crate) struct HeaderPolicy {
    forward: Vec<HeaderName>,
    all: Vec<Rule>,
    by_subgraph: HashMap<String, Vec<Rule>>,
    response_all: Vec<ResponseRule>,
    response_by_subgraph: HashMap<String, Vec<ResponseRule>>,
    merge_cache_control: bool,
}

impl HeaderPolicy {
    /// Compiles `forward` and `config`; every unusable rule is reported, naming it.
    pub(crate) fn new(
        forward: &[String],
        config: &HeadersConfig,
    ) -> Result<HeaderPolicy, ConfigError> {
        let forward = forward
            .iter()
            .map(|name| header_name("subgraph_defaults.forward_headers", name))
            .collect::<Result<Vec<_>, _>>()?;
        let mut problems = Vec::new();
        let all = compile("headers.all.request", &config.all.request, &mut problems);
        let by_subgraph = config
            .subgraphs
            .iter()
            .filter(|(_, rules)| !rules.request.is_empty())
            .map(|(subgraph, rules)| {
                let at = format!("headers.subgraphs.{subgraph}.request");
                (
                    subgraph.clone(),
                    compile(&at, &rules.request, &mut problems),
                )
            })
            .collect();
        let response_all =
            compile_response("headers.all.response", &config.all.response, &mut problems);
        let response_by_subgraph = config
            .subgraphs
            .iter()
            .filter(|(_, rules)| !rules.response.is_empty())
            .map(|(subgraph, rules)| {
                let at = format!("headers.subgraphs.{subgraph}.response");
                (
                    subgraph.clone(),
                    compile_response(&at, &rules.response, &mut problems),
                )
            })
            .collect();
        if !problems.is_empty() {
            return Err(ConfigError::Invalid { problems });
        }
        Ok(HeaderPolicy {
            forward,
            all,
            by_subgraph,
            response_all,
            response_by_subgraph,
            merge_cache_control: config.merge_cache_control,
        })
    }

    fn collects_responses(&self) -> bool {
        self.merge_cache_control
            || !self.response_all.is_empty()
            || !self.response_by_subgraph.is_empty()
    }

    /// The headers of every subgraph request of one client request (and, when response rules
    /// are configured, the collector of what their responses pass on).
    pub(crate) fn outgoing(self: &Arc<Self>, client: &HeaderMap) -> SubgraphHeaders {
        let mut common = HeaderMap::new();
        for name in &self.forward {
            for value in client.get_all(name) {
                common.append(name.clone(), value.clone());
            }
        }
        for rule in &self.all {
            rule.apply(client, &mut common);
        }
        let specific = self
            .by_subgraph
            .iter()
            .map(|(subgraph, rules)| {
                let mut headers = common.clone();
                for rule in rules {
                    rule.apply(client, &mut headers);
                }
                (subgraph.clone(), headers)
            })
            .collect();
        SubgraphHeaders {
            common,
            specific,
            responses: self.collects_responses().then(|| {
                Arc::new(Responses {
                    policy: Arc::clone(self),
                    collected: Mutex::new(Collected::default()),
                })
            }),
        }
    }
}

fn compile(at: &str, rules: &[RequestHeaderRule], problems: &mut Vec<String>) -> Vec<Rule> {
    let mut compiled = Vec::with_capacity(rules.len());
    for (index, rule) in rules.iter().enumerate() {
        let at = format!("{at}[{index}]");
        match compile_rule(rule) {
            Ok(rule) => compiled.push(rule),
            Err(problem) => problems.push(format!("`{at}`: {problem}")),
        }
    }
    compiled
}

fn compile_rule(rule: &RequestHeaderRule) -> Result<Rule, String> {
    let name = |name: &str| -> Result<HeaderName, String> {
        let parsed = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
            .map_err(|_| format!("`{name}` is not a valid header name"))?;
        if reserved(&parsed) {
            return Err(format!("`{parsed}` is set by the router itself"));
        }
        Ok(parsed)
    };
    let value = |value: &str| {
        HeaderValue::from_str(value).map_err(|_| format!("`{value}` is not a valid header value"))
    };
    let selector = |named: &Option<String>, matching: &Option<String>| match (named, matching) {
        (Some(named), None) => Ok(Selector::Named(name(named)?)),
        (None, Some(pattern)) => Regex::new(pattern)
            .map(Selector::Matching)
            .map_err(|e| format!("`{pattern}` is not a valid pattern: {e}")),
        _ => Err("give exactly one of `named` and `matching`".to_string()),
    };
    match rule {
        RequestHeaderRule::Propagate {
            named,
            matching,
            rename,
            default,
        } => {
            let selector = selector(named, matching)?;
            if matches!(selector, Selector::Matching(_)) && (rename.is_some() || default.is_some())
            {
                return Err("`rename` and `default` need `named`".to_string());
            }
            Ok(Rule::Propagate {
                selector,
                rename: rename.as_deref().map(name).transpose()?,
                default: default.as_deref().map(value).transpose()?,
            })
        }
        RequestHeaderRule::Remove { named, matching } => {
            Ok(Rule::Remove(selector(named, matching)?))
        }
        RequestHeaderRule::Insert { name: n, value: v } => Ok(Rule::Insert(name(n)?, value(v)?)),
    }
}

fn compile_response(
    at: &str,
    rules: &[ResponseHeaderRule],
    problems: &mut Vec<String>,
) -> Vec<ResponseRule> {
    let mut compiled = Vec::with_capacity(rules.len());
    for (index, rule) in rules.iter().enumerate() {
        let ResponseHeaderRule::Propagate {
            named,
            matching,
            rename,
            default,
            algorithm,
        } = rule;
        // The same checks as a request rule's propagate.
        let as_request = RequestHeaderRule::Propagate {
            named: named.clone(),
            matching: matching.clone(),
            rename: rename.clone(),
            default: default.clone(),
        };
        match compile_rule(&as_request) {
            Ok(Rule::Propagate {
                selector,
                rename,
                default,
            }) => compiled.push(ResponseRule {
                selector,
                rename,
                default,
                algorithm: *algorithm,
            }),
            Ok(_) => unreachable!("a propagate rule compiles to a propagate rule"),
            Err(problem) => problems.push(format!("`{at}[{index}]`: {problem}")),
        }
    }
    compiled
}

/// What the subgraph responses of one request pass on.
#[derive(Default)]
struct Collected {
    headers: HeaderMap,
    cache: CacheControl,
}

/// The collector of one request's subgraph response headers.
struct Responses {
    policy: Arc<HeaderPolicy>,
    collected: Mutex<Collected>,
}

impl std::fmt::Debug for Responses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Responses")
    }
}

/// The most restrictive `Cache-Control` of the responses seen so far.
#[derive(Debug, Default)]
struct CacheControl {
    responses: usize,
    no_store: bool,
    no_cache: bool,
    private: bool,
    max_age: Option<u64>,
    /// The smallest shared-cache lifetime (`s-maxage`, else `max-age`).
    s_maxage: Option<u64>,
    any_s_maxage: bool,
}

impl CacheControl {
    fn merge(&mut self, value: Option<&HeaderValue>) {
        self.responses += 1;
        let Some(text) = value.and_then(|v| v.to_str().ok()) else {
            // No guidance from this subgraph: the whole response must not be cached.
            self.no_store = true;
            return;
        };
        let mut max_age = None;
        let mut s_maxage = None;
        for directive in text.split(',').map(|d| d.trim().to_ascii_lowercase()) {
            let (name, argument) = match directive.split_once('=') {
                Some((name, argument)) => (name.trim(), Some(argument.trim().trim_matches('"'))),
                None => (directive.as_str(), None),
            };
            let seconds = argument.and_then(|a| a.parse::<u64>().ok()).or(Some(0));
            match name {
                "no-store" => self.no_store = true,
                "no-cache" => self.no_cache = true,
                "private" => self.private = true,
                "max-age" => max_age = seconds,
                "s-maxage" => s_maxage = seconds,
                _ => {}
            }
        }
        // Without a lifetime a response may not be kept at all.
        let max_age = max_age.unwrap_or(0);
        self.max_age = Some(self.max_age.map_or(max_age, |m| m.min(max_age)));
        if s_maxage.is_some() {
            self.any_s_maxage = true;
        }
        let shared = s_maxage.unwrap_or(max_age);
        self.s_maxage = Some(self.s_maxage.map_or(shared, |m| m.min(shared)));
    }

    fn value(&self) -> Option<HeaderValue> {
        if self.responses == 0 {
            return None;
        }
        if self.no_store {
            return Some(HeaderValue::from_static("no-store"));
        }
        let mut parts = vec![if self.private { "private" } else { "public" }.to_string()];
        if self.no_cache {
            parts.push("no-cache".to_string());
        }
        parts.push(format!("max-age={}", self.max_age.unwrap_or(0)));
        if self.any_s_maxage && !self.private {
            parts.push(format!("s-maxage={}", self.s_maxage.unwrap_or(0)));
        }
        HeaderValue::from_str(&parts.join(", ")).ok()
    }
}

/// The headers of one request's subgraph calls: one set shared by the subgraphs without rules of
/// their own, one per subgraph that has some; and the collector of their responses' headers.
#[derive(Debug, Clone, Default)]
pub(crate) struct SubgraphHeaders {
    common: HeaderMap,
    specific: Vec<(String, HeaderMap)>,
    responses: Option<Arc<Responses>>,
}

impl SubgraphHeaders {
    /// The headers for a request to `subgraph`.
    pub(crate) fn for_subgraph(&self, subgraph: &str) -> &HeaderMap {
        self.specific
            .iter()
            .find(|(name, _)| name == subgraph)
            .map_or(&self.common, |(_, headers)| headers)
    }

    /// Passes a subgraph response's headers through the response rules.
    pub(crate) fn collect_response(&self, subgraph: &str, response: &HeaderMap) {
        let Some(responses) = &self.responses else {
            return;
        };
        let policy = &responses.policy;
        let mut collected = responses
            .collected
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let specific = policy
            .response_by_subgraph
            .get(subgraph)
            .map_or(&[][..], Vec::as_slice);
        for rule in policy.response_all.iter().chain(specific) {
            rule.collect(response, &mut collected.headers);
        }
        if policy.merge_cache_control {
            collected.cache.merge(response.get(CACHE_CONTROL));
        }
    }

    /// The headers the client response gets: what the rules collected, their defaults, and the
    /// merged `Cache-Control` (`no-store` when `cacheable` is false: a mutation or an answer
    /// with errors).
    pub(crate) fn response_headers(&self, cacheable: bool) -> HeaderMap {
        let Some(responses) = &self.responses else {
            return HeaderMap::new();
        };
        let policy = &responses.policy;
        let collected = responses
            .collected
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut headers = collected.headers.clone();
        let rules = policy
            .response_all
            .iter()
            .chain(policy.response_by_subgraph.values().flatten());
        for rule in rules {
            if let (Selector::Named(name), Some(default)) = (&rule.selector, &rule.default) {
                let target = rule.rename.as_ref().unwrap_or(name);
                if !headers.contains_key(target) {
                    headers.insert(target.clone(), default.clone());
                }
            }
        }
        if policy.merge_cache_control {
            let value = if cacheable {
                collected.cache.value()
            } else {
                Some(HeaderValue::from_static("no-store"))
            };
            if let Some(value) = value {
                headers.insert(CACHE_CONTROL, value);
            }
        }
        headers
    }

    /// Sets (or with `None` removes) `name` in every set: headers only the router decides.
    pub(crate) fn set_everywhere(&mut self, name: &HeaderName, value: Option<HeaderValue>) {
        for headers in
            std::iter::once(&mut self.common).chain(self.specific.iter_mut().map(|(_, h)| h))
        {
            match &value {
                Some(value) => {
                    headers.insert(name.clone(), value.clone());
                }
                None => {
                    headers.remove(name);
                }
            }
        }
    }

    /// Feeds every set into a deduplication key.
    pub(crate) fn hash_into(&self, hasher: &mut Xxh3) {
        for (subgraph, headers) in std::iter::once(("", &self.common))
            .chain(self.specific.iter().map(|(n, h)| (n.as_str(), h)))
        {
            hasher.update(subgraph.as_bytes());
            hasher.update(&[0xfe]);
            for (name, value) in headers {
                hasher.update(&[0]);
                hasher.update(name.as_str().as_bytes());
                hasher.update(&[1]);
                hasher.update(value.as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HeaderRules;

    fn policy(all: Vec<RequestHeaderRule>, accounts: Vec<RequestHeaderRule>) -> Arc<HeaderPolicy> {
        let mut config = HeadersConfig {
            all: HeaderRules {
                request: all,
                ..HeaderRules::default()
            },
            ..HeadersConfig::default()
        };
        if !accounts.is_empty() {
            config.subgraphs.insert(
                "accounts".into(),
                HeaderRules {
                    request: accounts,
                    ..HeaderRules::default()
                },
            );
        }
        Arc::new(HeaderPolicy::new(&["authorization".to_string()], &config).unwrap())
    }

    fn client(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    fn names(headers: &HeaderMap) -> Vec<String> {
        let mut names: Vec<String> = headers
            .iter()
            .map(|(n, v)| format!("{n}={}", v.to_str().unwrap()))
            .collect();
        names.sort();
        names
    }

    fn named(name: &str) -> Option<String> {
        Some(name.to_string())
    }

    #[test]
    fn rules_run_in_order_for_all_then_per_subgraph() {
        let policy = policy(
            vec![
                RequestHeaderRule::Propagate {
                    named: None,
                    matching: named("^x-feature-"),
                    rename: None,
                    default: None,
                },
                RequestHeaderRule::Propagate {
                    named: named("X-Tenant"),
                    matching: None,
                    rename: named("x-org"),
                    default: named("public"),
                },
                RequestHeaderRule::Insert {
                    name: "x-router".into(),
                    value: "shippy".into(),
                },
            ],
            vec![
                RequestHeaderRule::Remove {
                    named: None,
                    matching: named("^x-feature-"),
                },
                RequestHeaderRule::Remove {
                    named: named("authorization"),
                    matching: None,
                },
            ],
        );
        let outgoing = policy.outgoing(&client(&[
            ("authorization", "Bearer t"),
            ("x-feature-a", "1"),
            ("x-feature-b", "2"),
            ("x-other", "no"),
        ]));
        assert_eq!(
            names(outgoing.for_subgraph("products")),
            [
                "authorization=Bearer t",
                "x-feature-a=1",
                "x-feature-b=2",
                "x-org=public",
                "x-router=shippy"
            ]
        );
        assert_eq!(
            names(outgoing.for_subgraph("accounts")),
            ["x-org=public", "x-router=shippy"]
        );
        let with_tenant = policy.outgoing(&client(&[("x-tenant", "acme")]));
        assert_eq!(
            names(with_tenant.for_subgraph("reviews")),
            ["x-org=acme", "x-router=shippy"],
            "renamed, and the default only when absent"
        );
    }

    #[test]
    fn patterns_never_copy_router_owned_headers() {
        let policy = policy(
            vec![RequestHeaderRule::Propagate {
                named: None,
                matching: named(".*"),
                rename: None,
                default: None,
            }],
            vec![],
        );
        let outgoing = policy.outgoing(&client(&[
            ("shippy-router-signature", "forged"),
            ("shippy-client-ip", "1.2.3.4"),
            ("content-length", "5"),
            ("x-ok", "1"),
        ]));
        assert_eq!(names(outgoing.for_subgraph("any")), ["x-ok=1"]);
    }

    fn cache_control(values: &[Option<&'static str>]) -> Option<String> {
        let mut merged = CacheControl::default();
        for value in values {
            merged.merge(value.map(HeaderValue::from_static).as_ref());
        }
        merged.value().map(|v| v.to_str().unwrap().to_string())
    }

    #[test]
    fn cache_control_merges_to_the_most_restrictive() {
        assert_eq!(cache_control(&[]), None, "no subgraph called");
        assert_eq!(
            cache_control(&[Some("public, max-age=60"), Some("max-age=30, s-maxage=10")])
                .as_deref(),
            Some("public, max-age=30, s-maxage=10")
        );
        assert_eq!(
            cache_control(&[Some("max-age=60, s-maxage=90"), Some("max-age=30")]).as_deref(),
            Some("public, max-age=30, s-maxage=30"),
            "a response without s-maxage bounds shared caches by its max-age"
        );
        assert_eq!(
            cache_control(&[
                Some("private, max-age=60"),
                Some("s-maxage=100, max-age=100")
            ])
            .as_deref(),
            Some("private, max-age=60")
        );
        assert_eq!(
            cache_control(&[Some("max-age=60"), None]).as_deref(),
            Some("no-store"),
            "a subgraph without guidance"
        );
        assert_eq!(
            cache_control(&[Some("no-store")]).as_deref(),
            Some("no-store")
        );
        assert_eq!(
            cache_control(&[Some("no-cache, max-age=5")]).as_deref(),
            Some("public, no-cache, max-age=5")
        );
        assert_eq!(
            cache_control(&[Some("public")]).as_deref(),
            Some("public, max-age=0"),
            "no lifetime, no keeping"
        );
    }

    #[test]
    fn response_rules_combine_values_by_algorithm() {
        let rule = |name: &str, algorithm| ResponseHeaderRule::Propagate {
            named: Some(name.into()),
            matching: None,
            rename: None,
            default: None,
            algorithm,
        };
        let config = HeadersConfig {
            all: HeaderRules {
                request: Vec::new(),
                response: vec![
                    rule("x-first", MergeAlgorithm::First),
                    rule("x-last", MergeAlgorithm::Last),
                    rule("x-all", MergeAlgorithm::Append),
                    ResponseHeaderRule::Propagate {
                        named: None,
                        matching: Some("^x-trace-".into()),
                        rename: None,
                        default: None,
                        algorithm: MergeAlgorithm::Last,
                    },
                ],
            },
            ..HeadersConfig::default()
        };
        let policy = Arc::new(HeaderPolicy::new(&[], &config).unwrap());
        let outgoing = policy.outgoing(&HeaderMap::new());
        outgoing.collect_response(
            "a",
            &client(&[
                ("x-first", "a"),
                ("x-last", "a"),
                ("x-all", "a"),
                ("x-trace-id", "1"),
            ]),
        );
        outgoing.collect_response(
            "b",
            &client(&[
                ("x-first", "b"),
                ("x-last", "b"),
                ("x-all", "b"),
                ("content-type", "x"),
            ]),
        );
        assert_eq!(
            names(&outgoing.response_headers(true)),
            [
                "x-all=a",
                "x-all=b",
                "x-first=a",
                "x-last=b",
                "x-trace-id=1"
            ]
        );
    }

    #[test]
    fn unusable_rules_are_configuration_errors_naming_them() {
        let config = HeadersConfig {
            all: HeaderRules {
                response: Vec::new(),
                request: vec![
                    RequestHeaderRule::Insert {
                        name: "shippy-router-signature".into(),
                        value: "x".into(),
                    },
                    RequestHeaderRule::Propagate {
                        named: None,
                        matching: named("(unclosed"),
                        rename: None,
                        default: None,
                    },
                    RequestHeaderRule::Remove {
                        named: named("a"),
                        matching: named("b"),
                    },
                    RequestHeaderRule::Propagate {
                        named: None,
                        matching: named("^x-"),
                        rename: named("y"),
                        default: None,
                    },
                    RequestHeaderRule::Insert {
                        name: "bad name".into(),
                        value: "x".into(),
                    },
                ],
            },
            ..HeadersConfig::default()
        };
        let Err(ConfigError::Invalid { problems }) = HeaderPolicy::new(&[], &config) else {
            panic!("accepted");
        };
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert!(
            problems[0].starts_with("`headers.all.request[0]`"),
            "{problems:?}"
        );
        assert!(problems[0].contains("set by the router"), "{problems:?}");
    }
}
