//! Batched UDP receive and send for the DNS64 listener: `recvmmsg(2)` and
//! `sendmmsg(2)` (Linux).
//!
//! Why unsafe: tokio and socket2 offer one datagram per system call, and on
//! a busy resolver the per-call cost of the kernel's UDP path is most of the
//! time spent answering from the cache. These two calls move up to
//! [`BATCH`] datagrams each; `libc` is the only way to reach them. The
//! unsafe code is limited to filling the `mmsghdr` arrays (pointers into
//! buffers owned here, alive for the call) and reading the socket
//! addresses the kernel wrote (their family checked first).
//!
//! Both calls are made with `MSG_DONTWAIT` from inside tokio's `try_io`, so
//! readiness is tracked by tokio as for its own calls.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;
use std::ptr::null_mut;

/// Datagrams per system call.
pub(crate) const BATCH: usize = 32;
/// Receive buffer per datagram: the largest UDP payload, so that nothing
/// is cut (the pages of a slot are touched only as far as a datagram
/// reaches).
const SLOT: usize = 65535;

/// A source or destination address as the kernel reads and writes it.
#[derive(Clone, Copy)]
struct RawAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl RawAddr {
    fn empty() -> Self {
        RawAddr {
            // SAFETY: sockaddr_storage is plain data; all zeros is valid.
            storage: unsafe { zeroed() },
            len: 0,
        }
    }

    fn from_socket_addr(addr: SocketAddr) -> Self {
        let sa = socket2::SockAddr::from(addr);
        let mut raw = RawAddr::empty();
        let len = (sa.len() as usize).min(size_of::<libc::sockaddr_storage>());
        // SAFETY: both are valid for `len` bytes (at most the size of a
        // sockaddr_storage) and do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(
                sa.as_ptr() as *const u8,
                &mut raw.storage as *mut _ as *mut u8,
                len,
            );
        }
        raw.len = len as libc::socklen_t;
        raw
    }

    fn to_socket_addr(self) -> Option<SocketAddr> {
        let len = self.len as usize;
        match i32::from(self.storage.ss_family) {
            libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
                // SAFETY: the family says it is a sockaddr_in, which fits in
                // a sockaddr_storage and has no stricter alignment.
                let sin = unsafe { &*(&self.storage as *const _ as *const libc::sockaddr_in) };
                Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes()),
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
                // SAFETY: as above, for sockaddr_in6.
                let sin6 = unsafe { &*(&self.storage as *const _ as *const libc::sockaddr_in6) };
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}

