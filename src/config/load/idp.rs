//! `[idp]`: the kind, the URL and the credential (Okta's SSWS token or OAuth client, Entra
//! ID's client secret or certificate), each secret by reference.

use super::*;

const AZURE_KEYS: [&str; 8] = [
    "tenant_id",
    "client_id",
    "client_secret_env",
    "client_secret_file",
    "client_secret",
    "certificate_file",
    "certificate_key_file",
    "login_url",
];
const OKTA_KEYS: [&str; 4] = ["token_env", "token_file", "token", "oauth"];

pub(super) fn read_idp(
    t: &mut Table<'_, '_>,
    ctx: &mut Ctx<'_>,
    out: &mut Vec<Problem>,
) -> Option<IdpConfig> {
    let kind = t.str("kind", out).and_then(|k| {
        choice(
            t,
            "kind",
            &k,
            &[("okta", IdpKind::Okta), ("azure_ad", IdpKind::AzureAd)],
            out,
        )
    });
    // Mark every key of both kinds known, then refuse the other kind's keys.
    for k in AZURE_KEYS.iter().chain(OKTA_KEYS.iter()) {
        t.allow(k);
    }
    let url = t.opt_str("url", out);
    let user_attribute = t.opt_str("user_attribute", out);
    let propagation_window = t.bounded_duration(
        "propagation_window",
        minutes(60),
        DurationBounds::new(Duration::ZERO, days(30)),
        out,
    );
    let event_lookback = t.bounded_duration(
        "event_lookback",
        days(7),
        DurationBounds::new(Duration::ZERO, days(180)),
        out,
    );
    let kind = kind?;

    let foreign: &[&str] = match kind {
        IdpKind::Okta => &AZURE_KEYS,
        IdpKind::AzureAd => &OKTA_KEYS,
    };
    let mut ok = true;
    for k in foreign {
        if t.has(k) {
            let other = match kind {
                IdpKind::Okta => "azure_ad",
                IdpKind::AzureAd => "okta",
            };
            out.push(t.key_problem(
                k,
                format!("is only used with kind = \"{other}\"; remove it, or change `kind`"),
            ));
            ok = false;
        }
    }

    let url = match (kind, url) {
        (_, Some(u)) => check_url(t, "url", &u, out),
        (IdpKind::AzureAd, None) => Some("https://graph.microsoft.com/v1.0".to_string()),
        (IdpKind::Okta, None) => {
            out.push(t.problem(
                "has no `url`; add `url = \"https://<your-org>.okta.com\"` to [idp]",
                None,
            ));
            None
        }
    };

    let user_attribute = match (kind, user_attribute.as_deref()) {
        (IdpKind::Okta, None) => Some(UserAttribute::Login),
        (IdpKind::AzureAd, None) => Some(UserAttribute::UserPrincipalName),
        (IdpKind::Okta, Some(a)) => choice(
            t,
            "user_attribute",
            a,
            &[
                ("login", UserAttribute::Login),
                ("email", UserAttribute::Email),
            ],
            out,
        ),
        (IdpKind::AzureAd, Some(a)) => choice(
            t,
            "user_attribute",
            a,
            &[
                ("userPrincipalName", UserAttribute::UserPrincipalName),
                ("mail", UserAttribute::Mail),
            ],
            out,
        ),
    };

    let credential = if !ok {
        None
    } else {
        match kind {
            IdpKind::Okta => read_okta_credential(t, ctx, out),
            IdpKind::AzureAd => read_azure_credential(t, ctx, out).map(IdpCredential::Azure),
        }
    };
    Some(IdpConfig {
        kind,
        url: url?,
        credential: credential?,
        user_attribute: user_attribute?,
        propagation_window,
        event_lookback,
    })
}

