//! The request-response codec: CBOR (cbor4ii + serde), one message per stream, read to the end
//! of the stream under a size cap.
//!
//! The bytes on the wire are exactly those of libp2p's `request_response::cbor` codec (a test
//! below checks both directions). It is reimplemented for two reasons:
//! - libp2p's version reads through `futures`' `read_to_end`, which zero-fills its buffer one
//!   byte at a time through an iterator chain. Being generic, that code is compiled at our crate's
//!   optimisation level: in debug builds a 20 MiB manifest took about 5 s of CPU.
//! - Past its cap libp2p's codec stops reading and fails to decode with an "unexpected EOF";
//!   this one names the limit ([`TooLarge`]).
//! - Blocks are decoded without a copy: a block's bytes are a slice of the receive buffer
//!   ([`shared_bytes`]), and the buffer goes back to the pool when its last block is dropped.

use std::{
    fmt, io,
    marker::PhantomData,
    sync::{Arc, Mutex, Weak},
};

use bytes::Bytes;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::{StreamProtocol, request_response};
use serde::{Serialize, de::DeserializeOwned};

/// Bytes read from the stream per call, at least.
const READ_CHUNK: usize = 64 * 1024;
/// Room reserved for a message before reading it: a full block answer (16 blocks of 64 KiB and
/// their paths, CBOR-framed) fits without growing.
const EXPECTED: usize = (1 << 20) + (64 << 10);
/// Receive buffers kept for the next messages, at most (each about [`EXPECTED`] bytes). A
/// buffer is out while blocks decoded from it wait to be written, so a reader has a few dozen out.
const KEPT_BUFFERS: usize = 32;

/// Receive buffers for reuse, shared by a codec's clones (libp2p clones the codec per stream).
/// A buffer comes back initialised to its whole length: the next message is read into it
/// without zeroing it again or faulting in fresh pages (on a reader these were 4 % of its CPU).
/// Only the bytes a message filled are ever decoded, so what an earlier message left behind is
/// never read.
#[derive(Default)]
struct Buffers(Mutex<Vec<Vec<u8>>>);

impl Buffers {
    fn take(&self) -> Option<Vec<u8>> {
        self.0.lock().ok()?.pop()
    }

    fn give(&self, buf: Vec<u8>) {
        // Only buffers of the usual size are kept (not a 64 MiB manifest's).
        if buf.capacity() > 2 * EXPECTED {
            return;
        }
        if let Ok(mut kept) = self.0.lock()
            && kept.len() < KEPT_BUFFERS
        {
            kept.push(buf);
        }
    }
}

/// A receive buffer lent to the blocks decoded from it (as the owner of a [`Bytes`]): back to
/// its pool when the last of them is dropped.
struct Lent {
    buf: Vec<u8>,
    filled: usize,
    pool: Weak<Buffers>,
}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.filled]
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.upgrade() {
            pool.give(std::mem::take(&mut self.buf));
        }
    }
}

/// A message was larger than the protocol allows; carried inside an [`io::Error`].
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("{what} is larger than the {max}-byte limit")]
pub struct TooLarge {
    /// "request" or "response".
    pub what: &'static str,
    /// The limit in bytes.
    pub max: u64,
}

/// CBOR codec with explicit request and response size limits.
pub(crate) struct CborCodec<Req, Resp> {
    request_max: u64,
    response_max: u64,
    buffers: Arc<Buffers>,
    phantom: PhantomData<fn() -> (Req, Resp)>,
}

impl<Req, Resp> CborCodec<Req, Resp> {
    pub(crate) fn new(request_max: u64, response_max: u64) -> Self {
        Self {
            request_max,
            response_max,
            buffers: Arc::default(),
            phantom: PhantomData,
        }
    }

