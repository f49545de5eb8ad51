//! Native `auth` on byte strings: providers, API keys, requirements on listeners,
//! routes and the short form, and each mistake with its position.

use std::path::Path;
use std::time::Duration;

use crate::config::auth::*;
use crate::config::model::*;
use crate::config::Config;

/// A P-256 public key (generated for these tests; no private key is kept).
const JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","alg":"ES256","kid":"k1","x":"BHcwipFQ5R5yEg1ZVH5yd0mKQUXsxbQizLv6Btk52fw","y":"ANDHHqvfw_oWZIUeoOjITBH0ilYJinCwFTWBPyyQEPM"}]}"#;

fn parse(text: &str) -> Config {
    match Config::parse(text, Path::new("t.yaml")) {
        Ok(config) => config,
        Err(errors) => panic!("expected a config, got:\n{errors}"),
    }
}

fn errors(text: &str) -> Vec<String> {
    match Config::parse(text, Path::new("t.yaml")) {
        Ok(config) => panic!("expected errors, parsed {config:?}"),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

/// Two providers (`main` inline, `other` remote through cluster `idp`) and one consumer.
fn auth() -> String {
    format!(
        "auth:
  jwt_providers:
    - name: main
      issuer: https://id.example.com
      jwks: {{ inline: '{JWKS}' }}
    - name: other
      jwks: {{ url: https://idp.example.com/keys, cluster: idp }}
  api_keys:
    consumers:
      - {{ name: acme, keys: [s3cret-key], metadata: {{ plan: gold, tier: 1 }} }}
"
    )
}

/// A file with `auth_section`, one listener (with `listener_extra` lines indented by 4)
/// whose `routes` are `routes` (items indented by 6), and clusters `app` and `idp`.
fn file(auth_section: &str, listener_extra: &str, routes: &str) -> String {
    format!(
        "{auth_section}listeners:\n  - name: api\n    address: 127.0.0.1:8080\n{listener_extra}    routes:\n{routes}clusters:\n  - name: app\n    endpoints: [127.0.0.1:9000]\n  - name: idp\n    endpoints: [127.0.0.1:9443]\n"
    )
}

/// A route to `app` with `auth: <requirement>`.
fn route(requirement: &str) -> String {
    format!("      - match: {{ prefix: / }}\n        cluster: app\n        auth: {requirement}\n")
}

fn provider(name: &str) -> Requirement {
    Requirement::Provider {
        name: name.into(),
        audiences: None,
    }
}

fn sha256(text: &str) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    digest.as_ref().try_into().unwrap()
}

#[test]
fn providers_and_consumers_decode_with_defaults() {
    let config = parse(&file(&auth(), "", &route("main")));
    let [main, other] = config.auth.jwt_providers.as_slice() else {
        panic!("two providers");
    };
    assert_eq!(
        *main,
        JwtProvider {
            name: "main".into(),
            issuer: Some("https://id.example.com".into()),
            audiences: vec![],
            jwks: JwksSource::Inline(JWKS.into()),
            from: vec![
                TokenSource::Header {
                    name: "authorization".into(),
                    prefix: "Bearer ".into()
                },
                TokenSource::Query("access_token".into()),
            ],
            forward: false,
            forward_payload_header: None,
            pad_forward_payload_header: false,
            claim_to_headers: vec![],
            clock_skew: Duration::from_secs(60),
            require_expiration: false,
            max_lifetime: None,
            required_claims: vec![],
            cache_size: 100,
            payload_in_metadata: None,
        }
    );
    assert_eq!(
        other.jwks,
        JwksSource::Remote(RemoteJwks {
            url: "https://idp.example.com/keys".into(),
            cluster: Some("idp".into()),
            timeout: Duration::from_secs(5),
            cache_duration: Duration::from_secs(300),
            failed_refetch: Duration::from_secs(1),
            fast_listener: true,
            retries: 0,
            unknown_kid_refetch: Duration::from_secs(10),
            ready_after_failed_fetch: false,
        })
    );
    assert_eq!(
        config.auth.api_keys,
        Some(ApiKeys {
            from: vec![TokenSource::Header {
                name: "x-api-key".into(),
                prefix: String::new()
            }],
            consumers: vec![Consumer {
                name: "acme".into(),
                key_digests: vec![sha256("s3cret-key")],
                metadata: vec![("plan".into(), "gold".into()), ("tier".into(), "1".into())],
            }],
            file: None,
            forward: false,
        })
    );
    // A route's `auth` makes the listener authenticate; its own rules are none.
    let l = &config.listeners[0];
    assert_eq!(
        l.auth,
        Some(ListenerAuth {
            rules: vec![],
            bypass_cors_preflight: true,
            stats: true
        })
    );
    assert_eq!(
        l.routes[0].auth,
        Some(RouteAuth::Requires(provider("main")))
    );
}

#[test]
fn every_provider_and_api_key_setting() {
    let text = format!(
        "auth:
  bypass_cors_preflight: false
  jwt_providers:
    - name: main
      issuer: https://id.example.com
      audiences: [api, web]
      jwks:
        url: http://10.0.0.1:8080/keys?v=1
        timeout: 2s
        cache_duration: 1m
        failed_refetch: 3s
        refetch_unknown_kid: 0s
        wait_for_keys: true
        retries: 3
      from: [ {{ header: X-Token, prefix: 'Tok ' }}, {{ query: tok }}, {{ cookie: session }} ]
      forward: true
      forward_payload_header: X-Jwt-Payload
      pad_forward_payload_header: true
      claim_to_headers: {{ X-User-Id: sub, x-tenant: org.id }}
      clock_skew: 0s
      require_expiration: true
      max_lifetime: 1h
      required_claims: [sub, org.id]
      cache_size: 7
  api_keys:
    from: [ {{ query: api_key }}, {{ header: authorization, prefix: 'ApiKey ' }} ]
    forward: true
    consumers:
      - name: acme
        keys: [one, two, one]
        key_sha256: [\"{}\"]
",
        "AB".repeat(32)
    );
    let config = parse(&file(&text, "    auth: jwt\n", &route("none")));
    let main = &config.auth.jwt_providers[0];
    assert_eq!(main.audiences, ["api", "web"]);
    assert_eq!(
        main.jwks,
        JwksSource::Remote(RemoteJwks {
            url: "http://10.0.0.1:8080/keys?v=1".into(),
            cluster: None,
            timeout: Duration::from_secs(2),
            cache_duration: Duration::from_secs(60),
            failed_refetch: Duration::from_secs(3),
            fast_listener: false,
            retries: 3,
            unknown_kid_refetch: Duration::ZERO,
            ready_after_failed_fetch: false,
        })
    );
    assert_eq!(
        main.from,
        [
            TokenSource::Header {
                name: "x-token".into(),
                prefix: "Tok ".into()
            },
            TokenSource::Query("tok".into()),
            TokenSource::Cookie("session".into()),
        ]
    );
    assert!(main.forward);
    assert_eq!(
        main.forward_payload_header.as_deref(),
        Some("x-jwt-payload")
    );
    assert!(main.pad_forward_payload_header);
    assert_eq!(
        main.claim_to_headers,
        [
            ClaimToHeader {
                claim: "sub".into(),
                header: "x-user-id".into()
            },
            ClaimToHeader {
                claim: "org.id".into(),
                header: "x-tenant".into()
            },
        ]
    );
    assert_eq!(main.clock_skew, Duration::ZERO);
    assert!(main.require_expiration);
    assert_eq!(main.max_lifetime, Some(Duration::from_secs(3600)));
    assert_eq!(main.required_claims, ["sub", "org.id"]);
    assert_eq!(main.cache_size, 7);
    let keys = config.auth.api_keys.as_ref().unwrap();
    assert!(keys.forward);
    assert_eq!(
        keys.from,
        [
            TokenSource::Query("api_key".into()),
            TokenSource::Header {
                name: "authorization".into(),
                prefix: "ApiKey ".into()
            },
        ]
    );
    // Plaintext keys are digested, repeats dropped; digests are taken as written.
    assert_eq!(
        keys.consumers[0].key_digests,
        [sha256("one"), sha256("two"), [0xab; 32]]
    );
    // The listener's `auth` is a rule for every path; `jwt` is the only provider.
    let l = &config.listeners[0];
    assert_eq!(
        l.auth,
        Some(ListenerAuth {
            rules: vec![AuthRule {
                matcher: RouteMatch::Prefix("/".into()),
                conditions: RouteConditions::default(),
                requires: Some(provider("main")),
            }],
            bypass_cors_preflight: false,
            stats: true,
        })
    );
    assert_eq!(l.routes[0].auth, Some(RouteAuth::Disabled));
}

#[test]
fn requirement_syntax() {
    let routes = [
        route("other"),
        route("{ provider: main, audiences: [a, b] }"),
        route("{ any: [main, api_key, allow_missing] }"),
        route("{ all: [{ any: [main, other] }, api_key] }"),
        route("{ any: [main, allow_missing_or_failed] }"),
        route("api_key"),
        route("none"),
        "      - match: { prefix: / }\n        cluster: app\n".to_owned(),
    ]
    .concat();
    let config = parse(&file(&auth(), "", &routes));
    let auth: Vec<_> = config.listeners[0]
        .routes
        .iter()
        .map(|r| r.auth.clone())
        .collect();
    let requires = |r| Some(RouteAuth::Requires(r));
    assert_eq!(
        auth,
        [
            requires(provider("other")),
            requires(Requirement::Provider {
                name: "main".into(),
                audiences: Some(vec!["a".into(), "b".into()])
            }),
            requires(Requirement::Any(vec![
                provider("main"),
                Requirement::ApiKey,
                Requirement::AllowMissing
            ])),
            requires(Requirement::All(vec![
                Requirement::Any(vec![provider("main"), provider("other")]),
                Requirement::ApiKey
            ])),
            requires(Requirement::Any(vec![
                provider("main"),
                Requirement::AllowMissingOrFailed
            ])),
            requires(Requirement::ApiKey),
            Some(RouteAuth::Disabled),
            None,
        ]
    );
}

#[test]
fn listeners_authenticate_only_when_something_is_required() {
    // No `auth` anywhere, or only `none`: no listener auth.
    let config = parse(&file(&auth(), "", &route("none")));
    assert_eq!(config.listeners[0].auth, None);
    assert_eq!(
        config.listeners[0].routes[0].auth,
        Some(RouteAuth::Disabled)
    );
    let config = parse(&file(&auth(), "    auth: none\n", &route("none")));
    assert_eq!(config.listeners[0].auth, None);
    // A virtual host's route.
    let text = format!(
        "{}listeners:\n  - name: api\n    address: 127.0.0.1:8080\n    virtual_hosts:\n      - name: a\n        domains: [\"*\"]\n        routes:\n          - match: {{ prefix: / }}\n            direct_response: {{ status: 200 }}\n            auth: api_key\nclusters:\n  - name: idp\n    endpoints: [127.0.0.1:9443]\n",
        auth()
    );
    let config = parse(&text);
    assert!(config.listeners[0].auth.is_some());
    assert_eq!(
        config.listeners[0].virtual_hosts[0].routes[0].auth,
        Some(RouteAuth::Requires(Requirement::ApiKey))
    );
}

#[test]
fn keys_and_consumers_files_are_read_beside_the_config() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("keys.json"), JWKS).unwrap();
    let digest = "0f".repeat(32);
    std::fs::write(
        dir.path().join("consumers.yaml"),
        format!("consumers:\n  - {{ name: beta, key_sha256: [\"{digest}\"] }}\n"),
    )
    .unwrap();
    let text = "auth:\n  jwt_providers:\n    - { name: main, jwks: { file: keys.json } }\n  api_keys:\n    file: consumers.yaml\n";
    let path = dir.path().join("ringway.yaml");
    std::fs::write(&path, file(text, "", &route("{ any: [jwt, api_key] }"))).unwrap();
    let config = Config::load(&path).expect("loads");
    assert_eq!(
        config.auth.jwt_providers[0].jwks,
        JwksSource::File {
            path: dir.path().join("keys.json"),
            text: JWKS.into()
        }
    );
    let consumers = vec![Consumer {
        name: "beta".into(),
        key_digests: vec![[0x0f; 32]],
        metadata: vec![],
    }];
    let keys = config.auth.api_keys.as_ref().unwrap();
    assert_eq!(keys.consumers, []);
    assert_eq!(
        keys.file,
        Some((dir.path().join("consumers.yaml"), consumers.clone()))
    );
    // What a reload of the file runs.
    assert_eq!(
        crate::config::load_consumers(&dir.path().join("consumers.yaml")),
        Ok(consumers)
    );
    // A bad file's errors are at their place in it.
    std::fs::write(
        dir.path().join("consumers.yaml"),
        "consumers:\n  - { name: beta, key_sha256: [zz] }\n  - { name: beta, keys: [k] }\n",
    )
    .unwrap();
    let shown = dir.path().join("consumers.yaml").display().to_string();
    let expected = [
        format!("{shown}:2:32: consumers[0].key_sha256[0]: expected a SHA-256 digest as 64 hexadecimal digits, found 2 characters with a non-hexadecimal one"),
    ];
    let errors: Vec<String> = Config::load(&path)
        .expect_err("a bad consumers file")
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(errors, expected);
    std::fs::write(
        dir.path().join("consumers.yaml"),
        "consumers:\n  - { name: beta, keys: [k] }\n  - { name: beta, keys: [k] }\n",
    )
    .unwrap();
    let errors: Vec<String> = crate::config::load_consumers(&dir.path().join("consumers.yaml"))
        .expect_err("duplicates")
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errors,
        [
            format!("{shown}:3:5: consumers[1]: duplicate consumer name \"beta\""),
            format!("{shown}:3:5: consumers[1]: consumer \"beta\" has a key that consumer \"beta\" has too (a key identifies one consumer)"),
        ]
    );
    // Unreadable files are named at their key.
    std::fs::remove_file(dir.path().join("consumers.yaml")).unwrap();
    std::fs::remove_file(dir.path().join("keys.json")).unwrap();
    let errors: Vec<String> = Config::load(&path)
        .expect_err("missing files")
        .iter()
        .map(ToString::to_string)
        .collect();
    let config_file = path.display().to_string();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with(&format!(
            "{config_file}:3:35: auth.jwt_providers[0].jwks.file: cannot read {}",
            dir.path().join("keys.json").display()
        )),
        "{errors:?}"
    );
    assert!(
        errors[1].starts_with(&format!(
            "{config_file}:5:11: auth.api_keys.file: cannot read {}",
            dir.path().join("consumers.yaml").display()
        )),
        "{errors:?}"
    );
}