fn read_okta_credential(
    t: &mut Table<'_, '_>,
    ctx: &mut Ctx<'_>,
    out: &mut Vec<Problem>,
) -> Option<IdpCredential> {
    let token = read_secret(t, &keys3("token_env", "token_file", "token"), ctx, out);
    let oauth = t.opt_sub_table("oauth", out);
    match (token, oauth) {
        (SecretRead::Found(..) | SecretRead::Invalid, Some(_)) => {
            out.push(t.key_problem(
                "oauth",
                "[idp.oauth] and an SSWS token (`token_env` / `token_file` / `token`) are both set; keep one credential",
            ));
            None
        }
        (SecretRead::Absent, None) => {
            out.push(t.problem(
                "has no Okta credential; add `token_env = \"OKTA_API_TOKEN\"` (or `token_file`), or an [idp.oauth] table",
                None,
            ));
            None
        }
        (SecretRead::Found(s, _), None) => Some(IdpCredential::OktaToken(s)),
        (SecretRead::Invalid, None) => None,
        (SecretRead::Absent, Some(mut o)) => {
            let client_id = o.str("client_id", out);
            let key = match o.str("private_key_file", out) {
                None => None,
                Some(p) => {
                    let path = ctx.resolve(&p);
                    match read_capped(&path, MAX_SECRET_FILE_BYTES) {
                        Err(e) => {
                            out.push(o.key_problem(
                                "private_key_file",
                                format!("cannot read `{}` ({e}); fix the path or the file's permissions", crate::paths::shown(&path)),
                            ));
                            None
                        }
                        Ok(pem) if !pem.contains("-----BEGIN") || !pem.contains("PRIVATE KEY") => {
                            out.push(o.key_problem(
                                "private_key_file",
                                format!("`{}` is not a PEM private key; point it at the RSA or EC key of the service app", crate::paths::shown(&path)),
                            ));
                            None
                        }
                        Ok(pem) => Some(Secret::new(pem)),
                    }
                }
            };
            let key_id = o.opt_str("key_id", out);
            let scopes = o
                .opt_str_list("scopes", out)
                .unwrap_or_else(|| DEFAULT_OKTA_SCOPES.iter().map(|s| s.to_string()).collect());
            let dpop = o.opt_bool("dpop", out).unwrap_or(false);
            o.finish(out);
            Some(IdpCredential::OktaOAuth(OktaOAuth {
                client_id: client_id?,
                private_key_pem: key?,
                key_id,
                scopes,
                dpop,
            }))
        }
    }
}

fn read_azure_credential(
    t: &mut Table<'_, '_>,
    ctx: &mut Ctx<'_>,
    out: &mut Vec<Problem>,
) -> Option<AzureCredential> {
    let tenant_id = t.str("tenant_id", out);
    let client_id = t.str("client_id", out);
    let login_url = t
        .opt_str("login_url", out)
        .unwrap_or_else(|| "https://login.microsoftonline.com".into());
    let login_url = check_url(t, "login_url", &login_url, out);
    let secret = read_secret(
        t,
        &keys3("client_secret_env", "client_secret_file", "client_secret"),
        ctx,
        out,
    );
    let cert = t.opt_str("certificate_file", out);
    let cert_key = t.opt_str("certificate_key_file", out);
    let read_file = |t: &Table<'_, '_>, key: &str, p: &str, out: &mut Vec<Problem>| {
        let path = ctx.resolve(p);
        match read_capped(&path, MAX_SECRET_FILE_BYTES) {
            Ok(s) => Some(s),
            Err(e) => {
                out.push(t.key_problem(
                    key,
                    format!(
                        "cannot read `{}` ({e}); fix the path or the file's permissions",
                        crate::paths::shown(&path)
                    ),
                ));
                None
            }
        }
    };
    let secret = match (secret, cert, cert_key) {
        (SecretRead::Found(s, _), None, None) => Some(AzureSecret::ClientSecret(s)),
        (SecretRead::Invalid, None, None) => None,
        (SecretRead::Absent, Some(c), Some(k)) => {
            let certificate_pem = read_file(t, "certificate_file", &c, out);
            let key_pem = read_file(t, "certificate_key_file", &k, out);
            Some(AzureSecret::Certificate {
                certificate_pem: certificate_pem?,
                key_pem: Secret::new(key_pem?),
            })
        }
        (SecretRead::Absent, None, None) => {
            out.push(t.problem(
                "has no Entra ID credential; add `client_secret_env` (or `client_secret_file`), or `certificate_file` with `certificate_key_file`",
                None,
            ));
            None
        }
        (SecretRead::Absent, Some(_), None) | (SecretRead::Absent, None, Some(_)) => {
            out.push(t.problem(
                "`certificate_file` and `certificate_key_file` go together; set both",
                None,
            ));
            None
        }
        _ => {
            out.push(t.problem(
                "a client secret and a certificate are both set; keep one credential",
                None,
            ));
            None
        }
    };
    Some(AzureCredential {
        tenant_id: tenant_id?,
        client_id: client_id?,
        secret: secret?,
        login_url: login_url?,
    })
}

/// The `[idp]` key the credential came from, for `validate`'s message when it does not
/// work (the variable's name or the file's path, never a secret).
pub(super) fn credential_key(t: &mut Table<'_, '_>) -> String {
    for key in [
        "token_env",
        "token_file",
        "token",
        "client_secret_env",
        "client_secret_file",
        "client_secret",
        "certificate_file",
    ] {
        if t.has(key) {
            return format!("[idp] {}", secret_key(t, key));
        }
    }
    if t.has("oauth") {
        return "[idp.oauth] (client_id, private_key_file)".into();
    }
    "[idp]".into()
}