    /// Reads one message and decodes it, then keeps the buffer for the next.
    async fn read<T, M>(&self, io: &mut T, max: u64, what: &'static str) -> io::Result<M>
    where
        T: AsyncRead + Unpin + Send,
        M: DeserializeOwned,
    {
        let buf = self.buffers.take().unwrap_or_default();
        let (buf, filled) = read_capped(io, buf, max, what).await?;
        let message = Bytes::from_owner(Lent {
            buf,
            filled,
            pool: Arc::downgrade(&self.buffers),
        });
        decode(&message)
    }
}

impl<Req, Resp> Clone for CborCodec<Req, Resp> {
    fn clone(&self) -> Self {
        Self {
            request_max: self.request_max,
            response_max: self.response_max,
            buffers: Arc::clone(&self.buffers),
            phantom: PhantomData,
        }
    }
}

impl<Req, Resp> fmt::Debug for CborCodec<Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CborCodec")
            .field("request_max", &self.request_max)
            .field("response_max", &self.response_max)
            .finish()
    }
}

impl<Req, Resp> request_response::Codec for CborCodec<Req, Resp>
where
    Req: Send + Serialize + DeserializeOwned,
    Resp: Send + Serialize + DeserializeOwned,
{
    type Protocol = StreamProtocol;
    type Request = Req;
    type Response = Resp;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Req>
    where
        T: AsyncRead + Unpin + Send,
    {
        self.read(io, self.request_max, "request").await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Resp>
    where
        T: AsyncRead + Unpin + Send,
    {
        self.read(io, self.response_max, "response").await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Req,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        // The request-response handler closes the stream after this returns.
        io.write_all(&encode(&request, self.request_max, "request")?)
            .await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Resp,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let bytes = encode(&response, self.response_max, "response")?;
        // The blocks are in `bytes` now: free the answer before the write, which lasts as long
        // as the peer takes to read, so that an answer in transit holds one copy of its blocks,
        // not two (a renter serving six hosts peaked 60 MiB higher with both).
        drop(response);
        io.write_all(&bytes).await
    }
}

/// Reads to the end of the stream into `message` (an empty or a reused buffer); returns it and
/// how many bytes arrived (`message[..filled]`). Fails with [`TooLarge`] as soon as more than
/// `max` bytes arrive.
async fn read_capped<T>(
    io: &mut T,
    mut message: Vec<u8>,
    max: u64,
    what: &'static str,
) -> io::Result<(Vec<u8>, usize)>
where
    T: AsyncRead + Unpin + Send,
{
    // Read straight into the message (no chunk copy), with room for a full answer of 16
    // blocks reserved up front (no copies as it grows): on a reader this is one of the few
    // copies of every byte downloaded. Past `filled` the buffer is initialised room (zeroed
    // once, or left from an earlier message).
    let cap = usize::try_from(max).unwrap_or(usize::MAX).saturating_add(1);
    message.reserve(cap.min(EXPECTED).saturating_sub(message.len()));
    let mut filled = 0;
    loop {
        if filled == message.len() {
            let grow = READ_CHUNK.max(filled).min(cap - filled).max(1);
            message.resize(filled + grow, 0);
        }
        let end = message.len().min(cap);
        let n = io.read(&mut message[filled..end]).await?;
        if n == 0 {
            return Ok((message, filled));
        }
        filled += n;
        if filled as u64 > max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                TooLarge { what, max },
            ));
        }
    }
}

/// Decodes one message; its [`shared_bytes`] fields are slices of `bytes`.
fn decode<M: DeserializeOwned>(bytes: &Bytes) -> io::Result<M> {
    if bytes.is_empty() {
        // What a peer that refused to send (e.g. an answer over its limit) leaves behind.
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the peer closed the stream without a message",
        ));
    }
    shared_bytes::from(bytes, || cbor4ii::serde::from_slice(bytes)).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("undecodable CBOR message: {e}"),
        )
    })
}

