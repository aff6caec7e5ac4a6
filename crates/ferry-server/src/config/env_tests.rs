//! Tests of the layers: `FERRY_…` names, deployments by label, lists and secrets from the
//! environment, precedence, sources, errors and `config show`.

use super::*;
use std::collections::BTreeSet;

const SECRET_A: &str = "secret-a-0123456789abcdef0123456789abcdef";
const SECRET_B: &str = "secret-b-0123456789abcdef0123456789abcdef";

fn env(vars: &[(&str, &str)]) -> Result<Layer, ConfigError> {
    Layer::env(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())), &BTreeSet::new())
}

fn load(vars: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
    Loaded::from_layers([env(vars)?])
}

/// The required settings, from the environment only.
const REQUIRED: [(&str, &str); 3] = [
    ("FERRY_S3__BUCKET", "files"),
    ("FERRY_LINK_SECRET", SECRET_A),
    ("FERRY_DEPLOYMENTS__D1__DELIVERY", "link"),
];

#[test]
fn every_setting_has_a_nested_name_and_other_ferry_variables_are_not_settings() {
    let mut vars = REQUIRED.to_vec();
    vars.extend([
        ("FERRY_LIMITS__MAX_FILE_SIZE", "1000"),
        ("FERRY_LINK_TTL_SECS", "60"),
        ("FERRY_ALLOW_INSECURE", "true"),
        ("FERRY_ADMISSION__TRUSTED_CLIENT_HEADER", "x-forwarded-for"),
        ("FERRY_DATA_PATH__ALWAYS_SHA256", "1"),
        ("FERRY_OPS__ADMIN_LISTEN", "0.0.0.0:9090"),
        ("FERRY_LIMITS__ALLOWED_TYPES", r#"["image/*", "application/pdf"]"#),
        ("FERRY_CORS_ORIGINS__0", "https://b.example"),
        ("FERRY_CORS_ORIGINS__1", "https://a.example"),
        ("FERRY_TEST_LOCALSTACK", "http://127.0.0.1:4566"),
        ("OTHER", "x"),
    ]);
    let config = load(&vars).unwrap().config;
    config.validate().unwrap();
    assert_eq!(config.s3.bucket, "files");
    assert_eq!(config.limits.max_file_size, 1000);
    assert_eq!(config.link_ttl_secs, 60);
    assert!(config.allow_insecure && config.data_path.always_sha256);
    assert_eq!(config.admission.trusted_client_header.as_deref(), Some("x-forwarded-for"));
    assert_eq!(config.ops.admin_listen, Some("0.0.0.0:9090".parse().unwrap()));
    assert_eq!(config.limits.allowed_types, ["image/*", "application/pdf"]);
    assert_eq!(config.cors_origins, ["https://b.example", "https://a.example"], "in index order");
    assert_eq!(config.deployments["d1"].delivery, DeliveryPreference::Link);
    assert_eq!(config.limits.memory_budget, Limits::default().memory_budget, "the rest keeps its default");
}

#[test]
fn deployments_come_by_label_with_any_id() {
    let mut vars = REQUIRED.to_vec();
    vars.extend([
        ("FERRY_DEPLOYMENTS__SHOP__ID", "0f3c9a2e-5b7d-4c1a-9e8f-Shop-1"),
        ("FERRY_DEPLOYMENTS__SHOP__ENVIRONMENT", "mypurecloud.de"),
        ("FERRY_DEPLOYMENTS__SHOP__GUESTS__UPLOADS", "false"),
        ("FERRY_DEPLOYMENTS__SHOP__MAX_FILE_SIZE", "2048"),
        ("FERRY_DEPLOYMENTS__BARE__ID", "bare-id"),
    ]);
    let config = load(&vars).unwrap().config;
    config.validate().unwrap();
    let ids: Vec<&str> = config.deployments.keys().map(String::as_str).collect();
    assert_eq!(ids, ["0f3c9a2e-5b7d-4c1a-9e8f-Shop-1", "bare-id", "d1"]);
    let shop = &config.deployments["0f3c9a2e-5b7d-4c1a-9e8f-Shop-1"];
    assert_eq!(shop.environment.as_deref(), Some("mypurecloud.de"));
    assert!(!shop.guests.uploads);
    assert_eq!(shop.max_file_size, Some(2048));
    assert_eq!(config.deployments["bare-id"].delivery, DeliveryPreference::Auto, "an id alone: defaults");

    let error = load(&[("FERRY_DEPLOYMENTS__SHOP", "x")]).unwrap_err();
    assert!(error.problem.contains("FERRY_DEPLOYMENTS__<LABEL>__ID"), "{error}");
}

#[test]
fn secrets_and_key_lists_come_from_the_environment_inline_or_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("k1");
    std::fs::write(&file, format!("{SECRET_B}\n")).unwrap();
    let file = file.display().to_string();
    let om_keys = format!(r#"[{{ id = "om", secret = "{SECRET_A}" }}]"#);
    let vars = [
        ("FERRY_S3__BUCKET", "files"),
        ("FERRY_DEPLOYMENTS__D1__DELIVERY", "link"),
        ("FERRY_LINK_KEYS__0__ID", "k2"),
        ("FERRY_LINK_KEYS__0__SECRET", SECRET_A),
        ("FERRY_LINK_KEYS__1__ID", "k1"),
        ("FERRY_LINK_KEYS__1__SECRET__FILE", file.as_str()),
        ("FERRY_TICKET_SECRET__FILE", file.as_str()),
        ("FERRY_S3__ACCESS_KEY_ID", "AKIAEXAMPLE"),
        ("FERRY_S3__SECRET_ACCESS_KEY", "0123456789"),
        ("FERRY_DEPLOYMENTS__OM__ID", "om-1"),
        ("FERRY_DEPLOYMENTS__OM__DELIVERY", "open-messaging"),
        ("FERRY_DEPLOYMENTS__OM__OPEN_MESSAGING__INTEGRATION_ID", "int-1"),
        ("FERRY_DEPLOYMENTS__OM__OPEN_MESSAGING__CLIENT_ID", "client-1"),
        ("FERRY_DEPLOYMENTS__OM__OPEN_MESSAGING__CLIENT_SECRET", "007"),
        ("FERRY_DEPLOYMENTS__OM__TICKET_KEYS", om_keys.as_str()),
    ];
    let loaded = load(&vars).unwrap();
    let config = &loaded.config;
    config.validate().unwrap();
    let keys: Vec<(&str, &str)> =
        config.link_keys.iter().map(|k| (k.id.as_str(), k.secret.expose())).collect();
    assert_eq!(keys, [("k2", SECRET_A), ("k1", SECRET_B)]);
    assert_eq!(config.ticket_secret.as_ref().unwrap().expose(), SECRET_B);
    assert_eq!(config.s3.secret_access_key.as_ref().unwrap().expose(), "0123456789", "text, not a number");
    let om = config.deployments["om-1"].open_messaging.as_ref().unwrap();
    assert_eq!(om.client_secret.expose(), "007", "leading zeros kept");
    assert_eq!(config.deployments["om-1"].ticket_keys[0].secret.expose(), SECRET_A);
    assert_eq!(
        loaded.source_of(&["link_keys"]),
        "FERRY_LINK_KEYS__0__ID, FERRY_LINK_KEYS__0__SECRET, FERRY_LINK_KEYS__1__ID, FERRY_LINK_KEYS__1__SECRET__FILE"
    );
    assert_eq!(loaded.source_of(&["ticket_secret"]), "FERRY_TICKET_SECRET__FILE");

    let shown = show_toml(config).unwrap() + &show_sources(&loaded).unwrap();
    for secret in [SECRET_A, SECRET_B, "0123456789", "007\""] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(shown.contains("client_secret = \"[redacted]\""), "{shown}");
    assert!(shown.contains("access_key_id = \"AKIAEXAMPLE\""), "not a secret: {shown}");
}

#[test]
fn later_layers_win_and_every_value_knows_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ferry.toml");
    let text = "[s3]\nbucket = \"from-file\"\nregion = \"eu-west-1\"\n[limits]\nmax_file_size = 1\n\
                [deployments.dep-1]\ndelivery = \"link\"\n";
    std::fs::write(&path, text).unwrap();
    let file = Layer::file(&path).unwrap();
    let env = env(&[("FERRY_LIMITS__MAX_FILE_SIZE", "2"), ("FERRY_S3__BUCKET", "from-env")]).unwrap();
    let mut flags = Layer::new("command line");
    flags.set(&["s3", "bucket"], "from-flag", "--s3-bucket").unwrap();
    flags.set(&["link_secret"], SECRET_A, "--link-secret").unwrap();
    let loaded = Loaded::from_layers([file, env, flags]).unwrap();
    let c = &loaded.config;
    c.validate().unwrap();
    assert_eq!(
        (c.s3.bucket.as_str(), c.s3.region.as_str(), c.limits.max_file_size),
        ("from-flag", "eu-west-1", 2)
    );
    assert_eq!(loaded.source_of(&["s3", "bucket"]), "--s3-bucket");
    assert_eq!(loaded.source_of(&["s3", "region"]), format!("file {}", path.display()));
    assert_eq!(loaded.source_of(&["limits", "max_file_size"]), "FERRY_LIMITS__MAX_FILE_SIZE");
    assert_eq!(loaded.source_of(&["limits", "memory_budget"]), "default");
    let lines = show_sources(&loaded).unwrap();
    assert!(lines.contains("limits.max_file_size = 2  # FERRY_LIMITS__MAX_FILE_SIZE\n"), "{lines}");
    assert!(lines.contains("deployments.dep-1.delivery = \"link\"  # file "), "{lines}");
    assert!(lines.contains("link_secret = \"[redacted]\"  # --link-secret\n"), "{lines}");
    assert!(lines.contains("s3.part_size_mib = 8  # default\n"), "{lines}");
    let reread: Config = toml::from_str(&show_toml(c).unwrap()).unwrap();
    assert_eq!(reread.s3.bucket, "from-flag", "show prints a file ferry reads");
}

