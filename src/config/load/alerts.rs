//! `[alerts]`: sinks (PagerDuty, Slack, signed webhooks) with their secrets by reference,
//! routes, and the delivery knobs.

use super::*;

const DEFAULT_PAGERDUTY_URL: &str = "https://events.pagerduty.com/v2/enqueue";
const SINK_KINDS: [&str; 3] = ["pagerduty", "slack", "webhook"];
const PAGERDUTY_KEYS: [&str; 4] = ["routing_key_env", "routing_key_file", "routing_key", "url"];
const SLACK_KEYS: [&str; 3] = ["webhook_url_env", "webhook_url_file", "webhook_url"];
const WEBHOOK_KEYS: [&str; 7] = [
    "url",
    "secret_env",
    "secret_file",
    "secret",
    "previous_secret_env",
    "previous_secret_file",
    "previous_secret",
];
const SEVERITY_NAMES: [&str; 4] = ["critical", "error", "warning", "info"];
/// Finding kinds, plus the `source_unavailable` alert.
fn kind_names() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = crate::reconcile::finding::Kind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect();
    v.push("source_unavailable");
    v
}

/// `[alerts]`: knobs, sinks (secrets by reference), routes (naming existing sinks).
pub(super) fn read_alerts(
    t: &mut Table<'_, '_>,
    ctx: &mut Ctx<'_>,
    out: &mut Vec<Problem>,
) -> AlertsConfig {
    let d = AlertsConfig::default();
    let mut cfg = AlertsConfig {
        resolve_after: t.opt_u32("resolve_after", out).unwrap_or(d.resolve_after),
        group_threshold: t
            .opt_u32("group_threshold", out)
            .unwrap_or(d.group_threshold),
        source_down_after: t
            .opt_u32("source_down_after", out)
            .unwrap_or(d.source_down_after),
        retry_max_backoff: t.bounded_duration(
            "retry_max_backoff",
            d.retry_max_backoff,
            INTERVAL,
            out,
        ),
        retry_for: t.bounded_duration("retry_for", d.retry_for, INTERVAL, out),
        sinks: Vec::new(),
        routes: Vec::new(),
    };
    for k in ["resolve_after", "source_down_after"] {
        if t.has(k) && t.opt_u32(k, &mut Vec::new()) == Some(0) {
            out.push(t.key_problem(k, "must be at least 1"));
        }
    }
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for mut s in t.array_of_tables("sink", out) {
        let name = s.str("name", out);
        let name = unique_name(
            &s,
            name,
            &mut seen,
            ("sink", "[[alerts.sink]]", "routes"),
            out,
        );
        let kind = s.str("kind", out).and_then(|k| {
            let choices: Vec<(&str, &str)> = SINK_KINDS.iter().map(|k| (*k, *k)).collect();
            choice(&s, "kind", &k, &choices, out)
        });
        for k in PAGERDUTY_KEYS
            .iter()
            .chain(SLACK_KEYS.iter())
            .chain(WEBHOOK_KEYS.iter())
        {
            s.allow(k);
        }
        let Some(kind) = kind else {
            s.finish(out);
            continue;
        };
        let own: &[&str] = match kind {
            "pagerduty" => &PAGERDUTY_KEYS,
            "slack" => &SLACK_KEYS,
            _ => &WEBHOOK_KEYS,
        };
        let mut foreign = false;
        for k in PAGERDUTY_KEYS
            .iter()
            .chain(SLACK_KEYS.iter())
            .chain(WEBHOOK_KEYS.iter())
        {
            if !own.contains(k) && s.has(k) {
                out.push(s.key_problem(
                    k,
                    format!("is not used with kind = \"{kind}\"; remove it, or change `kind`"),
                ));
                foreign = true;
            }
        }
        let target = if foreign {
            None
        } else {
            read_sink_target(&mut s, kind, ctx, out)
        };
        s.finish(out);
        if let (Some(name), Some(target)) = (name, target) {
            cfg.sinks.push(AlertSinkConfig { name, target });
        }
    }
    let sink_names: Vec<String> = seen.keys().cloned().collect();
    let kinds = kind_names();
    for mut r in t.array_of_tables("route", out) {
        let sinks = if r.has("sinks") {
            r.opt_str_list("sinks", out)
        } else {
            out.push(r.problem(
                "has no `sinks`; add `sinks = [\"<sink name>\"]` to this [[alerts.route]]",
                None,
            ));
            None
        };
        if let Some(list) = &sinks {
            if list.is_empty() {
                out.push(r.key_problem("sinks", "is empty; name at least one [[alerts.sink]]"));
            }
            for n in list {
                if !sink_names.contains(n) {
                    let mut p = r.key_problem(
                        "sinks",
                        format!(
                            "names the sink {}, which no [[alerts.sink]] defines (sinks: {})",
                            shown(n),
                            if sink_names.is_empty() {
                                "none".to_string()
                            } else {
                                sink_names.join(", ")
                            }
                        ),
                    );
                    p.hint = did_you_mean(n, sink_names.iter().map(String::as_str));
                    out.push(p);
                }
            }
        }
        let severities = r.opt_str_list("severities", out);
        check_names(
            &r,
            "severities",
            severities.as_deref(),
            &SEVERITY_NAMES,
            out,
        );
        let route_kinds = r.opt_str_list("kinds", out);
        check_names(&r, "kinds", route_kinds.as_deref(), &kinds, out);
        let workspaces = r.opt_str_list("workspaces", out);
        r.finish(out);
        if let Some(sinks) = sinks {
            cfg.routes.push(AlertRoute {
                sinks,
                severities,
                kinds: route_kinds,
                workspaces,
            });
        }
    }
    cfg
}

