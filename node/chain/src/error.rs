//! [`ChainError`]: everything that can go wrong talking to the chain, worded for the person who
//! has to fix it, and split into "retry later" ([`ChainError::is_transient`]) and "will fail again".

use alloy::{
    contract::Error as ContractError,
    primitives::{Address, B256},
    sol_types::{SolInterface, decode_revert_reason},
    transports::{RpcError, TransportError, TransportErrorKind},
};
use url::Url;

use crate::bindings::{HoardTestToken::HoardTestTokenErrors, Marketplace::MarketplaceErrors};

/// Errors of the chain client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// The RPC endpoint could not be reached or answered at the transport level (connection
    /// refused, timeout, HTTP 5xx). Transient.
    #[error("cannot reach the chain at {url}: {source} — is anvil running? check --rpc-url")]
    Rpc {
        /// The endpoint.
        url: Url,
        /// What the transport said.
        source: Box<TransportError>,
    },

    /// The node answered with a JSON-RPC error that is neither a revert nor a known condition.
    #[error("the node rejected {method}: {message} (code {code})")]
    Node {
        /// What we asked for (contract method or RPC method).
        method: String,
        /// JSON-RPC error code.
        code: i64,
        /// The node's message.
        message: String,
        /// Whether the node asked us to come back later (rate limits, "header not found").
        retryable: bool,
        /// What the node meant, as far as hoard needs to know.
        kind: NodeRejection,
    },

    /// The RPC endpoint serves another chain than the deployment file describes.
    #[error(
        "the node serves chain {got} but the deployment file is for chain {expected} — \
         check --rpc-url or the deployment file"
    )]
    WrongChain {
        /// Chain id of the deployment file.
        expected: u64,
        /// Chain id the node reports.
        got: u64,
    },

    /// No contract code at an address the deployment file names.
    #[error("no contract at {address} ({what}) — deploy first or fix the deployment file")]
    NoContract {
        /// The address.
        address: Address,
        /// Which contract was expected there.
        what: &'static str,
    },

    /// The contract's configuration differs from the deployment file's.
    #[error("the deployment file does not match the contract: {0} — use the file deploy wrote")]
    ConfigMismatch(String),

    /// The call would revert (found by simulating it before sending, or by a view).
    #[error("{method} reverted: {reason}")]
    Revert {
        /// Contract method.
        method: String,
        /// Why, decoded: a Marketplace or token custom error with its arguments, a revert
        /// string, or the raw selector. Match on it with [`ChainError::marketplace`].
        reason: RevertReason,
    },

    /// The transaction was sent but no receipt came within the receipt timeout (after
    /// re-broadcasting it). It may still be mined later.
    #[error(
        "{method} transaction {hash} was not mined in time — the chain may be congested or \
         stalled; it may still be mined"
    )]
    ReceiptTimeout {
        /// Contract method.
        method: String,
        /// Transaction hash.
        hash: B256,
    },

    /// The transaction was mined but reverted (status 0): the state changed between the
    /// simulation and the block.
    #[error("{method} transaction {hash} was mined but reverted")]
    Reverted {
        /// Contract method.
        method: String,
        /// Transaction hash.
        hash: B256,
    },

    /// A transaction was asked for but no signing key was configured.
    #[error("sending transactions needs a key — configure the node's private key")]
    NoSigner,

    /// The account cannot pay for gas (or value) of the transaction.
    #[error("{account} cannot pay for {method}: {message} — fund the account with ETH")]
    InsufficientFunds {
        /// The sending account.
        account: Address,
        /// Contract method.
        method: String,
        /// The node's message.
        message: String,
    },

    /// A file (deployment file) could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What we tried ("read the deployment file").
        action: &'static str,
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },

    /// Anything else (malformed answers, bugs, missing tools), with a description.
    #[error("{0}")]
    Other(String),
}