/// Serde for a [`Bytes`] field (`#[serde(with = "crate::codec::shared_bytes")]`): a CBOR byte
/// string, as `serde_bytes` writes it. Decoded inside [`decode`], the field is a slice of the
/// receive buffer instead of a copy (on a reader that copy was 4 % of its CPU, and each block a
/// fresh allocation).
///
/// Written by hand because serde gives a field's deserializer no way to reach the buffer it
/// borrows from: [`from`] names it in a thread-local for the length of one decode, and a byte
/// string borrowed from inside it becomes [`Bytes::slice_ref`]; anything else is copied.
pub(crate) mod shared_bytes {
    use std::cell::RefCell;

    use bytes::Bytes;
    use serde::{Deserializer, Serializer, de};

    thread_local! {
        /// The buffer the decode running on this thread reads from.
        static SOURCE: RefCell<Option<Bytes>> = const { RefCell::new(None) };
    }

    /// Runs `decode` (which reads from `source`) with `source` as the buffer to borrow from.
    pub(super) fn from<R>(source: &Bytes, decode: impl FnOnce() -> R) -> R {
        /// Puts the outer decode's buffer back, also if `decode` unwinds.
        struct Restore(Option<Bytes>);
        impl Drop for Restore {
            fn drop(&mut self) {
                SOURCE.set(self.0.take());
            }
        }
        let _restore = Restore(SOURCE.replace(Some(source.clone())));
        decode()
    }

    pub(crate) fn serialize<S: Serializer>(data: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(data)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        d.deserialize_bytes(Visitor)
    }

    struct Visitor;

    impl<'de> de::Visitor<'de> for Visitor {
        type Value = Bytes;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a byte string")
        }

        fn visit_borrowed_bytes<E>(self, v: &'de [u8]) -> Result<Bytes, E> {
            let inside = |source: &[u8]| {
                let (outer, inner) = (source.as_ptr_range(), v.as_ptr_range());
                outer.start <= inner.start && inner.end <= outer.end
            };
            Ok(SOURCE.with_borrow(|source| match source {
                Some(source) if inside(source) => source.slice_ref(v),
                _ => Bytes::copy_from_slice(v),
            }))
        }

        fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
            Ok(Bytes::copy_from_slice(v))
        }

        fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Bytes, E> {
            Ok(Bytes::from(v))
        }
    }
}

/// Encodes one message, refusing what the peer would refuse to read.
fn encode<M: Serialize>(message: &M, max: u64, what: &'static str) -> io::Result<Vec<u8>> {
    let bytes = cbor4ii::serde::to_vec(Vec::with_capacity((max as usize).min(EXPECTED)), message)
        .map_err(io::Error::other)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            TooLarge { what, max },
        ));
    }
    Ok(bytes)
}

/// The [`TooLarge`] inside an I/O error, if that is what it is.
pub(crate) fn too_large(error: &io::Error) -> Option<TooLarge> {
    error.get_ref()?.downcast_ref::<TooLarge>().copied()
}

#[cfg(test)]
mod tests {
    use futures::io::Cursor;
    use libp2p::request_response::{Codec, cbor};

    use super::*;
    use crate::messages::{BlockRequest, BlockResponse, BlockWithPath};

    type Ours = CborCodec<BlockRequest, BlockResponse>;
    type Theirs = cbor::codec::Codec<BlockRequest, BlockResponse>;
    const PROTOCOL: StreamProtocol = StreamProtocol::new("/test/1");

    fn response() -> BlockResponse {
        BlockResponse::Blocks(vec![BlockWithPath {
            index: 3,
            data: Bytes::from(vec![9u8; 1000]),
            path: vec![[1; 32], [2; 32]],
        }])
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        futures::executor::block_on(f)
    }

    /// An answer of `count` full blocks, block `i` filled with byte `i`.
    fn blocks(count: u64) -> BlockResponse {
        BlockResponse::Blocks(
            (0..count)
                .map(|index| BlockWithPath {
                    index,
                    data: Bytes::from(vec![index as u8; 64 << 10]),
                    path: vec![[index as u8; 32]],
                })
                .collect(),
        )
    }

