//! The operator signer: a local private key, or an AWS KMS key (`ECC_SECG_P256K1`, sign-only).
//!
//! alloy's own `signer-aws` crate pins an `aws-smithy-types` version that conflicts with the
//! workspace's AWS SDK, so the KMS signer is implemented here on `aws-sdk-kms`: the public key
//! is read once (`GetPublicKey`, DER SubjectPublicKeyInfo), each digest is signed with
//! `Sign(ECDSA_SHA_256, MessageType=DIGEST)`, the DER signature is normalised to low-s and the
//! recovery bit is found by recovering against the known key.

use std::fmt;

use alloy::{
    consensus::SignableTransaction,
    network::{EthereumWallet, TxSigner},
    primitives::{Address, Signature, B256, U256},
    signers::{
        k256::ecdsa::{RecoveryId, Signature as KSig, VerifyingKey},
        local::PrivateKeySigner,
        Signer,
    },
};
use async_trait::async_trait;
use aws_sdk_kms::{
    primitives::Blob,
    types::{KeySpec, KeyUsageType, MessageType, SigningAlgorithmSpec},
};

/// What went wrong building or using a signer. Never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignerError {
    /// The private key is not 32 bytes of hex (the key itself is not echoed).
    #[error("the Ethereum private key is not a valid secp256k1 key ({0})")]
    InvalidPrivateKey(&'static str),
    /// KMS refused or could not be reached.
    #[error("AWS KMS {op} for key {key_id}: {detail}")]
    Kms {
        /// The KMS operation.
        op: &'static str,
        /// The key id (not secret).
        key_id: String,
        /// The SDK's report.
        detail: String,
    },
    /// KMS returned something that is not a secp256k1 key or signature.
    #[error("AWS KMS key {key_id}: {detail}")]
    Malformed {
        /// The key id.
        key_id: String,
        /// What is wrong.
        detail: String,
    },
}

/// A signer for the operator account.
#[derive(Clone)]
pub enum OperatorSigner {
    /// A local private key.
    Local(PrivateKeySigner),
    /// An AWS KMS key.
    Kms(KmsSigner),
}

impl fmt::Debug for OperatorSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The key never prints; the address is public.
            Self::Local(s) => f.debug_tuple("Local").field(&s.address()).finish(),
            Self::Kms(k) => f.debug_tuple("Kms").field(k).finish(),
        }
    }
}

impl OperatorSigner {
    /// A local signer from a `0x`-hex private key.
    pub fn local(private_key_hex: &str, chain_id: Option<u64>) -> Result<Self, SignerError> {
        let hex = private_key_hex.trim().trim_start_matches("0x");
        let bytes = hex::decode(hex).map_err(|_| SignerError::InvalidPrivateKey("not hex"))?;
        if bytes.len() != 32 {
            return Err(SignerError::InvalidPrivateKey("not 32 bytes"));
        }
        let signer = PrivateKeySigner::from_slice(&bytes)
            .map_err(|_| SignerError::InvalidPrivateKey("not a valid scalar"))?
            .with_chain_id(chain_id);
        Ok(Self::Local(signer))
    }

    /// The operator address.
    pub fn address(&self) -> Address {
        match self {
            Self::Local(s) => s.address(),
            Self::Kms(k) => k.address,
        }
    }

    /// A wallet that signs with this signer.
    pub fn wallet(&self) -> EthereumWallet {
        match self {
            Self::Local(s) => EthereumWallet::new(s.clone()),
            Self::Kms(k) => EthereumWallet::new(k.clone()),
        }
    }
}

/// Signs with an AWS KMS secp256k1 key.
#[derive(Clone)]
pub struct KmsSigner {
    client: aws_sdk_kms::Client,
    key_id: String,
    verifying_key: VerifyingKey,
    address: Address,
}

impl fmt::Debug for KmsSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmsSigner")
            .field("key_id", &self.key_id)
            .field("address", &self.address)
            .finish()
    }
}