impl ChainError {
    /// Whether trying the same thing again later may succeed: connection problems, timeouts,
    /// rate limits and transactions not yet mined. Reverts, wrong configuration and missing funds
    /// are not transient.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Rpc { source, .. } => transport_is_transient(source),
            Self::Node { retryable, .. } => *retryable,
            Self::ReceiptTimeout { .. } => true,
            Self::WrongChain { .. }
            | Self::NoContract { .. }
            | Self::ConfigMismatch(_)
            | Self::Revert { .. }
            | Self::Reverted { .. }
            | Self::NoSigner
            | Self::InsufficientFunds { .. }
            | Self::Io { .. }
            | Self::Other(_) => false,
        }
    }

    /// The decoded revert if this is a [`ChainError::Revert`].
    pub fn revert_reason(&self) -> Option<&RevertReason> {
        match self {
            Self::Revert { reason, .. } => Some(reason),
            _ => None,
        }
    }

    /// The Marketplace's custom error, if this is a revert with one: callers decide by variant,
    /// `matches!(e.marketplace(), Some(MarketplaceErrors::FuturePeriod(_)))`, never by message.
    pub fn marketplace(&self) -> Option<&MarketplaceErrors> {
        match self.revert_reason() {
            Some(RevertReason::Marketplace(e)) => Some(&**e),
            _ => None,
        }
    }

    /// Classifies an error of a raw provider call made for `method` against `url`.
    pub(crate) fn from_transport(url: &Url, method: &str, err: TransportError) -> Self {
        let (code, message, retryable) = match &err {
            RpcError::ErrorResp(payload) => {
                if let Some(data) = payload.as_revert_data() {
                    return Self::Revert {
                        method: method.to_owned(),
                        reason: RevertReason::decode(&data),
                    };
                }
                (
                    payload.code,
                    payload.message.to_string(),
                    payload.is_retry_err(),
                )
            }
            RpcError::Transport(_) => {
                return Self::Rpc {
                    url: url.clone(),
                    source: Box::new(err),
                };
            }
            RpcError::NullResp => (0, "the node returned null".to_owned(), false),
            RpcError::UnsupportedFeature(feature) => {
                (0, format!("unsupported feature: {feature}"), false)
            }
            RpcError::LocalUsageError(e) => {
                return Self::Other(format!("{method}: {e}"));
            }
            RpcError::SerError(e) => return Self::Other(format!("{method}: cannot encode: {e}")),
            RpcError::DeserError { err: e, text } => {
                let text: String = text.chars().take(200).collect();
                return Self::Other(format!(
                    "{method}: cannot decode the node's answer ({e}): {text}"
                ));
            }
        };
        let kind = NodeRejection::of(&message);
        if kind == NodeRejection::Reverted {
            // A revert without data (`require(false)`, invalid opcode, out of gas in a call).
            return Self::Revert {
                method: method.to_owned(),
                reason: RevertReason::Message(message),
            };
        }
        Self::Node {
            method: method.to_owned(),
            kind,
            code,
            message,
            retryable,
        }
    }

    /// Classifies an error of a contract call (view or simulation) of `method`.
    pub(crate) fn from_contract(url: &Url, method: &str, err: ContractError) -> Self {
        match err {
            ContractError::TransportError(e) => Self::from_transport(url, method, e),
            ContractError::ZeroData(function, e) => Self::Other(format!(
                "{function} returned no data ({e}) — is the deployment file's address a contract?"
            )),
            other => Self::Other(format!("{method}: {other}")),
        }
    }
}

/// What an Ethereum node's JSON-RPC error means for a transaction. Nodes (geth, reth, anvil)
/// answer these with the generic code -32000 and a text only, so this is the one place that
/// reads the text; everything else matches on the variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeRejection {
    /// The call or transaction reverted but the node gave no revert data.
    Reverted,
    /// The node already has this transaction (sent again after a lost answer).
    AlreadyKnown,
    /// Another transaction holds the nonce (perhaps an earlier attempt of ours).
    NonceTaken,
    /// The account cannot pay for gas or value.
    InsufficientFunds,
    /// Anything else.
    Other,
}

