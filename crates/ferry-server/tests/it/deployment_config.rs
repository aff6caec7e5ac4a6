//! A session that states no `allowedMedia` decides by the deployment's public `config.json`, read
//! from the CDN (here the emulator, which serves it), as the official clients do.

use crate::support::{DEPLOYMENT, Ferry};
use ferry_sandbox::genesys::Deployment;
use serde_json::Value;

/// ferry on the dev stack, with the emulator's deployment stating no `allowedMedia` and the
/// deployment's `config_cdn_url` set by `cdn` (given the emulator's `http://` base).
async fn ferry_without_allowed_media(cdn: impl FnOnce(&str) -> Option<String>) -> Ferry {
    let ferry = Ferry::start_with(|config| {
        let deployment = config.deployments.get_mut(DEPLOYMENT).expect("the demo deployment");
        let ws = deployment.web_messaging_url.clone().expect("the dev stack sets the emulator's URL");
        let base = ws.replacen("ws://", "http://", 1).trim_end_matches("/v1").to_owned();
        deployment.config_cdn_url = cdn(&base);
    })
    .await;
    let emulator = ferry.stack.genesys.state();
    emulator.add_deployment(Deployment { omit_allowed_media: true, ..Deployment::new(DEPLOYMENT) });
    ferry
}

async fn upload_pdf(ferry: &Ferry) -> Value {
    let data = b"%PDF-1.7\nconfig.json decides\n".repeat(50);
    let response = ferry.raw("report.pdf", "application/pdf", data).send().await.unwrap();
    assert_eq!(response.status(), 201, "{:?}", response.text().await);
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_allowed_media_the_deployments_config_json_allows_a_native_attachment() {
    let ferry = ferry_without_allowed_media(|base| Some(base.to_owned())).await;
    let reference = upload_pdf(&ferry).await;
    assert_eq!(reference["delivery"]["mode"], "native", "{reference}");
    let conversation = ferry.stack.genesys.state().conversation(ferry.token()).unwrap();
    assert_eq!(conversation.attachments.len(), 1);
    ferry.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_allowed_media_and_no_readable_config_json_the_file_goes_as_a_link() {
    // A CDN that refuses connections: the session then allows no native attachment.
    let unreachable = ferry_without_allowed_media(|_| Some("http://127.0.0.1:9".to_owned())).await;
    let reference = upload_pdf(&unreachable).await;
    assert_eq!(reference["delivery"]["mode"], "link", "{reference}");
    unreachable.stop().await;

    // No CDN known at all (an emulator URL and no config_cdn_url): links too.
    let unknown = ferry_without_allowed_media(|_| None).await;
    let reference = upload_pdf(&unknown).await;
    assert_eq!(reference["delivery"]["mode"], "link", "{reference}");
    unknown.stop().await;
}