/// Sets `SO_REUSEPORT` (before `bind`): several sockets of this process
/// share one UDP port, one per io thread. (socket2 has it only behind its
/// `all` feature.)
pub(crate) fn set_reuse_port(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: the option value is a c_int that lives for the call.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEPORT,
            (&on as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Datagrams received by one `recvmmsg` call.
pub(crate) struct RecvBatch {
    buffers: Vec<u8>,
    addrs: Vec<RawAddr>,
    lens: Vec<usize>,
    received: usize,
}

impl RecvBatch {
    pub(crate) fn new() -> Self {
        RecvBatch {
            buffers: vec![0; BATCH * SLOT],
            addrs: vec![RawAddr::empty(); BATCH],
            lens: vec![0; BATCH],
            received: 0,
        }
    }

    /// Receives up to [`BATCH`] datagrams without blocking; the count, or
    /// `WouldBlock` when none is waiting.
    pub(crate) fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        self.received = 0;
        // SAFETY: iovec and mmsghdr are plain data; zeroed is valid.
        let mut iovecs: [libc::iovec; BATCH] = unsafe { zeroed() };
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        for (i, ((iov, header), addr)) in iovecs
            .iter_mut()
            .zip(headers.iter_mut())
            .zip(self.addrs.iter_mut())
            .enumerate()
        {
            iov.iov_base = self.buffers[i * SLOT..].as_mut_ptr().cast();
            iov.iov_len = SLOT;
            header.msg_hdr.msg_name = (&mut addr.storage as *mut libc::sockaddr_storage).cast();
            header.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            header.msg_hdr.msg_iov = iov;
            header.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every header points at an iovec and an address in this
        // frame or in `self`, valid and unaliased for the call; the buffer
        // of slot i is SLOT bytes long.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = (n as usize).min(BATCH);
        for (i, header) in headers.iter().take(n).enumerate() {
            self.lens[i] = (header.msg_len as usize).min(SLOT);
            self.addrs[i].len = header.msg_hdr.msg_namelen;
        }
        self.received = n;
        Ok(n)
    }

    /// Datagram `i` of the last call and its source (`None` for an address
    /// family other than IPv4 and IPv6).
    pub(crate) fn datagram(&self, i: usize) -> (&[u8], Option<SocketAddr>) {
        if i >= self.received {
            return (&[], None);
        }
        let start = i * SLOT;
        (
            &self.buffers[start..start + self.lens[i]],
            self.addrs[i].to_socket_addr(),
        )
    }
}

/// Replies waiting for one `sendmmsg` call.
pub(crate) struct SendBatch {
    buffers: Vec<Vec<u8>>,
    addrs: Vec<RawAddr>,
    queued: usize,
}

impl SendBatch {
    pub(crate) fn new() -> Self {
        SendBatch {
            buffers: (0..BATCH).map(|_| Vec::with_capacity(1232)).collect(),
            addrs: vec![RawAddr::empty(); BATCH],
            queued: 0,
        }
    }

    /// True when no more reply fits: send first.
    pub(crate) fn is_full(&self) -> bool {
        self.queued >= BATCH
    }

    /// True when nothing is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// The buffer of the next reply (its old contents still in it); it is
    /// queued only by [`SendBatch::commit`]. `None` when full.
    pub(crate) fn next_buffer(&mut self) -> Option<&mut Vec<u8>> {
        self.buffers.get_mut(self.queued)
    }

    /// Queues the reply written into [`SendBatch::next_buffer`] for `to`.
    pub(crate) fn commit(&mut self, to: SocketAddr) {
        if let Some(addr) = self.addrs.get_mut(self.queued) {
            *addr = RawAddr::from_socket_addr(to);
            self.queued += 1;
        }
    }

    /// Sends the queued replies from `first` on without blocking: the
    /// number sent (at least one), or the error of reply `first`
    /// (`WouldBlock` when the socket buffer is full).
    pub(crate) fn send(&mut self, fd: RawFd, first: usize) -> io::Result<usize> {
        if first >= self.queued {
            return Ok(0);
        }
        // SAFETY: plain data, zeroed is valid.
        let mut iovecs: [libc::iovec; BATCH] = unsafe { zeroed() };
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        let count = self.queued - first;
        for (((iov, header), buffer), addr) in iovecs
            .iter_mut()
            .zip(headers.iter_mut())
            .zip(&self.buffers[first..self.queued])
            .zip(&mut self.addrs[first..self.queued])
        {
            iov.iov_base = buffer.as_ptr() as *mut libc::c_void;
            iov.iov_len = buffer.len();
            header.msg_hdr.msg_name = (&mut addr.storage as *mut libc::sockaddr_storage).cast();
            header.msg_hdr.msg_namelen = addr.len;
            header.msg_hdr.msg_iov = iov;
            header.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: the first `count` headers point at iovecs in this frame
        // and at buffers and addresses in `self`, valid for the call; the
        // kernel only reads them.
        let n = unsafe {
            libc::sendmmsg(
                fd,
                headers.as_mut_ptr(),
                count as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Reply `i` and its destination, for sending it another way.
    pub(crate) fn reply(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        if i >= self.queued {
            return None;
        }
        Some((&self.buffers[i], self.addrs[i].to_socket_addr()?))
    }

    /// Number of queued replies.
    pub(crate) fn len(&self) -> usize {
        self.queued
    }

    /// Forgets the queued replies (their buffers are kept).
    pub(crate) fn clear(&mut self) {
        self.queued = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn addresses_round_trip() {
        for addr in [
            "192.0.2.1:53".parse::<SocketAddr>().unwrap(),
            "[2001:db8::1]:5353".parse().unwrap(),
            SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 9, 0, 3)),
        ] {
            assert_eq!(RawAddr::from_socket_addr(addr).to_socket_addr(), Some(addr));
        }
        assert_eq!(RawAddr::empty().to_socket_addr(), None);
    }

    #[test]
    fn batch_receives_and_sends_several_datagrams() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let mut recv = RecvBatch::new();
        let err = recv.recv(server.as_raw_fd()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        for i in 0..5u8 {
            client
                .send_to(&[i; 3], server.local_addr().unwrap())
                .unwrap();
        }
        let mut got = 0;
        let mut send = SendBatch::new();
        while got < 5 {
            let n = recv.recv(server.as_raw_fd()).unwrap();
            for i in 0..n {
                let (bytes, from) = recv.datagram(i);
                assert_eq!(bytes, &[got as u8; 3]);
                assert_eq!(from, Some(client.local_addr().unwrap()));
                let out = send.next_buffer().unwrap();
                out.clear();
                out.extend_from_slice(bytes);
                out.push(0xff);
                send.commit(from.unwrap());
                got += 1;
            }
        }
        assert_eq!(send.len(), 5);
        assert_eq!(send.send(server.as_raw_fd(), 0).unwrap(), 5);
        for i in 0..5u8 {
            let mut buf = [0u8; 16];
            let len = client.recv(&mut buf).unwrap();
            assert_eq!(&buf[..len], &[i, i, i, 0xff]);
        }
        send.clear();
        assert!(send.is_empty());
    }
}