    /// `request` written by `writer` and read back by `reader`.
    fn request_through(
        writer: &mut impl Codec<Protocol = StreamProtocol, Request = BlockRequest>,
        reader: &mut impl Codec<Protocol = StreamProtocol, Request = BlockRequest>,
        request: &BlockRequest,
    ) -> io::Result<BlockRequest> {
        let mut written = Cursor::new(Vec::new());
        block_on(writer.write_request(&PROTOCOL, &mut written, request.clone()))?;
        let mut read = Cursor::new(written.into_inner());
        block_on(reader.read_request(&PROTOCOL, &mut read))
    }

    #[test]
    fn same_bytes_as_libp2p_cbor_both_ways() {
        let mut ours = Ours::new(1024, 1 << 20);
        let mut theirs = Theirs::default();

        let mut written_by_us = Cursor::new(Vec::new());
        block_on(ours.write_response(&PROTOCOL, &mut written_by_us, response())).expect("write");
        let mut written_by_them = Cursor::new(Vec::new());
        block_on(theirs.write_response(&PROTOCOL, &mut written_by_them, response()))
            .expect("write");
        assert_eq!(written_by_us.get_ref(), written_by_them.get_ref());

        let mut read = Cursor::new(written_by_us.into_inner());
        let decoded = block_on(theirs.read_response(&PROTOCOL, &mut read)).expect("read");
        assert_eq!(decoded, response());
        let mut read = Cursor::new(written_by_them.into_inner());
        let decoded = block_on(ours.read_response(&PROTOCOL, &mut read)).expect("read");
        assert_eq!(decoded, response());

        let request = BlockRequest::Blocks {
            dataset: hoard_prover::DatasetId([5; 32]),
            slot: hoard_prover::SlotIndex(1),
            first: 2,
            count: 3,
        };
        assert_eq!(
            request_through(&mut ours, &mut theirs, &request).expect("through"),
            request
        );
    }

    #[test]
    fn oversized_messages_name_the_limit() {
        let mut big = Ours::new(1024, 1 << 20);
        let mut encoded = Cursor::new(Vec::new());
        block_on(big.write_response(&PROTOCOL, &mut encoded, response())).expect("write");

        let mut small = Ours::new(1024, 500);
        let mut read = Cursor::new(encoded.into_inner());
        let error = block_on(small.read_response(&PROTOCOL, &mut read)).expect_err("too large");
        let limit = too_large(&error).expect("a TooLarge error");
        assert_eq!((limit.what, limit.max), ("response", 500));

        let mut sink = Cursor::new(Vec::new());
        let error = block_on(small.write_response(&PROTOCOL, &mut sink, response()))
            .expect_err("refused before sending");
        assert!(too_large(&error).is_some());
        assert!(sink.get_ref().is_empty());
    }