impl KmsSigner {
    /// Reads the key's public key from KMS; fails when KMS is unreachable or the key is not a
    /// secp256k1 signing key.
    pub async fn new(
        client: aws_sdk_kms::Client,
        key_id: impl Into<String>,
    ) -> Result<Self, SignerError> {
        let key_id = key_id.into();
        let out =
            client.get_public_key().key_id(&key_id).send().await.map_err(|e| SignerError::Kms {
                op: "GetPublicKey",
                key_id: key_id.clone(),
                detail: aws_sdk_kms::error::DisplayErrorContext(e).to_string(),
            })?;
        // KMS names the key's spec and usage (some emulators leave them out): refuse a key that
        // cannot sign Ethereum transactions before reading its point.
        let malformed = |detail: String| SignerError::Malformed { key_id: key_id.clone(), detail };
        if let Some(spec) = out.key_spec().filter(|s| **s != KeySpec::EccSecgP256K1) {
            return Err(malformed(format!(
                "its key spec is {}; the operator key must be ECC_SECG_P256K1 (secp256k1)",
                spec.as_str()
            )));
        }
        if let Some(usage) = out.key_usage().filter(|u| **u != KeyUsageType::SignVerify) {
            return Err(malformed(format!(
                "its key usage is {}; the operator key must be SIGN_VERIFY",
                usage.as_str()
            )));
        }
        let der = out.public_key().map(|b| b.as_ref().to_vec()).unwrap_or_default();
        let verifying_key = verifying_key_from_spki(&der).map_err(malformed)?;
        let address = Address::from_public_key(&verifying_key);
        Ok(Self { client, key_id, verifying_key, address })
    }

    /// A signer from a KMS client built from the environment's AWS configuration (region,
    /// credentials, and the endpoint override `AWS_ENDPOINT_URL_KMS` or `AWS_ENDPOINT_URL`).
    pub async fn from_env(key_id: impl Into<String>) -> Result<Self, SignerError> {
        let conf = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self::new(aws_sdk_kms::Client::new(&conf), key_id).await
    }

    /// The address of the key.
    pub fn address(&self) -> Address {
        self.address
    }

    async fn sign_digest(&self, digest: B256) -> Result<Signature, SignerError> {
        let out = self
            .client
            .sign()
            .key_id(&self.key_id)
            .message(Blob::new(digest.as_slice()))
            .message_type(MessageType::Digest)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await
            .map_err(|e| SignerError::Kms {
                op: "Sign",
                key_id: self.key_id.clone(),
                detail: aws_sdk_kms::error::DisplayErrorContext(e).to_string(),
            })?;
        let der = out.signature().map(|b| b.as_ref().to_vec()).unwrap_or_default();
        signature_from_der(&der, digest, &self.verifying_key)
            .map_err(|detail| SignerError::Malformed { key_id: self.key_id.clone(), detail })
    }
}

#[async_trait]
impl TxSigner<Signature> for KmsSigner {
    fn address(&self) -> Address {
        self.address
    }

    async fn sign_transaction(
        &self,
        tx: &mut dyn SignableTransaction<Signature>,
    ) -> alloy::signers::Result<Signature> {
        let digest = tx.signature_hash();
        self.sign_digest(digest).await.map_err(alloy::signers::Error::other)
    }
}

/// The secp256k1 key of a DER SubjectPublicKeyInfo: the uncompressed point is its last 65
/// bytes (`04 ‖ x ‖ y`) for this curve's fixed-size encoding.
pub fn verifying_key_from_spki(der: &[u8]) -> Result<VerifyingKey, String> {
    if der.len() < 65 || der[der.len() - 65] != 0x04 {
        return Err(format!(
            "public key is not an uncompressed secp256k1 SPKI ({} bytes)",
            der.len()
        ));
    }
    VerifyingKey::from_sec1_bytes(&der[der.len() - 65..]).map_err(|e| format!("public key: {e}"))
}

/// Reads one DER INTEGER at `pos`; returns its value as 32 bytes and the next position.
fn der_int(der: &[u8], pos: usize) -> Result<([u8; 32], usize), String> {
    let bad = || "malformed DER signature".to_owned();
    if der.get(pos) != Some(&0x02) {
        return Err(bad());
    }
    let len = usize::from(*der.get(pos + 1).ok_or_else(bad)?);
    let body = der.get(pos + 2..pos + 2 + len).ok_or_else(bad)?;
    let body = match body {
        [0, rest @ ..] => rest,
        b => b,
    };
    if body.len() > 32 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    out[32 - body.len()..].copy_from_slice(body);
    Ok((out, pos + 2 + len))
}

