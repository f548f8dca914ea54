//! Flag values of the configuration's named choices ([`crate::config::choices`], and the
//! [`Layer`]): clap's
//! [`ValueEnum`] for each, with the names the reference's flags accept and each variant's doc
//! comment as its help.

use clap::{builder::PossibleValue, ValueEnum};

use crate::{
    config::choices::{
        AtlanticCairoVm, AtlanticNetwork, AtlanticQueryStep, AtlanticSharpProver, CairoLayout,
        EventBridgeType, FailedJobHalt, ProofSettlementLayer, ProverKind, SnosRunnerKind,
    },
    types::Layer,
};

/// How a variant's name is written as a flag value.
#[derive(Debug, Clone, Copy)]
enum Case {
    /// `proof-verification-on-l1`
    Kebab,
    /// `starknet_with_keccak`
    Snake,
    /// `TESTNET`
    ScreamingSnake,
}

/// `ProofVerificationOnL1` → `proof-verification-on-l1` (a word starts at each capital that
/// follows a lower-case letter or a digit).
fn flag_value(variant: &str, case: Case) -> String {
    let mut words: Vec<String> = Vec::new();
    let mut prev: Option<char> = None;
    for c in variant.chars() {
        let starts_word =
            c.is_uppercase() && prev.is_some_and(|p| p.is_lowercase() || p.is_ascii_digit());
        if starts_word || words.is_empty() {
            words.push(String::new());
        }
        words.last_mut().expect("a word").push(c);
        prev = Some(c);
    }
    let (sep, upper) = match case {
        Case::Kebab => ("-", false),
        Case::Snake => ("_", false),
        Case::ScreamingSnake => ("_", true),
    };
    let words: Vec<String> = words
        .into_iter()
        .map(|w| if upper { w.to_uppercase() } else { w.to_lowercase() })
        .collect();
    words.join(sep)
}

macro_rules! flag_values {
    ($($ty:ty => $case:expr),* $(,)?) => {$(
        impl ValueEnum for $ty {
            fn value_variants<'a>() -> &'a [Self] {
                <$ty as strum::VariantArray>::VARIANTS
            }

            fn to_possible_value(&self) -> Option<PossibleValue> {
                let value = PossibleValue::new(flag_value(&format!("{self:?}"), $case));
                Some(match strum::EnumMessage::get_documentation(self) {
                    Some(doc) => value.help(doc.trim().to_string()),
                    None => value,
                })
            }
        }
    )*};
}

flag_values! {
    Layer => Case::Kebab,
    ProverKind => Case::Kebab,
    ProofSettlementLayer => Case::Kebab,
    AtlanticNetwork => Case::ScreamingSnake,
    AtlanticCairoVm => Case::Kebab,
    AtlanticQueryStep => Case::Kebab,
    AtlanticSharpProver => Case::Kebab,
    CairoLayout => Case::Snake,
    SnosRunnerKind => Case::Kebab,
    EventBridgeType => Case::Kebab,
    FailedJobHalt => Case::Kebab,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names<T: ValueEnum>() -> Vec<String> {
        T::value_variants()
            .iter()
            .map(|v| v.to_possible_value().expect("value").get_name().to_string())
            .collect()
    }

    /// The values the reference's flags accept (and existing deployments pass).
    #[test]
    fn flag_values_keep_the_reference_names() {
        assert_eq!(names::<Layer>(), ["l2", "l3"]);
        assert_eq!(names::<ProverKind>(), ["sharp", "atlantic", "mock"]);
        assert_eq!(names::<ProofSettlementLayer>(), ["ethereum", "starknet"]);
        assert_eq!(names::<AtlanticNetwork>(), ["MAINNET", "TESTNET"]);
        assert_eq!(names::<AtlanticCairoVm>(), ["rust", "python"]);
        assert_eq!(
            names::<AtlanticQueryStep>(),
            [
                "trace-generation",
                "proof-generation",
                "proof-verification",
                "proof-verification-on-l1",
                "proof-verification-on-l2",
                "proof-generation-and-verification",
                "fact-hash-registration",
                "trace-and-metadata-generation",
            ]
        );
        assert_eq!(names::<AtlanticSharpProver>(), ["stone", "stwo"]);
        assert_eq!(
            names::<CairoLayout>(),
            [
                "plain",
                "small",
                "dex",
                "recursive",
                "starknet",
                "starknet_with_keccak",
                "recursive_large_output",
                "recursive_with_poseidon",
                "all_solidity",
                "all_cairo",
                "dynamic",
            ]
        );
        assert_eq!(names::<SnosRunnerKind>(), ["stand-in", "external"]);
        assert_eq!(names::<EventBridgeType>(), ["rule", "schedule"]);
        assert_eq!(names::<FailedJobHalt>(), ["stage", "global"]);
    }

    #[test]
    fn each_value_carries_its_doc_as_help() {
        let mock = ProverKind::Mock.to_possible_value().expect("value");
        assert!(mock.get_help().is_some_and(|h| h.to_string().contains("mock prover")));
    }

    #[test]
    fn values_parse_back_to_their_variant() {
        assert_eq!(ProverKind::from_str("ATLANTIC", true), Ok(ProverKind::Atlantic));
        assert_eq!(
            AtlanticQueryStep::from_str("proof-verification-on-l2", false),
            Ok(AtlanticQueryStep::ProofVerificationOnL2)
        );
        assert!(CairoLayout::from_str("starknet-with-keccak", false).is_err());
    }
}