#[test]
fn requirement_mistakes_are_named_at_the_routes_auth() {
    let one = |requirement: &str| errors(&file(&auth(), "", &route(requirement)));
    assert_eq!(
        one("mian"),
        ["t.yaml:17:15: listeners[0].routes[0].auth: unknown JWT provider \"mian\"; did you mean `main`?"]
    );
    assert_eq!(
        one("jwt"),
        ["t.yaml:17:15: listeners[0].routes[0].auth: `jwt` means the only JWT provider, but `auth.jwt_providers` has 2: main, other; name one"]
    );
    assert_eq!(
        one("{ any: [main, none] }"),
        ["t.yaml:17:29: listeners[0].routes[0].auth.any[1]: `none` stands alone: a route without authentication is `auth: none`"]
    );
    assert_eq!(
        one("allow_missing"),
        ["t.yaml:17:15: listeners[0].routes[0].auth: `allow_missing` goes in an `any` list beside the providers it makes optional, e.g. `{ any: [main, allow_missing] }`"]
    );
    assert_eq!(
        one("{ all: [main, allow_missing_or_failed] }"),
        ["t.yaml:17:29: listeners[0].routes[0].auth.all[1]: `allow_missing_or_failed` goes in an `any` list beside the providers it makes optional, e.g. `{ any: [main, allow_missing_or_failed] }`"]
    );
    assert_eq!(
        one("{ any: [main] }"),
        ["t.yaml:17:22: listeners[0].routes[0].auth.any: `any` lists at least two requirements (one alone is written by itself)"]
    );
    assert_eq!(
        one("{ provider: main, any: [main, other] }"),
        ["t.yaml:17:15: listeners[0].routes[0].auth: a requirement mapping has exactly one of `provider`, `any` or `all`"]
    );
    assert_eq!(
        one("{ any: [main, other], audiences: [a] }"),
        ["t.yaml:17:48: listeners[0].routes[0].auth.audiences: `audiences` applies with `provider`"]
    );
    assert_eq!(
        one("{ provider: main, audiences: [] }"),
        ["t.yaml:17:44: listeners[0].routes[0].auth.audiences: `audiences` needs at least one audience (leave it out for the provider's)"]
    );
    assert_eq!(
        one("{ provider: api_key }"),
        ["t.yaml:17:27: listeners[0].routes[0].auth.provider: unknown JWT provider \"api_key\""]
    );
    assert_eq!(
        one("[main]"),
        ["t.yaml:17:15: listeners[0].routes[0].auth: expected a provider name, `jwt`, `api_key`, `none`, or a mapping with `provider`, `any` or `all`, found a list"]
    );
    assert_eq!(
        one("{ porvider: main }"),
        // The unknown key only: "exactly one of" would repeat it.
        ["t.yaml:17:17: listeners[0].routes[0].auth.porvider: unknown key `porvider`; did you mean `provider`?"]
    );
    // Without `auth` at the top.
    let bare = |requirement: &str| errors(&file("", "", &route(requirement)));
    assert_eq!(
        bare("main"),
        ["t.yaml:7:15: listeners[0].routes[0].auth: unknown JWT provider \"main\": `auth.jwt_providers` declares none (requirements: a provider's name, `jwt`, `api_key`, `none`, `any`, `all`)"]
    );
    assert_eq!(
        bare("jwt"),
        ["t.yaml:7:15: listeners[0].routes[0].auth: `jwt` needs a JWT provider in `auth.jwt_providers` (there is none)"]
    );
    assert_eq!(
        bare("api_key"),
        ["t.yaml:7:15: listeners[0].routes[0].auth: `api_key` needs `auth.api_keys` (the consumers and their keys)"]
    );
    // At the listener.
    assert_eq!(
        errors(&file(&auth(), "    auth: nope\n", &route("none"))),
        ["t.yaml:14:11: listeners[0].auth: unknown JWT provider \"nope\"; did you mean `none`?"]
    );
    // A broken `auth` section does not make every route's name unknown too.
    let broken = "auth:\n  jwt_providers: { name: main }\n";
    assert_eq!(
        errors(&file(broken, "", &route("main"))),
        ["t.yaml:2:18: auth.jwt_providers: expected a list, found a mapping"]
    );
}