/// An Ethereum signature from a DER ECDSA signature of `digest`: low-s normalised, with the
/// recovery bit that recovers `key`.
pub fn signature_from_der(
    der: &[u8],
    digest: B256,
    key: &VerifyingKey,
) -> Result<Signature, String> {
    if der.first() != Some(&0x30) || der.len() < 8 {
        return Err("malformed DER signature".into());
    }
    let (r, next) = der_int(der, 2)?;
    let (s, _) = der_int(der, next)?;
    let sig = KSig::from_scalars(r, s).map_err(|e| format!("signature: {e}"))?;
    let sig = sig.normalize_s().unwrap_or(sig);
    for parity in [false, true] {
        let id = RecoveryId::new(parity, false);
        if let Ok(k) = VerifyingKey::recover_from_prehash(digest.as_slice(), &sig, id) {
            if &k == key {
                let (r, s) = sig.split_bytes();
                return Ok(Signature::new(
                    U256::from_be_slice(&r),
                    U256::from_be_slice(&s),
                    parity,
                ));
            }
        }
    }
    Err("the signature does not recover to the key's public key: KMS did not sign the digest \
         as given (a KMS that ignores MessageType=DIGEST signs SHA-256 of it instead)"
        .into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::signers::{k256::ecdsa::SigningKey, SignerSync};

    const ANVIL_KEY_0: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

    fn der_of(sig: &KSig) -> Vec<u8> {
        let (r, s) = sig.split_bytes();
        let int = |v: &[u8]| {
            let mut v = v.iter().copied().skip_while(|b| *b == 0).collect::<Vec<_>>();
            if v.first().is_some_and(|b| b & 0x80 != 0) {
                v.insert(0, 0);
            }
            let mut out = vec![0x02, v.len() as u8];
            out.extend(v);
            out
        };
        let mut body = int(&r);
        body.extend(int(&s));
        let mut out = vec![0x30, body.len() as u8];
        out.extend(body);
        out
    }

    #[test]
    fn local_signer_from_hex_and_debug_hides_the_key() {
        let s = OperatorSigner::local(ANVIL_KEY_0, Some(31337)).unwrap();
        assert_eq!(s.address().to_string(), "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
        let dbg = format!("{s:?}");
        assert!(!dbg.to_lowercase().contains("ac0974bec39a17e36ba4a6b4d238ff944bacb478"), "{dbg}");
        assert_eq!(
            OperatorSigner::local("0x12", None).unwrap_err(),
            SignerError::InvalidPrivateKey("not 32 bytes")
        );
        let e = OperatorSigner::local("zz", None).unwrap_err().to_string();
        assert!(!e.contains("zz"));
    }

    #[test]
    fn der_signatures_become_recoverable_ethereum_signatures() {
        let sk = SigningKey::from_slice(&hex::decode(&ANVIL_KEY_0[2..]).unwrap()).unwrap();
        let vk = *sk.verifying_key();
        // SPKI for secp256k1: fixed 23-byte prefix + uncompressed point.
        let mut spki = hex::decode("3056301006072a8648ce3d020106052b8104000a034200").unwrap();
        spki.extend_from_slice(vk.to_encoded_point(false).as_bytes());
        assert_eq!(verifying_key_from_spki(&spki).unwrap(), vk);
        let local = PrivateKeySigner::from_signing_key(sk.clone());
        for i in 0..8u8 {
            let digest = B256::from([i; 32]);
            let (sig, _) = sk.sign_prehash_recoverable(digest.as_slice()).unwrap();
            // KMS may return high-s signatures: use the high-s form half of the time.
            let sig = if i % 2 == 0 {
                sig
            } else {
                KSig::from_scalars(sig.r().to_bytes(), (-*sig.s()).to_bytes()).unwrap()
            };
            let eth = signature_from_der(&der_of(&sig), digest, &vk).unwrap();
            assert_eq!(eth.recover_address_from_prehash(&digest).unwrap(), local.address());
            assert_eq!(eth, local.sign_hash_sync(&digest).unwrap());
        }
        assert!(signature_from_der(&[0x30, 1, 2], B256::ZERO, &vk).is_err());
        // A signature of another message (what a KMS that hashes the digest again returns) is
        // refused rather than turned into a transaction from some other address.
        let (other, _) = sk.sign_prehash_recoverable(&[7u8; 32]).unwrap();
        let err = signature_from_der(&der_of(&other), B256::from([9u8; 32]), &vk).unwrap_err();
        assert!(err.contains("does not recover") && err.contains("MessageType=DIGEST"), "{err}");
    }

    #[tokio::test]
    async fn kms_signer_construction_reports_an_unreachable_kms_without_secrets() {
        let conf = aws_sdk_kms::Config::builder()
            .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
            .region(aws_sdk_kms::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_kms::config::Credentials::new(
                "AKIDTEST",
                "secret-test-value",
                None,
                None,
                "test",
            ))
            .endpoint_url("http://127.0.0.1:1")
            .build();
        let err = KmsSigner::new(aws_sdk_kms::Client::from_conf(conf), "alias/operator")
            .await
            .unwrap_err();
        assert!(matches!(err, SignerError::Kms { op: "GetPublicKey", .. }), "{err}");
        assert!(err.to_string().contains("alias/operator"));
        assert!(!err.to_string().contains("secret-test-value"));
    }
}
