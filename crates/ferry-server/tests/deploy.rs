//! The container image and the Kubernetes example cannot drift from ferry: no container engine
//! runs here, so `Dockerfile` and `deploy/kubernetes/*.yaml` are parsed (YAML by `serde_norway`)
//! and checked against ferry's own defaults and command line — ports, probe paths, user, grace
//! period, memory, every `FERRY_…` variable, the configuration file.

use clap::CommandFactory as _;
use ferry_server::config::Config;
use serde_norway::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn yaml(name: &str) -> Value {
    let path = root().join("deploy/kubernetes").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn dockerfile() -> String {
    std::fs::read_to_string(root().join("Dockerfile")).expect("Dockerfile")
}

/// The last stage of the Dockerfile (what the image runs), its instructions joined across `\`.
fn final_stage() -> Vec<String> {
    let text = dockerfile().replace("\\\n", " ");
    let lines: Vec<&str> =
        text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let last_from = lines.iter().rposition(|l| l.starts_with("FROM ")).expect("a FROM");
    lines[last_from..].iter().map(|l| (*l).to_owned()).collect()
}

/// `KEY=value` pairs of the final stage's `ENV` lines.
fn image_env() -> Vec<(String, String)> {
    final_stage()
        .iter()
        .filter_map(|l| l.strip_prefix("ENV "))
        .flat_map(|rest| rest.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .filter_map(|pair| pair.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

fn port_of(addr: &str) -> u16 {
    addr.parse::<std::net::SocketAddr>().unwrap_or_else(|e| panic!("{addr}: {e}")).port()
}

/// The `FERRY_…` variables `ferry serve` reads.
fn serve_variables() -> BTreeSet<String> {
    let cli = ferry_server::cli::Cli::command();
    let serve = cli.find_subcommand("serve").expect("a serve command");
    serve.get_arguments().filter_map(|a| a.get_env()).map(|e| e.to_string_lossy().into_owned()).collect()
}

fn container(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]["containers"][0]
}

/// The container's `env` as pairs (values only for plain `value:` entries).
fn container_env(deployment: &Value) -> Vec<(String, Option<String>)> {
    container(deployment)["env"]
        .as_sequence()
        .expect("env")
        .iter()
        .map(|e| (e["name"].as_str().expect("name").to_owned(), e["value"].as_str().map(str::to_owned)))
        .collect()
}

fn mebibytes(quantity: &str) -> u64 {
    let (n, unit) = quantity.split_at(quantity.find(|c: char| !c.is_ascii_digit()).unwrap_or(quantity.len()));
    let n: u64 = n.parse().expect("a number");
    match unit {
        "Mi" => n,
        "Gi" => n * 1024,
        other => panic!("unit {other:?} in {quantity}"),
    }
}

#[test]
fn the_image_is_a_multi_stage_production_build_run_as_a_non_root_user() {
    let text = dockerfile();
    assert!(text.lines().filter(|l| l.starts_with("FROM ")).count() >= 2, "a multi-stage build");
    let build = text.replace("\\\n", " ");
    assert!(
        build.contains("cargo build --release --locked -p ferry-server --no-default-features"),
        "the production build (no dev stand-ins)"
    );
    let stage = final_stage();
    let user = stage.iter().find_map(|l| l.strip_prefix("USER ")).expect("a USER in the final stage");
    let uid: u32 = user.split(':').next().unwrap().parse().expect("a numeric user (runAsNonRoot needs one)");
    assert_ne!(uid, 0, "not root");
    assert!(stage.iter().any(|l| l == r#"ENTRYPOINT ["/usr/local/bin/ferry"]"#), "{stage:?}");
    assert!(stage.iter().any(|l| l == r#"CMD ["serve"]"#), "{stage:?}");

    let env = image_env();
    let known = serve_variables();
    for (key, _) in &env {
        assert!(known.contains(key), "{key} is not a `ferry serve` variable");
    }
    let get = |k: &str| env.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).expect(k);
    let exposed: BTreeSet<u16> = stage
        .iter()
        .filter_map(|l| l.strip_prefix("EXPOSE "))
        .flat_map(|r| r.split_whitespace().map(|p| p.parse::<u16>().expect("a port")).collect::<Vec<_>>())
        .collect();
    let listened: BTreeSet<u16> =
        [port_of(&get("FERRY_LISTEN")), port_of(&get("FERRY_ADMIN_LISTEN"))].into_iter().collect();
    assert_eq!(exposed, listened, "EXPOSE matches what ferry listens on");
    // The default listen port is kept inside the container (only the address widens).
    assert_eq!(port_of(&get("FERRY_LISTEN")), Config::default().listen.port());
}

#[tokio::test]
async fn the_probe_paths_are_served_by_the_admin_router() {
    use tower::ServiceExt as _;
    let deployment = yaml("deployment.yaml");
    let mut config = Config::default();
    config.s3.bucket = "b".into();
    config.s3.endpoint = Some("http://127.0.0.1:9".into());
    let client = ferry_s3::build_client(&ferry_s3::S3Config {
        endpoint: config.s3.endpoint.clone(),
        force_path_style: true,
        ..ferry_s3::S3Config::default()
    })
    .await;
    let state = ferry_server::state::AppState::with_s3_client(config, client).expect("state");
    for probe in ["livenessProbe", "readinessProbe"] {
        let path = container(&deployment)[probe]["httpGet"]["path"].as_str().expect("a path");
        let request = http::Request::get(path).body(axum::body::Body::empty()).unwrap();
        let response = ferry_server::admin::router(state.clone()).oneshot(request).await.unwrap();
        // No S3 here: readiness may say 503, but the path must exist (not 404).
        assert_ne!(response.status(), http::StatusCode::NOT_FOUND, "{probe} {path}");
    }
}

#[test]
fn the_deployment_matches_the_image_and_ferrys_defaults() {
    let deployment = yaml("deployment.yaml");
    assert_eq!(deployment["kind"].as_str(), Some("Deployment"));
    let pod = &deployment["spec"]["template"]["spec"];
    let c = container(&deployment);
    let env = container_env(&deployment);
    let known = serve_variables();
    for (key, _) in &env {
        assert!(known.contains(key), "{key} is not a `ferry serve` variable");
    }
    let value = |k: &str| env.iter().find(|(key, _)| key == k).and_then(|(_, v)| v.clone()).expect(k);
    assert_eq!(c["args"][0].as_str(), Some("serve"));

    // Ports: named, and the ones ferry listens on (the same as the image's).
    let port = |name: &str| {
        c["ports"]
            .as_sequence()
            .expect("ports")
            .iter()
            .find(|p| p["name"].as_str() == Some(name))
            .and_then(|p| p["containerPort"].as_u64())
            .unwrap_or_else(|| panic!("a port named {name}"))
    };
    assert_eq!(port("http"), u64::from(port_of(&value("FERRY_LISTEN"))));
    assert_eq!(port("admin"), u64::from(port_of(&value("FERRY_ADMIN_LISTEN"))));
    let image = image_env();
    for key in ["FERRY_LISTEN", "FERRY_ADMIN_LISTEN"] {
        let in_image = image.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        assert_eq!(in_image, Some(value(key)), "{key}: the image and the Deployment agree");
    }

    // Probes on the admin port, at ferry's paths.
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(c[probe]["httpGet"]["path"].as_str(), Some(path), "{probe}");
        assert_eq!(c[probe]["httpGet"]["port"].as_str(), Some("admin"), "{probe} on the admin port");
    }

    // The user is the image's, not root; the root file system is read-only.
    let stage = final_stage();
    let uid: u64 = stage
        .iter()
        .find_map(|l| l.strip_prefix("USER "))
        .unwrap()
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(pod["securityContext"]["runAsUser"].as_u64(), Some(uid));
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"].as_bool(), Some(false));

    // The configuration file the pod mounts, read by ferry's own reader.
    let config_map = yaml("configmap.yaml");
    let toml = config_map["data"]["ferry.toml"].as_str().expect("ferry.toml in the ConfigMap");
    let config = Config::from_toml(toml).unwrap_or_else(|e| panic!("the ConfigMap's ferry.toml: {e}"));
    let mount = c["volumeMounts"][0]["mountPath"].as_str().expect("a mount");
    assert_eq!(value("FERRY_CONFIG"), format!("{mount}/ferry.toml"));

    // The grace period covers ferry's shutdown grace plus time to deliver and abort.
    let grace = pod["terminationGracePeriodSeconds"].as_u64().expect("terminationGracePeriodSeconds");
    assert!(
        grace >= config.limits.shutdown_grace_secs + 30,
        "terminationGracePeriodSeconds {grace} must exceed limits.shutdown_grace_secs ({}) by 30 s or more",
        config.limits.shutdown_grace_secs
    );
    assert!(grace > Config::default().limits.shutdown_grace_secs);

    // The memory budget is well under the container's limit (docs/deploy.md: about 60–70 %).
    let limit = mebibytes(c["resources"]["limits"]["memory"].as_str().expect("a memory limit"));
    let budget = config.limits.memory_budget >> 20;
    assert!(budget * 100 <= limit * 70, "memory_budget {budget} MiB is over 70 % of the {limit} MiB limit");
}

#[test]
fn the_service_and_the_disruption_budget_select_the_deployment() {
    let deployment = yaml("deployment.yaml");
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    assert_eq!(&deployment["spec"]["selector"]["matchLabels"], labels);

    let service = yaml("service.yaml");
    assert_eq!(service["kind"].as_str(), Some("Service"));
    assert_eq!(&service["spec"]["selector"], labels);
    let ports = service["spec"]["ports"].as_sequence().expect("ports");
    assert!(
        ports.iter().all(|p| p["targetPort"].as_str() == Some("http")),
        "only the public port: {ports:?}"
    );

    let pdb = yaml("pdb.yaml");
    assert_eq!(pdb["kind"].as_str(), Some("PodDisruptionBudget"));
    assert_eq!(&pdb["spec"]["selector"]["matchLabels"], labels);
    let replicas = deployment["spec"]["replicas"].as_u64().expect("replicas");
    let min = pdb["spec"]["minAvailable"].as_u64().expect("minAvailable");
    assert!(min >= 1 && min < replicas, "a drain can proceed and leaves a replica serving");
}
