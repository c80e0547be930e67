//! The `attest:policy/crypto` import: signature arithmetic with aws-lc-rs.
//!
//! The component decides which key, algorithm and bytes; this file only
//! maps the allow-listed algorithm to aws-lc-rs and answers yes or no.

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use policy_core::{SignatureAlgorithm, SignatureVerifier};

use crate::HostState;
use crate::bindings::attest::policy::crypto;
use crate::bindings::attest::policy::types::SignatureAlgorithm as WitAlgorithm;

/// Native signature verification with aws-lc-rs: what the component's
/// `crypto` import calls, and what the native core uses, so both paths run
/// identical arithmetic.
#[derive(Clone, Copy, Debug, Default)]
pub struct AwsLcVerifier;

impl SignatureVerifier for AwsLcVerifier {
    fn verify_signature(
        &self,
        algorithm: SignatureAlgorithm,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> bool {
        let alg: &'static dyn VerificationAlgorithm = match algorithm {
            SignatureAlgorithm::EcdsaP256Sha256 => &signature::ECDSA_P256_SHA256_ASN1,
            SignatureAlgorithm::EcdsaP256Sha384 => &signature::ECDSA_P256_SHA384_ASN1,
            SignatureAlgorithm::EcdsaP384Sha256 => &signature::ECDSA_P384_SHA256_ASN1,
            SignatureAlgorithm::EcdsaP384Sha384 => &signature::ECDSA_P384_SHA384_ASN1,
            SignatureAlgorithm::EcdsaP521Sha512 => &signature::ECDSA_P521_SHA512_ASN1,
            SignatureAlgorithm::RsaPkcs1Sha256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            SignatureAlgorithm::RsaPkcs1Sha384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            SignatureAlgorithm::RsaPkcs1Sha512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            SignatureAlgorithm::RsaPssSha256 => &signature::RSA_PSS_2048_8192_SHA256,
            SignatureAlgorithm::RsaPssSha384 => &signature::RSA_PSS_2048_8192_SHA384,
            SignatureAlgorithm::RsaPssSha512 => &signature::RSA_PSS_2048_8192_SHA512,
            SignatureAlgorithm::Ed25519 => &signature::ED25519,
            SignatureAlgorithm::EcdsaP256Sha512 => &signature::ECDSA_P256_SHA512_ASN1,
            SignatureAlgorithm::EcdsaP384Sha512 => &signature::ECDSA_P384_SHA512_ASN1,
            SignatureAlgorithm::EcdsaP521Sha256 => &signature::ECDSA_P521_SHA256_ASN1,
            SignatureAlgorithm::EcdsaP521Sha384 => &signature::ECDSA_P521_SHA384_ASN1,
        };
        UnparsedPublicKey::new(alg, public_key)
            .verify(message, signature)
            .is_ok()
    }
}

impl crypto::Host for HostState {
    fn verify_signature(
        &mut self,
        algorithm: WitAlgorithm,
        public_key: Vec<u8>,
        message: Vec<u8>,
        signature: Vec<u8>,
    ) -> bool {
        self.crypto.verify_signature(
            crate::convert::algorithm_from_wit(algorithm),
            &public_key,
            &message,
            &signature,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};

    #[test]
    fn verifies_and_rejects() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
        let sig = key.sign(&rng, b"hello").unwrap();
        let public = key.public_key().as_ref();
        let v = AwsLcVerifier;
        assert!(v.verify_signature(
            SignatureAlgorithm::EcdsaP256Sha256,
            public,
            b"hello",
            sig.as_ref()
        ));
        assert!(!v.verify_signature(
            SignatureAlgorithm::EcdsaP256Sha256,
            public,
            b"hellO",
            sig.as_ref()
        ));
        assert!(!v.verify_signature(
            SignatureAlgorithm::EcdsaP384Sha384,
            public,
            b"hello",
            sig.as_ref()
        ));
        assert!(!v.verify_signature(SignatureAlgorithm::Ed25519, b"", b"", b""));
    }

    #[test]
    fn every_algorithm_maps_both_ways() {
        for a in SignatureAlgorithm::ALL {
            let wit = crate::convert::algorithm_to_wit(*a);
            assert_eq!(crate::convert::algorithm_from_wit(wit), *a);
        }
    }
}