#[test]
fn provider_mistakes_are_named_where_written() {
    let with = |provider: &str| {
        errors(&file(
            &format!("auth:\n  jwt_providers:\n    - name: p\n{provider}"),
            "",
            &route("p"),
        ))
    };
    let jwks = format!("      jwks: {{ inline: '{JWKS}' }}\n");
    assert_eq!(
        with("      jwks: {}\n"),
        ["t.yaml:4:13: auth.jwt_providers[0].jwks: `jwks` needs one of `inline`, `file` or `url`"]
    );
    assert_eq!(
        with(&format!("      jwks: {{ inline: '{JWKS}', url: http://x/ }}\n")),
        [format!("t.yaml:4:{}: auth.jwt_providers[0].jwks.url: `jwks` has exactly one of `inline`, `file` or `url`", 32 + JWKS.len())]
    );
    assert_eq!(
        with(&format!("      jwks: {{ inline: '{JWKS}', timeout: 1s }}\n")),
        [format!("t.yaml:4:{}: auth.jwt_providers[0].jwks.timeout: `timeout` applies to keys fetched from a `url`", 36 + JWKS.len())]
    );
    assert_eq!(
        with("      jwks: { inline: '{\"keys\": []}' }\n"),
        ["t.yaml:4:23: auth.jwt_providers[0].jwks.inline: invalid JWKS: Jwks doesn't have any valid public key"]
    );
    for (url, why) in [
        (
            "ftp://x/keys",
            "\"ftp://x/keys\" is not an http:// or https:// URL",
        ),
        ("https:///keys", "\"https:///keys\" has no host"),
        (
            "https://u:p@x/keys",
            "\"https://u:p@x/keys\": credentials in the URL are not supported",
        ),
        (
            "https://x:0/keys",
            "\"https://x:0/keys\": invalid port in \"x:0\": expected 1..65535",
        ),
        (
            "'https://x/a b'",
            "\"https://x/a b\" has a space, a control or a non-ASCII character (percent-encode it)",
        ),
    ] {
        assert_eq!(
            with(&format!("      jwks: {{ url: {url} }}\n")),
            [format!(
                "t.yaml:4:20: auth.jwt_providers[0].jwks.url: {why}"
            )]
        );
    }
    assert_eq!(
        with("      jwks: { url: https://x/k, cluster: idpp, retries: 101 }\n"),
        [
            "t.yaml:4:42: auth.jwt_providers[0].jwks.cluster: unknown cluster \"idpp\"; did you mean `idp`?",
            "t.yaml:4:57: auth.jwt_providers[0].jwks.retries: expected a number of retries from 0 to 100, found 101",
        ]
    );
    assert_eq!(
        with(&format!("{jwks}      from: [ {{ header: host }}, {{ query: 'a=b' }}, {{ cookie: 'a b' }}, {{ query: q, prefix: x }}, {{ header: a, cookie: b }} ]\n      claim_to_headers: {{ content-length: sub, x-a: 'a..b' }}\n      pad_forward_payload_header: true\n      cache_size: 0\n")),
        [
            "t.yaml:5:25: auth.jwt_providers[0].from[0].header: `host` cannot be edited: it carries the message's framing, connection or routing",
            "t.yaml:5:42: auth.jwt_providers[0].from[1].query: \"a=b\" is not a query parameter name (printable ASCII without `&`, `=`, `#`, `?`)",
            "t.yaml:5:61: auth.jwt_providers[0].from[2].cookie: \"a b\" is not a cookie name (an HTTP token)",
            "t.yaml:5:90: auth.jwt_providers[0].from[3].prefix: `prefix` applies to a `header`",
            "t.yaml:5:95: auth.jwt_providers[0].from[4]: a location has exactly one of `header`, `query` or `cookie`",
            "t.yaml:6:27: auth.jwt_providers[0].claim_to_headers.content-length: `content-length` cannot be edited: it carries the message's framing, connection or routing",
            "t.yaml:6:53: auth.jwt_providers[0].claim_to_headers.x-a: \"a..b\" is not a claim: a name, or a dotted path such as `org.id`",
            "t.yaml:7:35: auth.jwt_providers[0].pad_forward_payload_header: `pad_forward_payload_header` applies with `forward_payload_header`",
            "t.yaml:8:19: auth.jwt_providers[0].cache_size: expected a number of tokens from 1 to 1000000, found 0",
        ]
    );
    // Names: unique, and not a requirement word.
    let text = format!(
        "auth:\n  jwt_providers:\n    - name: p\n{jwks}    - name: p\n{jwks}    - name: api_key\n{jwks}"
    );
    assert_eq!(
        errors(&file(&text, "", &route("p"))),
        [
            "t.yaml:5:13: auth.jwt_providers[1].name: duplicate JWT provider name \"p\" (first defined at 3:13: auth.jwt_providers[0].name)",
            "t.yaml:7:13: auth.jwt_providers[2].name: `api_key` is a word of `auth` requirements; name the provider otherwise",
        ]
    );
}