impl NodeRejection {
    /// Classifies a node's error message (the spellings of geth, reth, erigon and anvil).
    pub fn of(message: &str) -> Self {
        let m = message.to_ascii_lowercase();
        let any = |words: &[&str]| words.iter().any(|w| m.contains(w));
        if any(&["execution reverted"]) || m.starts_with("revert") {
            Self::Reverted
        } else if any(&["already known", "already imported", "known transaction"]) {
            Self::AlreadyKnown
        } else if any(&[
            "nonce too low",
            "nonce has already been used",
            "replacement transaction underpriced",
            "already exists",
        ]) {
            Self::NonceTaken
        } else if any(&["insufficient funds", "insufficient balance for transfer"]) {
            Self::InsufficientFunds
        } else {
            Self::Other
        }
    }
}

/// Connection problems and server-side trouble are worth retrying; a 4xx other than 429 means the
/// URL or request is wrong.
fn transport_is_transient(err: &TransportError) -> bool {
    match err {
        RpcError::Transport(kind) => match kind {
            TransportErrorKind::HttpError(http) => http.status == 429 || http.status >= 500,
            TransportErrorKind::HttpErrorWithRetryAfter { .. } => true,
            kind => !kind.is_non_retryable(),
        },
        RpcError::ErrorResp(payload) => payload.is_retry_err(),
        _ => false,
    }
}

/// Why a call reverted, decoded from its revert data.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevertReason {
    /// A Marketplace custom error, with its arguments (boxed: some carry several words).
    Marketplace(Box<MarketplaceErrors>),
    /// A test token (OpenZeppelin ERC-20) custom error.
    Token(Box<HoardTestTokenErrors>),
    /// A revert string (`Error(string)`), a panic code, or the node's message for a revert
    /// without data (`require(false)`, out of gas inside a call).
    Message(String),
    /// A custom error of no contract hoard knows: its selector and argument bytes.
    Unknown {
        /// The first four bytes of the revert data.
        selector: [u8; 4],
        /// Bytes of arguments after the selector.
        args: usize,
    },
    /// Revert data shorter than a selector.
    Malformed(Vec<u8>),
}

impl RevertReason {
    /// Decodes revert data against the Marketplace's and the token's custom errors, then the
    /// standard `Error(string)` / `Panic(uint256)`, and falls back to the raw selector.
    pub fn decode(data: &[u8]) -> Self {
        if let Ok(e) = MarketplaceErrors::abi_decode(data) {
            return Self::Marketplace(Box::new(e));
        }
        if let Ok(e) = HoardTestTokenErrors::abi_decode(data) {
            return Self::Token(Box::new(e));
        }
        if data.is_empty() {
            return Self::Message("execution reverted without a reason".to_owned());
        }
        if let Some(reason) = decode_revert_reason(data) {
            return Self::Message(reason);
        }
        match <[u8; 4]>::try_from(data.get(..4).unwrap_or_default()) {
            Ok(selector) => Self::Unknown {
                selector,
                args: data.len() - 4,
            },
            Err(_) => Self::Malformed(data.to_vec()),
        }
    }
}

/// Prints the custom error's name with its arguments (`ZeroPrice`,
/// `TooManySlots { slots: 300, max: 256 }`), the revert string, or the selector.
impl std::fmt::Display for RevertReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Marketplace(e) => f.write_str(&without_variant(format!("{e:?}"))),
            Self::Token(e) => f.write_str(&without_variant(format!("{e:?}"))),
            Self::Message(m) => f.write_str(m),
            Self::Unknown { selector, args } => write!(
                f,
                "unknown custom error 0x{} ({args} bytes of arguments)",
                alloy::hex::encode(selector)
            ),
            Self::Malformed(data) => {
                write!(f, "malformed revert data 0x{}", alloy::hex::encode(data))
            }
        }
    }
}

/// The generated error enums print as `Name(Name { field: value })` (the variant is named after
/// the error type); keep the inner `Name { field: value }` (or just `Name` for errors without
/// arguments). Display only: code matches on the variants.
fn without_variant(debug: String) -> String {
    match debug.split_once('(') {
        Some((variant, rest)) if rest.starts_with(variant) && rest.ends_with(')') => {
            rest[..rest.len() - 1].to_owned()
        }
        _ => debug,
    }
}

