//! The AWS KMS operator signer against KMS emulators.
//!
//! - LocalStack's KMS (`scripts/localstack.sh start`): a secp256k1 key created there signs a
//!   blob state update that the settlement client lands on Anvil; the transaction's sender is
//!   the key's address, and KMS itself verifies the signature the chain accepted. A key that is
//!   not secp256k1 is refused when the signer is built.
//! - moto's KMS (`scripts/moto.sh start`): it ignores `MessageType=DIGEST` (it signs SHA-256 of
//!   the digest), so its signatures do not recover to the key; the signer refuses them before
//!   anything is sent.
//!
//! `ORCH_SKIP_LOCALSTACK_TESTS=1`, `ORCH_SKIP_AWS_TESTS=1` (moto) and `ORCH_SKIP_ANVIL_TESTS=1`
//! skip them.

use alloy::{
    consensus::{SignableTransaction, TxEip1559, TxEnvelope},
    eips::Typed2718,
    network::TxSigner,
    primitives::{Address, TxKind, U256},
    providers::Provider,
};
use aws_sdk_kms::{
    config::{BehaviorVersion, Credentials, Region},
    error::DisplayErrorContext,
    primitives::Blob,
    types::{KeySpec, KeyUsageType, MessageType, SigningAlgorithmSpec},
    Client,
};
use orchestrator_ethereum_settlement_client::{
    signer::{KmsSigner, OperatorSigner, SignerError},
    EthereumSettlementClient,
};
use orchestrator_protocol::kzg::BYTES_PER_BLOB;
use orchestrator_settlement_client_interface::{
    BlobStateUpdate, SettlementClient, TxAttemptStatus,
};
use orchestrator_test_support::{launch, localstack, moto};

use crate::{blob, chain, program_output};

/// A KMS client for an emulator (static test credentials, `us-east-1`).
fn kms_client(endpoint: &str) -> Client {
    let conf = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "emulator"))
        .endpoint_url(endpoint)
        .build();
    Client::from_conf(conf)
}

/// Creates a sign-only key of `spec` in the emulator at `endpoint`; returns its key id.
async fn create_key(kms: &Client, endpoint: &str, spec: KeySpec) -> String {
    let out = kms
        .create_key()
        .key_spec(spec.clone())
        .key_usage(KeyUsageType::SignVerify)
        .description("orchestrator test operator")
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "CreateKey({}, SIGN_VERIFY) at {endpoint}: {} (the emulator must serve KMS: \
                 scripts/localstack.sh starts LocalStack with kms; restart one started without \
                 it)",
                spec.as_str(),
                DisplayErrorContext(e)
            )
        });
    out.key_metadata().expect("CreateKey returns the key's metadata").key_id().to_owned()
}

/// DER `SEQUENCE { INTEGER r, INTEGER s }` of a signature's scalars.
fn der_signature(r: U256, s: U256) -> Vec<u8> {
    let int = |v: U256| {
        let bytes = v.to_be_bytes::<32>();
        let mut v: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
        if v.first().is_none_or(|b| b & 0x80 != 0) {
            v.insert(0, 0);
        }
        let mut out = vec![0x02, v.len() as u8];
        out.extend(v);
        out
    };
    let mut body = int(r);
    body.extend(int(s));
    let mut out = vec![0x30, body.len() as u8];
    out.extend(body);
    out
}

