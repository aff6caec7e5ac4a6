//! `ferry config check` and `ferry config show` as a process, configured the way operators do:
//! `FERRY_…` variables (nested names, the flags' own names, deployments by label), a file and
//! flags. Nothing here needs S3: both commands only load and validate.

use std::process::{Command, Output};

const LINK_SECRET: &str = "link-secret-0123456789abcdef0123456789";
const TICKET_KEY: &str = "ticket-key-0123456789abcdef0123456789";
const OAUTH_SECRET: &str = "oauth-client-secret-value";
const DEPLOYMENT: &str = "0f3c9a2e-5b7d-4c1a-9e8f-2d6b1a7c3e90";

/// `ferry <args>` with only `vars` in its environment.
fn ferry(args: &[&str], vars: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .env_clear()
        .envs(vars.iter().copied())
        .output()
        .expect("ferry runs")
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A whole configuration from the environment alone.
fn env_only() -> Vec<(&'static str, &'static str)> {
    vec![
        ("FERRY_S3__BUCKET", "files"),
        ("FERRY_S3__REGION", "eu-central-1"),
        ("FERRY_LINK_SECRET", LINK_SECRET),
        ("FERRY_TICKET_KEYS__0__ID", "site-2026"),
        ("FERRY_TICKET_KEYS__0__SECRET", TICKET_KEY),
        ("FERRY_DEPLOYMENTS__SHOP__ID", DEPLOYMENT),
        ("FERRY_DEPLOYMENTS__SHOP__ENVIRONMENT", "mypurecloud.de"),
        ("FERRY_DEPLOYMENTS__SHOP__DELIVERY", "link"),
        ("FERRY_DEPLOYMENTS__OM__ID", "om-channel"),
        ("FERRY_DEPLOYMENTS__OM__DELIVERY", "open-messaging"),
        ("FERRY_DEPLOYMENTS__OM__OPEN_MESSAGING__INTEGRATION_ID", "integration-1"),
        ("FERRY_DEPLOYMENTS__OM__OPEN_MESSAGING__CLIENT_ID", "client-1"),
        ("FERRY_DEPLOYMENTS__OM__OPEN_MESSAGING__CLIENT_SECRET", OAUTH_SECRET),
        ("FERRY_LIMITS__MAX_FILE_SIZE", "1048576"),
    ]
}

#[test]
fn an_environment_only_configuration_checks_and_shows_with_its_sources() {
    let out = ferry(&["config", "check"], &env_only());
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("valid (2 deployment(s))"), "{stdout}");

    let out = ferry(&["config", "show", "--sources"], &env_only());
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    for line in [
        "s3.bucket = \"files\"  # FERRY_S3__BUCKET",
        "limits.max_file_size = 1048576  # FERRY_LIMITS__MAX_FILE_SIZE",
        "limits.memory_budget = 536870912  # default",
        // A deployment id with `-`, given by its label.
        &format!(
            "deployments.{DEPLOYMENT}.environment = \"mypurecloud.de\"  # FERRY_DEPLOYMENTS__SHOP__ENVIRONMENT"
        ),
        &format!("deployments.{DEPLOYMENT}.delivery = \"link\"  # FERRY_DEPLOYMENTS__SHOP__DELIVERY"),
        "deployments.om-channel.delivery = \"open-messaging\"  # FERRY_DEPLOYMENTS__OM__DELIVERY",
    ] {
        assert!(stdout.lines().any(|l| l == line), "no line {line:?} in\n{stdout}");
    }
}