    /// Hands out at most `step` bytes per read, as a network stream does.
    struct Trickle {
        bytes: Vec<u8>,
        at: usize,
        step: usize,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut [u8],
        ) -> std::task::Poll<io::Result<usize>> {
            let n = buf.len().min(self.step).min(self.bytes.len() - self.at);
            let at = self.at;
            buf[..n].copy_from_slice(&self.bytes[at..at + n]);
            self.at += n;
            std::task::Poll::Ready(Ok(n))
        }
    }

    #[test]
    fn messages_larger_than_the_reserved_room_arrive_whole_in_any_pieces() {
        let big = blocks(40);
        let mut codec = Ours::new(1024, 8 << 20);
        let mut encoded = Cursor::new(Vec::new());
        block_on(codec.write_response(&PROTOCOL, &mut encoded, big.clone())).expect("write");
        let bytes = encoded.into_inner();
        assert!(bytes.len() > EXPECTED);
        for step in [1000, READ_CHUNK - 1, READ_CHUNK, 3 * READ_CHUNK + 7] {
            let mut read = Trickle {
                bytes: bytes.clone(),
                at: 0,
                step,
            };
            let decoded = block_on(codec.read_response(&PROTOCOL, &mut read)).expect("read");
            assert_eq!(decoded, big, "step {step}");
        }
        // Exactly at the limit is fine; one byte over is not.
        let mut exact = Ours::new(1024, bytes.len() as u64);
        let mut read = Cursor::new(bytes.clone());
        assert!(block_on(exact.read_response(&PROTOCOL, &mut read)).is_ok());
        let mut under = Ours::new(1024, bytes.len() as u64 - 1);
        let mut read = Cursor::new(bytes);
        let error = block_on(under.read_response(&PROTOCOL, &mut read)).expect_err("too large");
        assert!(too_large(&error).is_some());
    }

    #[test]
    fn a_reused_buffer_gives_only_the_new_message() {
        // One codec and its clone share their buffers: a long answer, then a short one read
        // into the long one's buffer, then a request (with a far smaller limit) into it.
        let mut codec = Ours::new(1024, 8 << 20);
        let mut other = codec.clone();
        for (reader, message) in [(&mut codec, blocks(20)), (&mut other, response())] {
            let mut encoded = Cursor::new(Vec::new());
            block_on(reader.write_response(&PROTOCOL, &mut encoded, message.clone()))
                .expect("write");
            let mut read = Cursor::new(encoded.into_inner());
            let decoded = block_on(reader.read_response(&PROTOCOL, &mut read)).expect("read");
            assert_eq!(decoded, message);
        }
        assert_eq!(
            codec.buffers.0.lock().expect("lock").len(),
            1,
            "one buffer, reused"
        );
        let request = BlockRequest::Have {
            dataset: hoard_prover::DatasetId([1; 32]),
        };
        let mut same = codec.clone();
        assert_eq!(
            request_through(&mut same, &mut codec, &request).expect("through"),
            request
        );
        // Over the request limit is still refused with a reused (larger) buffer.
        let mut read = Cursor::new(vec![0x40; 2000]);
        let error = block_on(codec.read_request(&PROTOCOL, &mut read)).expect_err("too large");
        assert_eq!(too_large(&error).map(|t| t.max), Some(1024));
    }

    #[test]
    fn blocks_are_slices_of_the_receive_buffer_which_goes_back_when_they_drop() {
        let mut codec = Ours::new(1024, 8 << 20);
        let mut encoded = Cursor::new(Vec::new());
        block_on(codec.write_response(&PROTOCOL, &mut encoded, blocks(4))).expect("write");
        let len = encoded.get_ref().len();
        let mut read = Cursor::new(encoded.into_inner());
        let decoded = block_on(codec.read_response(&PROTOCOL, &mut read)).expect("read");
        assert_eq!(decoded, blocks(4));
        let BlockResponse::Blocks(got) = &decoded else {
            panic!("blocks")
        };
        // Every block lies inside one message-sized span: the receive buffer, not copies.
        let first = got[0].data.as_ptr() as usize;
        let last = got[3].data.as_ptr_range().end as usize;
        assert!(
            last - first < len,
            "blocks {first:#x}..{last:#x} in a {len}-byte message"
        );
        let pooled = || codec.buffers.0.lock().expect("lock").len();
        assert_eq!(pooled(), 0, "lent to the blocks");
        let one = got[2].clone();
        drop(decoded);
        assert_eq!(pooled(), 0, "still lent to one block");
        assert_eq!(one.data[..], [2u8; 64 << 10][..]);
        drop(one);
        assert_eq!(pooled(), 1, "back in the pool");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut codec = Ours::new(1024, 1024);
        for garbage in [
            &[][..],
            &[0xff; 10][..],
            &[0x9f, 0x9f, 0x9f][..],
            &[0x5b; 9][..],
        ] {
            let mut read = Cursor::new(garbage.to_vec());
            assert!(block_on(codec.read_response(&PROTOCOL, &mut read)).is_err());
        }
    }
}
