//! The SHARP client against a local HTTPS server that requires client certificates; every
//! certificate is generated here.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use axum::{
    extract::{Query, State},
    routing::{get, post},
    Json, Router,
};
use orchestrator_gps_fact_checker::{
    onchain::{FactCheckError, B256},
    FactRegistry,
};
use orchestrator_prover_client_interface::{
    CreateJobInfo, ProverClient, RetryPolicy, Retryable, Task, TaskStatus, TaskType,
};
use orchestrator_sharp_service::{SharpConfig, SharpProverService};
use orchestrator_utils::Secret;
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls::{
    pki_types::{CertificateDer, PrivateKeyDer},
    server::WebPkiClientVerifier,
    RootCertStore, ServerConfig,
};

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new() -> Self {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        Self { cert, key }
    }

    /// A leaf certificate and its PKCS#8 key, both PEM.
    fn issue(
        &self,
        names: &[&str],
        usage: ExtendedKeyUsagePurpose,
    ) -> (rcgen::Certificate, KeyPair) {
        let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
        p.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert, key)
    }
}

#[derive(Debug, Default)]
struct Gateway {
    statuses: HashMap<String, serde_json::Value>,
    posts: Vec<(String, HashMap<String, String>, serde_json::Value)>,
}

type Shared = Arc<Mutex<Gateway>>;

fn gateway(state: Shared) -> Router {
    async fn status(
        State(s): State<Shared>,
        Query(q): Query<HashMap<String, String>>,
    ) -> Json<serde_json::Value> {
        let key = q.get("cairo_job_key").cloned().unwrap_or_default();
        Json(
            s.lock()
                .unwrap()
                .statuses
                .get(&key)
                .cloned()
                .unwrap_or(serde_json::json!({"status": "UNKNOWN"})),
        )
    }
    async fn add(
        route: &str,
        s: Shared,
        q: HashMap<String, String>,
        body: serde_json::Value,
    ) -> Json<serde_json::Value> {
        let mut g = s.lock().unwrap();
        let key = q.get("cairo_job_key").cloned().unwrap_or_default();
        g.statuses.insert(key, serde_json::json!({"status": "IN_PROGRESS"}));
        g.posts.push((route.to_owned(), q, body));
        Json(serde_json::json!({"code": "JOB_RECEIVED_SUCCESSFULLY"}))
    }
    Router::new()
        .route("/is_alive", get(|| async { "ok" }))
        .route("/get_status", get(status))
        .route(
            "/add_job",
            post(
                |State(s): State<Shared>,
                 Query(q): Query<HashMap<String, String>>,
                 Json(b): Json<serde_json::Value>| add("add_job", s, q, b),
            ),
        )
        .route(
            "/add_applicative_job",
            post(
                |State(s): State<Shared>,
                 Query(q): Query<HashMap<String, String>>,
                 Json(b): Json<serde_json::Value>| {
                    add("add_applicative_job", s, q, b)
                },
            ),
        )
        .route("/get_proof", get(|| async { "{\"proof\": true}" }))
        .with_state(state)
}