#[test]
fn secrets_from_the_environment_are_redacted_in_show() {
    for args in [&["config", "show"][..], &["config", "show", "--sources"]] {
        let out = ferry(args, &env_only());
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stderr}");
        for secret in [LINK_SECRET, TICKET_KEY, OAUTH_SECRET] {
            assert!(!stdout.contains(secret), "{args:?} printed a secret:\n{stdout}");
        }
        assert!(stdout.contains("link_secret = \"[redacted]\""), "{stdout}");
        assert!(stdout.contains("client_secret = \"[redacted]\""), "{stdout}");
        assert!(stdout.contains("secret = \"[redacted]\""), "{stdout}");
    }
    // The TOML form is a file ferry reads (secrets aside).
    let (stdout, _) = text(&ferry(&["config", "show"], &env_only()));
    let shown: toml::Table = toml::from_str(&stdout).expect("show prints TOML");
    assert_eq!(shown["deployments"][DEPLOYMENT]["environment"].as_str(), Some("mypurecloud.de"));
}

#[test]
fn the_environment_overrides_the_file_and_flags_override_both() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ferry.toml");
    std::fs::write(
        &file,
        "public_url = \"https://files.example\"\n[s3]\nbucket = \"from-file\"\nregion = \"from-file\"\nprefix = \"from-file/\"\n\
         [limits]\nmax_file_size = 1\n[deployments.dep-1]\ndelivery = \"link\"\n",
    )
    .unwrap();
    let file = file.display().to_string();
    let vars = [
        ("FERRY_CONFIG", file.as_str()),
        ("FERRY_LINK_SECRET", LINK_SECRET),
        ("FERRY_S3_BUCKET", "from-flag-variable"),
        ("FERRY_S3__REGION", "from-env"),
        ("FERRY_LIMITS__MAX_FILE_SIZE", "4096"),
    ];
    let out = ferry(&["config", "show", "--sources", "--s3-prefix", "from-command-line/"], &vars);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    for line in [
        "s3.bucket = \"from-flag-variable\"  # FERRY_S3_BUCKET".to_owned(),
        "s3.region = \"from-env\"  # FERRY_S3__REGION".to_owned(),
        "s3.prefix = \"from-command-line/\"  # --s3-prefix".to_owned(),
        "limits.max_file_size = 4096  # FERRY_LIMITS__MAX_FILE_SIZE".to_owned(),
        format!("public_url = \"https://files.example\"  # file {file}"),
        format!("deployments.dep-1.delivery = \"link\"  # file {file}"),
    ] {
        assert!(stdout.lines().any(|l| l == line), "no line {line:?} in\n{stdout}");
    }
    assert!(ferry(&["config", "check"], &vars).status.success());

    // One setting under two variable names is refused, not silently ranked.
    let mut both = vars.to_vec();
    both.push(("FERRY_S3__BUCKET", "nested"));
    let out = ferry(&["config", "check"], &both);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("`s3.bucket` is set by both FERRY_S3_BUCKET and FERRY_S3__BUCKET"), "{stderr}");
}

#[test]
fn a_bad_value_fails_the_check_naming_the_setting_and_the_variable() {
    let mut vars = env_only();
    vars.retain(|(k, _)| *k != "FERRY_LIMITS__MAX_FILE_SIZE");
    vars.push(("FERRY_LIMITS__MAX_FILE_SIZE", "five-gigabytes"));
    let out = ferry(&["config", "check"], &vars);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("`limits.max_file_size`"), "{stderr}");
    assert!(stderr.contains("FERRY_LIMITS__MAX_FILE_SIZE"), "{stderr}");
    assert!(!stderr.contains("five-gigabytes"), "values are not echoed: {stderr}");

    // A value of the right type that validation refuses names its source too.
    let mut vars = env_only();
    vars.push(("FERRY_LIMITS__MEMORY_BUDGET", "1024"));
    let (_, stderr) = text(&ferry(&["config", "check"], &vars));
    assert!(
        stderr.contains("`limits.memory_budget`") && stderr.contains("(from FERRY_LIMITS__MEMORY_BUDGET)"),
        "{stderr}"
    );

    // And a setting left out says so.
    let mut vars = env_only();
    vars.retain(|(k, _)| *k != "FERRY_S3__BUCKET");
    let out = ferry(&["config", "check"], &vars);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("`s3.bucket`") && stderr.contains("(not set)"), "{stderr}");
}
