//! The headers of subgraph requests: the client headers of `subgraph_defaults.forward_headers`,
//! then the `headers` rules (for all subgraphs, then per subgraph), compiled once per (re)load
//! and applied once per request.

use std::collections::HashMap;

use http::{HeaderMap, HeaderName, HeaderValue};
use regex::Regex;
use xxhash_rust::xxh3::Xxh3;

use crate::config::{ConfigError, HeadersConfig, RequestHeaderRule, header_name};

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

/// The compiled header configuration.
pub(crate) struct HeaderPolicy {
    forward: Vec<HeaderName>,
    all: Vec<Rule>,
    by_subgraph: HashMap<String, Vec<Rule>>,
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
            .map(|(subgraph, rules)| {
                let at = format!("headers.subgraphs.{subgraph}.request");
                (
                    subgraph.clone(),
                    compile(&at, &rules.request, &mut problems),
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
        })
    }

    /// The headers of every subgraph request of one client request.
    pub(crate) fn outgoing(&self, client: &HeaderMap) -> SubgraphHeaders {
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
        SubgraphHeaders { common, specific }
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

/// The headers of one request's subgraph calls: one set shared by the subgraphs without rules of
/// their own, one per subgraph that has some.
#[derive(Debug, Clone, Default)]
pub(crate) struct SubgraphHeaders {
    common: HeaderMap,
    specific: Vec<(String, HeaderMap)>,
}

impl SubgraphHeaders {
    /// The headers for a request to `subgraph`.
    pub(crate) fn for_subgraph(&self, subgraph: &str) -> &HeaderMap {
        self.specific
            .iter()
            .find(|(name, _)| name == subgraph)
            .map_or(&self.common, |(_, headers)| headers)
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

    fn policy(all: Vec<RequestHeaderRule>, accounts: Vec<RequestHeaderRule>) -> HeaderPolicy {
        let mut config = HeadersConfig {
            all: HeaderRules { request: all },
            ..HeadersConfig::default()
        };
        if !accounts.is_empty() {
            config
                .subgraphs
                .insert("accounts".into(), HeaderRules { request: accounts });
        }
        HeaderPolicy::new(&["authorization".to_string()], &config).unwrap()
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

    #[test]
    fn unusable_rules_are_configuration_errors_naming_them() {
        let config = HeadersConfig {
            all: HeaderRules {
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