/// Serves `router` over TLS, requiring client certificates issued by `client_ca`.
async fn serve(ca: &Ca, client_ca: &Ca, router: Router) -> url::Url {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (server_cert, server_key) = ca.issue(&["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(client_ca.cert.der().to_vec())).unwrap();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .unwrap();
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(server_cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let router = router.clone();
            tokio::spawn(async move {
                // A refused handshake ends here: the client sees the TLS alert.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(router);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    format!("https://localhost:{port}/").parse().unwrap()
}

#[derive(Debug)]
struct Facts(bool);

#[async_trait]
impl FactRegistry for Facts {
    async fn is_valid(&self, _fact: B256) -> Result<bool, FactCheckError> {
        Ok(self.0)
    }
}

fn client(
    url: url::Url,
    server_ca: &Ca,
    identity: (rcgen::Certificate, KeyPair),
    facts: bool,
) -> SharpProverService {
    let config = SharpConfig {
        url,
        customer_id: "cust-1".into(),
        user_crt_pem: identity.0.pem(),
        user_key_pem: Secret::new(identity.1.serialize_pem()),
        server_crt_pem: server_ca.cert.pem(),
        retry: RetryPolicy::new(Duration::from_millis(10), Duration::from_millis(100)),
        request_timeout: Duration::from_secs(5),
    };
    SharpProverService::new(config, Arc::new(Facts(facts))).unwrap()
}

fn job(key: &str) -> Task {
    Task::CreateJob(CreateJobInfo {
        cairo_pie_zip: b"PK-pie".to_vec(),
        bucket_id: None,
        bucket_job_index: None,
        num_steps: None,
        dedup_id: key.into(),
    })
}

#[tokio::test]
async fn mutual_tls_jobs_status_and_idempotent_resubmission() {
    let ca = Ca::new();
    let state = Shared::default();
    let url = serve(&ca, &ca, gateway(state.clone())).await;
    let sharp =
        client(url, &ca, ca.issue(&["orchestrator"], ExtendedKeyUsagePurpose::ClientAuth), false);
    sharp.is_alive().await.unwrap();

    assert_eq!(sharp.submit_task(job("0xfact1")).await.unwrap(), "0xfact1");
    assert_eq!(sharp.submit_task(job("0xfact1")).await.unwrap(), "0xfact1");
    {
        let g = state.lock().unwrap();
        assert_eq!(g.posts.len(), 1, "a known key is not submitted again");
        let (route, q, body) = &g.posts[0];
        assert_eq!(route, "add_job");
        for (k, v) in [
            ("customer_id", "cust-1"),
            ("cairo_job_key", "0xfact1"),
            ("offchain_proof", "true"),
            ("for_applicative", "true"),
            ("program_hash_function", "PEDERSEN"),
        ] {
            assert_eq!(q.get(k).map(String::as_str), Some(v), "{k}");
        }
        assert_eq!(body["cairo_pie_encoded"], "UEstcGll");
    }
    assert_eq!(
        sharp.get_task_status(TaskType::Job, "0xfact1", None).await.unwrap(),
        TaskStatus::Processing
    );
    let set = |k: &str, v: serde_json::Value| state.lock().unwrap().statuses.insert(k.into(), v);
    set("0xfact1", serde_json::json!({"status": "IN_PROGRESS", "validation_done": true}));
    assert_eq!(
        sharp.get_task_status(TaskType::Job, "0xfact1", None).await.unwrap(),
        TaskStatus::Succeeded
    );
    set(
        "0xbad",
        serde_json::json!({"status": "INVALID", "invalid_reason": "INVALID_CAIRO_PIE_FILE_FORMAT"}),
    );
    match sharp.get_task_status(TaskType::Job, "0xbad", None).await.unwrap() {
        TaskStatus::Failed(r) => assert!(r.contains("INVALID_CAIRO_PIE_FILE_FORMAT"), "{r}"),
        other => panic!("{other:?}"),
    }
    // Aggregation: PROCESSED but the fact is not on chain yet → still processing.
    set("0x02", serde_json::json!({"status": "PROCESSED"}));
    assert_eq!(
        sharp.get_task_status(TaskType::Aggregation, "0x02", Some("0x02")).await.unwrap(),
        TaskStatus::Processing
    );
    assert!(sharp.get_proof("0x02").await.unwrap().contains("proof"));
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let ca = Ca::new();
    let url = serve(&ca, &ca, gateway(Shared::default())).await;
    let plain = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let err = plain.get(url.join("is_alive").unwrap()).send().await;
    assert!(err.is_err(), "the server must refuse a client without a certificate: {err:?}");
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let ca = Ca::new();
    let other = Ca::new();
    let url = serve(&ca, &ca, gateway(Shared::default())).await;
    let sharp =
        client(url, &ca, other.issue(&["intruder"], ExtendedKeyUsagePurpose::ClientAuth), false);
    let err = sharp.is_alive().await.unwrap_err();
    assert!(err.is_retryable(), "a TLS failure is a transport error: {err}");
}

#[tokio::test]
async fn a_server_with_another_certificate_is_not_trusted() {
    let ca = Ca::new();
    let impostor = Ca::new();
    // The server presents a certificate from `impostor`; the client pins `ca`.
    let url = serve(&impostor, &ca, gateway(Shared::default())).await;
    let sharp =
        client(url, &ca, ca.issue(&["orchestrator"], ExtendedKeyUsagePurpose::ClientAuth), false);
    assert!(sharp.is_alive().await.is_err());
}

#[test]
fn a_key_that_is_not_pem_is_a_config_error_without_the_key() {
    let ca = Ca::new();
    let config = SharpConfig {
        url: "https://localhost/".parse().unwrap(),
        customer_id: "c".into(),
        user_crt_pem: ca.cert.pem(),
        user_key_pem: Secret::new("super-secret-not-a-key".into()),
        server_crt_pem: ca.cert.pem(),
        retry: RetryPolicy::none(),
        request_timeout: Duration::from_secs(1),
    };
    let err = SharpProverService::new(config, Arc::new(Facts(true))).unwrap_err();
    assert!(!err.to_string().contains("super-secret"), "{err}");
}

#[tokio::test]
async fn credentials_in_the_url_travel_as_a_basic_header_and_never_show() {
    let ca = Ca::new();
    let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let record = seen.clone();
    let router = Router::new().route(
        "/is_alive",
        get(move |headers: axum::http::HeaderMap| {
            let auth =
                headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
            record.lock().unwrap().push(auth);
            async { "ok" }
        }),
    );
    let mut url = serve(&ca, &ca, router).await;
    url.set_username("sharp").unwrap();
    url.set_password(Some("sharp-pw-0c4e7a")).unwrap();
    let sharp =
        client(url, &ca, ca.issue(&["orchestrator"], ExtendedKeyUsagePurpose::ClientAuth), true);
    sharp.is_alive().await.unwrap();
    // base64 of `sharp:sharp-pw-0c4e7a`, computed with Python's `base64.b64encode`.
    assert_eq!(*seen.lock().unwrap(), [Some("Basic c2hhcnA6c2hhcnAtcHctMGM0ZTdh".to_owned())]);
    let shown = format!("{sharp:?} {sharp:#?}");
    assert!(
        !shown.contains("sharp-pw-0c4e7a") && !shown.contains("c2hhcnA6c2hhcnAtcHctMGM0ZTdh"),
        "{shown}"
    );
    assert!(shown.contains("localhost"), "the URL without credentials is shown: {shown}");
}