#[test]
fn api_key_mistakes_never_repeat_a_key() {
    let with = |api_keys: &str| {
        errors(&file(
            &format!("auth:\n  api_keys:\n{api_keys}"),
            "",
            &route("api_key"),
        ))
    };
    assert_eq!(
        with("    forward: true\n"),
        ["t.yaml:3:5: auth.api_keys: `api_keys` needs its consumers: `consumers`, or a `file` of them"]
    );
    assert_eq!(
        with("    consumers:\n      - { name: a, metadata: { plan: [x] } }\n      - { name: b, keys: ['secret key'] }\n      - { name: c, key_sha256: [abc] }\n"),
        [
            "t.yaml:4:9: auth.api_keys.consumers[0]: a consumer needs at least one key, in `keys` or `key_sha256`",
            "t.yaml:4:38: auth.api_keys.consumers[0].metadata.plan: expected a string, a number or a boolean, found a list",
            "t.yaml:5:27: auth.api_keys.consumers[1].keys[0]: a key is printable ASCII without spaces (it is sent in a header or a query)",
            "t.yaml:6:33: auth.api_keys.consumers[2].key_sha256[0]: expected a SHA-256 digest as 64 hexadecimal digits, found 3 characters",
        ]
    );
    let digest = "00".repeat(32);
    assert_eq!(
        with(&format!("    consumers:\n      - {{ name: a, keys: [k1] }}\n      - {{ name: a, keys: [k2] }}\n      - {{ name: b, keys: [k1] }}\n      - {{ name: c, key_sha256: [\"{digest}\"] }}\n      - {{ name: d, key_sha256: [\"{}\"] }}\n", digest.to_uppercase())),
        [
            "t.yaml:5:9: auth.api_keys.consumers[1]: duplicate consumer name \"a\"",
            "t.yaml:6:9: auth.api_keys.consumers[2]: consumer \"b\" has a key that consumer \"a\" has too (a key identifies one consumer)",
            "t.yaml:8:9: auth.api_keys.consumers[4]: consumer \"d\" has a key that consumer \"c\" has too (a key identifies one consumer)",
        ]
    );
}