/// Every name in `list` must be one of `valid`.
fn check_names(
    t: &Table<'_, '_>,
    key: &str,
    list: Option<&[String]>,
    valid: &[&str],
    out: &mut Vec<Problem>,
) {
    for n in list.unwrap_or_default() {
        if !valid.contains(&n.as_str()) {
            let mut p = t.key_problem(
                key,
                format!("{} is not one of {}", shown(n), valid.join(", ")),
            );
            p.hint = did_you_mean(n, valid.iter().copied());
            out.push(p);
        }
    }
}

fn read_sink_target(
    s: &mut Table<'_, '_>,
    kind: &str,
    ctx: &mut Ctx<'_>,
    out: &mut Vec<Problem>,
) -> Option<AlertTarget> {
    let mut required =
        |s: &mut Table<'_, '_>, keys: SecretKeys, out: &mut Vec<Problem>| match read_secret(
            s, &keys, ctx, out,
        ) {
            SecretRead::Found(v, key) => Some((v, key)),
            SecretRead::Invalid => None,
            SecretRead::Absent => {
                out.push(s.problem(
                    format!(
                        "has no secret; add `{} = \"...\"` (or `{}`)",
                        keys.env, keys.file
                    ),
                    None,
                ));
                None
            }
        };
    match kind {
        "pagerduty" => {
            let key = required(
                s,
                keys3("routing_key_env", "routing_key_file", "routing_key"),
                out,
            );
            let url = s
                .opt_str("url", out)
                .unwrap_or_else(|| DEFAULT_PAGERDUTY_URL.to_string());
            let url = check_url(s, "url", &url, out);
            Some(AlertTarget::PagerDuty {
                routing_key: key?.0,
                url: url?,
            })
        }
        "slack" => {
            let (url, key) = required(
                s,
                keys3("webhook_url_env", "webhook_url_file", "webhook_url"),
                out,
            )?;
            // Never echo the value: the Slack URL is the secret.
            match url::Url::parse(url.expose()) {
                Ok(u) if u.scheme() == "https" || u.scheme() == "http" => {
                    Some(AlertTarget::Slack { webhook_url: url })
                }
                _ => {
                    out.push(s.key_problem(
                        key,
                        "the value is not an http(s) URL; give the Slack incoming-webhook URL (https://hooks.slack.com/services/...)",
                    ));
                    None
                }
            }
        }
        _ => {
            let url = s.str("url", out).and_then(|u| check_url(s, "url", &u, out));
            let secret = required(s, keys3("secret_env", "secret_file", "secret"), out)
                .and_then(|(v, key)| check_whsec(s, key, v, out));
            let previous = match read_secret(
                s,
                &keys3(
                    "previous_secret_env",
                    "previous_secret_file",
                    "previous_secret",
                ),
                ctx,
                out,
            ) {
                SecretRead::Found(v, key) => Some(check_whsec(s, key, v, out)?),
                SecretRead::Invalid => return None,
                SecretRead::Absent => None,
            };
            Some(AlertTarget::Webhook {
                url: url?,
                secret: secret?,
                previous_secret: previous,
            })
        }
    }
}

/// A Standard Webhooks secret: `whsec_` and base64 of at least 16 bytes.
fn check_whsec(s: &Table<'_, '_>, key: &str, v: Secret, out: &mut Vec<Problem>) -> Option<Secret> {
    use base64::Engine as _;
    let ok = v
        .expose()
        .strip_prefix("whsec_")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .is_some_and(|k| k.len() >= MIN_SECRET_BYTES);
    if ok {
        Some(v)
    } else {
        out.push(s.key_problem(
            key,
            format!("the secret is not `whsec_` followed by the base64 of at least {MIN_SECRET_BYTES} random bytes; generate one with `echo whsec_$(head -c 32 /dev/urandom | base64)`"),
        ));
        None
    }
}
