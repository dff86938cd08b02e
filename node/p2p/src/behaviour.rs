//! The composed libp2p behaviour: ban list, identify, ping, Kademlia and the two
//! request-response protocols.

use libp2p::{
    StreamProtocol, identify,
    identity::Keypair,
    kad::{self, store::MemoryStore, store::MemoryStoreConfig},
    ping,
    request_response::{self, ProtocolSupport},
    swarm::NetworkBehaviour,
};

use crate::{
    ban::BanList,
    codec::CborCodec,
    config::NetworkConfig,
    messages::{AuditRequest, AuditResponse, BlockRequest, BlockResponse},
};

/// Identify's protocol version string.
pub const IDENTIFY_PROTOCOL: &str = "/hoard/id/1.0.0";
/// Kademlia protocol name (private: hoard nodes never join the IPFS DHT).
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/hoard/kad/1.0.0");
/// Block and manifest transfer.
pub const BLOCK_PROTOCOL: StreamProtocol = StreamProtocol::new("/hoard/block/1");
/// Storage audits.
pub const AUDIT_PROTOCOL: StreamProtocol = StreamProtocol::new("/hoard/audit/1");

/// Largest encoded block request (a few dozen bytes in practice).
pub const BLOCK_REQUEST_MAX: u64 = 1024;
/// Largest encoded block response: a 64 MiB manifest plus CBOR framing, or 16 blocks.
pub const BLOCK_RESPONSE_MAX: u64 = 65 * 1024 * 1024;
/// Largest encoded audit request.
pub const AUDIT_REQUEST_MAX: u64 = 1024;
/// Largest encoded audit response (a proof of a few hundred samples is tens of KiB).
pub const AUDIT_RESPONSE_MAX: u64 = 2 * 1024 * 1024;

/// Concurrent inbound + outbound streams per connection, per request-response protocol.
const MAX_CONCURRENT_STREAMS: usize = 256;
/// Provider keys this node may announce (one per dataset it stores). libp2p's default is 1,024.
const MAX_PROVIDED_KEYS: usize = 16 * 1024;

pub(crate) type Rr<Req, Resp> = request_response::Behaviour<CborCodec<Req, Resp>>;
pub(crate) type BlockBehaviour = Rr<BlockRequest, BlockResponse>;
pub(crate) type AuditBehaviour = Rr<AuditRequest, AuditResponse>;

/// Everything the swarm runs. The ban list comes first so a banned peer's connection is refused
/// before any other behaviour builds a handler for it.
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) ban: BanList,
    pub(crate) identify: identify::Behaviour,
    pub(crate) ping: ping::Behaviour,
    pub(crate) kad: kad::Behaviour<MemoryStore>,
    pub(crate) block: BlockBehaviour,
    pub(crate) audit: AuditBehaviour,
}

impl std::fmt::Debug for Behaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Behaviour").finish_non_exhaustive()
    }
}

impl Behaviour {
    pub(crate) fn new(key: &Keypair, config: &NetworkConfig) -> Self {
        let peer_id = key.public().to_peer_id();

        let identify = identify::Behaviour::new(
            identify::Config::new(IDENTIFY_PROTOCOL.to_owned(), key.public())
                .with_agent_version(format!("hoard/{}", env!("CARGO_PKG_VERSION")))
                .with_push_listen_addr_updates(true),
        );

        let mut kad_config = kad::Config::new(KAD_PROTOCOL);
        kad_config.set_query_timeout(config.request_timeout);
        let store = MemoryStore::with_config(
            peer_id,
            MemoryStoreConfig {
                max_provided_keys: MAX_PROVIDED_KEYS,
                ..Default::default()
            },
        );
        let mut kad = kad::Behaviour::with_config(peer_id, store, kad_config);
        // Server mode unconditionally: auto mode waits for a confirmed external address, which
        // never comes on loopback or on a LAN without AutoNAT.
        kad.set_mode(Some(kad::Mode::Server));

        let rr_config = request_response::Config::default()
            .with_request_timeout(config.request_timeout)
            .with_max_concurrent_streams(MAX_CONCURRENT_STREAMS);
        let block = BlockBehaviour::with_codec(
            CborCodec::new(BLOCK_REQUEST_MAX, BLOCK_RESPONSE_MAX),
            [(BLOCK_PROTOCOL, ProtocolSupport::Full)],
            rr_config.clone(),
        );
        let audit = AuditBehaviour::with_codec(
            CborCodec::new(AUDIT_REQUEST_MAX, AUDIT_RESPONSE_MAX),
            [(AUDIT_PROTOCOL, ProtocolSupport::Full)],
            rr_config,
        );

        Self {
            ban: BanList::default(),
            identify,
            ping: ping::Behaviour::default(),
            kad,
            block,
            audit,
        }
    }
}