#[cfg(test)]
mod tests {
    use alloy::{primitives::U256, sol_types::SolError};

    use super::*;
    use crate::bindings::{HoardTestToken, Marketplace};

    #[test]
    fn decodes_marketplace_errors_by_name_with_arguments() {
        let data = Marketplace::ZeroPrice {}.abi_encode();
        let reason = RevertReason::decode(&data);
        assert!(
            matches!(&reason, RevertReason::Marketplace(e) if matches!(**e, MarketplaceErrors::ZeroPrice(_)))
        );
        assert_eq!(reason.to_string(), "ZeroPrice");
        let data = Marketplace::TooManySlots {
            slots: U256::from(300),
            max: U256::from(256),
        }
        .abi_encode();
        assert_eq!(
            RevertReason::decode(&data).to_string(),
            "TooManySlots { slots: 300, max: 256 }"
        );
    }

    #[test]
    fn decodes_token_errors() {
        let data = HoardTestToken::ERC20InsufficientAllowance {
            spender: Address::ZERO,
            allowance: U256::from(1),
            needed: U256::from(2),
        }
        .abi_encode();
        let reason = RevertReason::decode(&data);
        assert!(matches!(reason, RevertReason::Token(_)), "{reason:?}");
        let text = reason.to_string();
        assert!(text.starts_with("ERC20InsufficientAllowance {"), "{text}");
        assert!(text.contains("needed: 2"), "{text}");
    }

    #[test]
    fn falls_back_to_revert_strings_and_selectors() {
        let data = alloy::sol_types::Revert::from("plain reason").abi_encode();
        let text = |d: &[u8]| RevertReason::decode(d).to_string();
        assert_eq!(text(&data), "revert: plain reason");
        assert_eq!(
            text(&[0xde, 0xad, 0xbe, 0xef, 0, 0]),
            "unknown custom error 0xdeadbeef (2 bytes of arguments)"
        );
        assert_eq!(text(&[]), "execution reverted without a reason");
        assert_eq!(text(&[0xff, 0xfe]), "malformed revert data 0xfffe");
    }

    #[test]
    fn node_messages_are_classified_in_one_place() {
        for (message, kind) in [
            ("execution reverted", NodeRejection::Reverted),
            ("Reverted: out of gas", NodeRejection::Reverted),
            ("already known", NodeRejection::AlreadyKnown),
            (
                "nonce too low: next nonce 5, tx nonce 4",
                NodeRejection::NonceTaken,
            ),
            (
                "replacement transaction underpriced",
                NodeRejection::NonceTaken,
            ),
            (
                "insufficient funds for gas * price + value",
                NodeRejection::InsufficientFunds,
            ),
            ("header not found", NodeRejection::Other),
        ] {
            assert_eq!(NodeRejection::of(message), kind, "{message}");
        }
    }

    #[test]
    fn transient_classification() {
        let url: Url = "http://127.0.0.1:1".parse().expect("static url");
        let down = ChainError::Rpc {
            url: url.clone(),
            source: Box::new(TransportErrorKind::backend_gone()),
        };
        assert!(down.is_transient());
        let not_found = ChainError::Rpc {
            url: url.clone(),
            source: Box::new(TransportErrorKind::http_error(404, "no such path".into())),
        };
        assert!(!not_found.is_transient());
        let revert = ChainError::Revert {
            method: "requestStorage".into(),
            reason: RevertReason::decode(&Marketplace::ZeroPrice {}.abi_encode()),
        };
        assert!(!revert.is_transient());
        assert!(matches!(
            revert.marketplace(),
            Some(MarketplaceErrors::ZeroPrice(_))
        ));
        assert_eq!(revert.to_string(), "requestStorage reverted: ZeroPrice");
        assert!(
            down.to_string()
                .contains("is anvil running? check --rpc-url")
        );
    }
}