#[tokio::test]
async fn a_kms_key_signs_a_blob_state_update_that_lands_on_anvil() {
    let Some(endpoint) = localstack::endpoint_or_skip().await else {
        return;
    };
    let Some(chain) = chain("prague").await else {
        return;
    };
    let kms = kms_client(&endpoint);
    let key_id = create_key(&kms, &endpoint, KeySpec::EccSecgP256K1).await;
    // The operator names the key by an alias, as in production.
    let alias = format!("alias/orch-operator-{}", launch::unique_hex(8));
    kms.create_alias().alias_name(&alias).target_key_id(&key_id).send().await.unwrap();

    let signer = KmsSigner::new(kms.clone(), alias.clone()).await.unwrap();
    let operator = signer.address();
    assert_ne!(operator, Address::ZERO);
    // The same key read by its id gives the same address.
    assert_eq!(KmsSigner::new(kms.clone(), key_id.clone()).await.unwrap().address(), operator);

    let mut config = chain.config();
    config.peerdas = false; // an EIP-4844 sidecar with blob proofs
    let client = EthereumSettlementClient::new(config, OperatorSigner::Kms(signer)).await.unwrap();
    assert_eq!(client.address(), operator);
    // A fresh key has no ether: fund it on Anvil.
    let _: serde_json::Value = client
        .provider()
        .raw_request(
            "anvil_setBalance".into(),
            (operator, U256::from(10u64) * U256::from(10u64).pow(U256::from(18u64))),
        )
        .await
        .unwrap();

    let blobs = vec![blob(60), blob(61)];
    let po = program_output(&blobs, None, 5, 0, 111);
    chain.register(&po).await;
    let out = client
        .update_state_with_blobs(BlobStateUpdate {
            program_output: po,
            blobs,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("KMS-signed state update: {e}"));
    assert_eq!(client.get_last_settled_block().await.unwrap(), Some(5));
    assert_eq!(out.attempts.len(), 1);
    assert_eq!(out.attempts[0].status, TxAttemptStatus::Finalized);

    let hash = out.tx_hash.unwrap().parse().unwrap();
    let provider = client.provider();
    let receipt = provider.get_transaction_receipt(hash).await.unwrap().unwrap();
    assert!(receipt.status(), "the KMS-signed update reverted");
    assert_eq!(receipt.from, operator, "the chain recovered another sender");
    assert_eq!(receipt.blob_gas_used, Some(2 * BYTES_PER_BLOB as u64));
    assert_eq!(provider.get_transaction_count(operator).latest().await.unwrap(), 1);

    // The signature the chain accepted is one KMS made with that key: KMS verifies it over the
    // transaction's signing hash.
    let tx = provider.get_transaction_by_hash(hash).await.unwrap().unwrap();
    let envelope: TxEnvelope = tx.inner.into_inner();
    assert_eq!(envelope.ty(), 3, "not an EIP-4844 transaction");
    let TxEnvelope::Eip4844(signed) = &envelope else { unreachable!("type 3") };
    let sig = *signed.signature();
    let verified = kms
        .verify()
        .key_id(&alias)
        .message(Blob::new(signed.tx().signature_hash().as_slice()))
        .message_type(MessageType::Digest)
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .signature(Blob::new(der_signature(sig.r(), sig.s())))
        .send()
        .await
        .unwrap();
    assert!(verified.signature_valid(), "KMS does not recognise the signature as its key's");
}

#[tokio::test]
async fn a_kms_key_that_is_not_secp256k1_is_refused_when_the_signer_is_built() {
    let Some(endpoint) = localstack::endpoint_or_skip().await else {
        return;
    };
    let kms = kms_client(&endpoint);
    let key_id = create_key(&kms, &endpoint, KeySpec::EccNistP256).await;
    let err = KmsSigner::new(kms.clone(), key_id.clone()).await.unwrap_err();
    assert!(matches!(err, SignerError::Malformed { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&key_id) && msg.contains("ECC_NIST_P256"), "{msg}");
    assert!(msg.contains("ECC_SECG_P256K1"), "{msg}");

    // A key that does not exist: KMS's own answer, with the key id.
    let err = KmsSigner::new(kms, "alias/orch-no-such-key").await.unwrap_err();
    assert!(matches!(err, SignerError::Kms { op: "GetPublicKey", .. }), "{err}");
    assert!(err.to_string().contains("alias/orch-no-such-key"), "{err}");
}

#[tokio::test]
async fn moto_ignores_message_type_digest_and_the_signer_refuses_its_signatures() {
    let Some(endpoint) = moto::endpoint_or_skip().await else {
        return;
    };
    let kms = kms_client(&endpoint);
    let key_id = create_key(&kms, &endpoint, KeySpec::EccSecgP256K1).await;
    // moto serves CreateKey(ECC_SECG_P256K1) and GetPublicKey...
    let signer = KmsSigner::new(kms, key_id.clone()).await.unwrap();
    assert_ne!(signer.address(), Address::ZERO);
    // ...but signs SHA-256 of the digest it is given: the signature recovers to another key,
    // and the signer says so instead of producing a transaction from a stranger's address.
    let mut tx = TxEip1559 {
        chain_id: 31337,
        nonce: 0,
        gas_limit: 21_000,
        max_fee_per_gas: 2_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: TxKind::Call(Address::repeat_byte(0x11)),
        ..Default::default()
    };
    let err = signer.sign_transaction(&mut tx as &mut dyn SignableTransaction<_>).await;
    let msg = err.expect_err("moto's signature of SHA-256(digest) was accepted").to_string();
    assert!(msg.contains(&key_id) && msg.contains("MessageType=DIGEST"), "{msg}");
}