#[test]
fn the_short_form_takes_route_auth() {
    let text = format!(
        "{}routes:\n  - path: /api/**\n    upstream: 127.0.0.1:9000\n    auth: jwt\n  - path: /mixed\n    upstream: 127.0.0.1:9000\n    auth: {{ any: [other, api_key] }}\n  - path: /open\n    upstream: 127.0.0.1:9000\n    auth: none\n",
        auth().replace("    - name: other\n      jwks: { url: https://idp.example.com/keys, cluster: idp }\n", "")
            .replace("  api_keys:", "    - name: other\n      jwks: { url: https://idp.example.com/keys }\n  api_keys:")
    );
    // `jwt` needs one provider: with two it is refused where it is written.
    let errors = errors(&text);
    assert_eq!(
        errors,
        ["t.yaml:14:11: routes[0].auth: `jwt` means the only JWT provider, but `auth.jwt_providers` has 2: main, other; name one"]
    );
    let config = parse(&text.replace("auth: jwt", "auth: main"));
    let routes = &config.listeners[0].routes;
    assert_eq!(routes[0].auth, Some(RouteAuth::Requires(provider("main"))));
    assert_eq!(
        routes[1].auth,
        Some(RouteAuth::Requires(Requirement::Any(vec![
            provider("other"),
            Requirement::ApiKey
        ])))
    );
    assert_eq!(routes[2].auth, Some(RouteAuth::Disabled));
    assert!(config.listeners[0].auth.is_some());
    assert_eq!(config.auth.jwt_providers.len(), 2);
    let expansion = config.expansion.unwrap();
    assert!(
        expansion.contains("        auth: \"main\"\n"),
        "{expansion}"
    );
    assert!(
        expansion.contains("        auth: { any: [\"other\", api_key] }\n"),
        "{expansion}"
    );
    assert!(expansion.contains("        auth: none\n"), "{expansion}");
}