#[test]
fn bad_values_name_the_setting_and_the_variable_never_the_value() {
    let error = load(&[("FERRY_LIMITS__MAX_FILE_SIZE", "lots-of-bytes")]).unwrap_err();
    assert_eq!(error.setting, "limits.max_file_size", "{error}");
    assert!(error.problem.contains("FERRY_LIMITS__MAX_FILE_SIZE"), "{error}");
    assert!(!error.to_string().contains("lots-of-bytes"), "{error}");

    let error = load(&[("FERRY_LIMITS__MAX_FILE_SZE", "1")]).unwrap_err();
    assert_eq!(error.setting, "limits.max_file_sze", "{error}");
    assert!(error.problem.contains("from FERRY_LIMITS__MAX_FILE_SZE"), "{error}");

    let error =
        load(&[("FERRY_DEPLOYMENTS__SHOP__ID", "dep-1"), ("FERRY_DEPLOYMENTS__SHOP__DELIVERY", "pigeon")])
            .unwrap_err();
    assert_eq!(error.setting, "deployments.dep-1.delivery", "{error}");
    assert!(error.problem.contains("FERRY_DEPLOYMENTS__SHOP__DELIVERY"), "{error}");

    let error =
        load(&[("FERRY_LINK_KEYS__0__ID", "k"), ("FERRY_LINK_KEYS__0__SECRET", "[\"s3cr3t\"]")]).unwrap_err();
    assert!(!error.to_string().contains("s3cr3t"), "{error}");

    let error = load(&[("FERRY_S3____BUCKET", "x")]).unwrap_err();
    assert!(error.problem.contains("FERRY_S3____BUCKET"), "{error}");

    let loaded = load(&[("FERRY_LIMITS__MEMORY_BUDGET", "1024"), ("FERRY_S3__BUCKET", "b")]).unwrap();
    let mut config = loaded.config.clone();
    config.link_secret = SECRET_A.into();
    config.deployments.insert("d".into(), Deployment::default());
    let error = loaded.explain(config.validate().unwrap_err());
    assert_eq!(error.setting, "limits.memory_budget");
    assert!(error.problem.ends_with("(from FERRY_LIMITS__MEMORY_BUDGET)"), "{error}");
    let error = load(&[]).unwrap().explain(Config::default().validate().unwrap_err());
    assert_eq!(error.setting, "s3.bucket");
    assert!(error.problem.ends_with("(not set)"), "{error}");
}
