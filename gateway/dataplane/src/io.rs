//! The system calls of the data plane, thinly wrapped: the TUN device, the
//! UDP socket with `recvmmsg`/`sendmmsg`, an eventfd to stop the threads, and
//! `poll`. Errors carry what was being done.
//!
//! The UDP socket is dual-stack (AF_INET6 with IPV6_V6ONLY off), so one
//! socket and one port serve IPv4 and IPv6 endpoints alike; on a kernel
//! without IPv6 it is AF_INET. Addresses are `SocketAddr` everywhere above
//! this module, IPv4 always as `V4` (mapped addresses are unmapped here), so
//! one peer has one key.

use std::ffi::CString;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// An I/O error with what was being done.
#[derive(Debug)]
pub struct IoError {
    /// What failed (`open /dev/net/tun`, `TUNSETIFF trellis0`, …).
    pub what: String,
    /// The system's reason.
    pub err: io::Error,
}

impl std::fmt::Display for IoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, self.err)
    }
}

impl std::error::Error for IoError {}

fn last(what: impl Into<String>) -> IoError {
    IoError {
        what: what.into(),
        err: io::Error::last_os_error(),
    }
}

/// An open TUN device.
pub struct Tun {
    /// Its descriptor.
    pub fd: OwnedFd,
    /// The interface's name.
    pub name: String,
    /// Every packet read and written carries a `virtio_net_hdr`.
    pub vnet: bool,
    /// The kernel hands us TSO super-packets (and leaves checksums to us).
    pub tso: bool,
}

/// `TUNSETOFFLOAD` (`_IOW('T', 208, unsigned int)`).
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
/// Offloads asked of the kernel: checksums, TSO over IPv4 and IPv6.
const TUN_F_CSUM: libc::c_uint = 0x01;
const TUN_F_TSO4: libc::c_uint = 0x02;
const TUN_F_TSO6: libc::c_uint = 0x04;

/// Open (creating it if needed) the TUN interface `name`: IFF_TUN, no
/// packet-information header, non-blocking, close-on-exec; with `offload`,
/// also IFF_VNET_HDR and TSO/checksum offload (every packet then carries a
/// `virtio_net_hdr`, see `offload`). Returns the fd, the name the kernel
/// gave it, and which offloads are on (an older kernel may refuse them).
pub fn open_tun(name: &str, offload: bool) -> Result<Tun, IoError> {
    if name.is_empty()
        || name.len() >= libc::IFNAMSIZ
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        return Err(IoError {
            what: format!("TUN name \"{name}\""),
            err: io::Error::new(
                io::ErrorKind::InvalidInput,
                "must be 1-15 characters of [A-Za-z0-9_.-]",
            ),
        });
    }
    let path = CString::new("/dev/net/tun").expect("no NUL");
    // SAFETY: a valid C string; the result is checked.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDWR | libc::O_CLOEXEC | libc::O_NONBLOCK,
        )
    };
    if fd < 0 {
        return Err(last("open /dev/net/tun"));
    }
    // SAFETY: fd was just opened and is owned here alone.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; zeroed is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    let vnet = if offload { libc::IFF_VNET_HDR } else { 0 };
    ifr.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI | vnet) as libc::c_short;
    // SAFETY: TUNSETIFF takes a pointer to an ifreq that lives across the call.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut ifr) } < 0 {
        return Err(last(format!("TUNSETIFF {name}")));
    }
    let mut offloaded = false;
    if offload {
        let flags = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
        // SAFETY: TUNSETOFFLOAD takes the flags by value.
        offloaded = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETOFFLOAD, flags) } == 0;
    }
    let got: Vec<u8> = ifr
        .ifr_name
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    // With VNET_HDR set every packet carries the header, whether or not the offloads took.
    Ok(Tun {
        fd,
        name: String::from_utf8_lossy(&got).into_owned(),
        vnet: offload,
        tso: offloaded,
    })
}

/// A non-blocking UDP socket bound on every address at `port` (0: any),
/// dual-stack where the kernel has IPv6, with buffers raised as wireguard-go
/// raises them (7 MiB; FORCE as root).
pub fn bind_udp(port: u16) -> Result<(OwnedFd, u16), IoError> {
    let flags = libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: plain socket(2); the result is checked.
    let mut raw = unsafe { libc::socket(libc::AF_INET6, flags, 0) };
    let v6 = raw >= 0;
    if !v6 {
        // SAFETY: as above.
        raw = unsafe { libc::socket(libc::AF_INET, flags, 0) };
    }
    if raw < 0 {
        return Err(last("socket(AF_INET6 and AF_INET, SOCK_DGRAM)"));
    }
    // SAFETY: raw was just made and is owned here alone.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    if v6 {
        setsockopt_int(fd.as_raw_fd(), libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 0)?;
    }
    const BUF: libc::c_int = 7 << 20;
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        if setsockopt_int(fd.as_raw_fd(), libc::SOL_SOCKET, force, BUF).is_err() {
            // Not root: the kernel caps the plain option at its *mem_max.
            let _capped = setsockopt_int(fd.as_raw_fd(), libc::SOL_SOCKET, plain, BUF);
        }
    }
    let any = if v6 {
        SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0))
    } else {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port))
    };
    let (sa, len) = raw_addr(any, v6).expect("the wildcard of the socket's own family");
    // SAFETY: sa holds a valid address of length len.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sa as *const libc::sockaddr_in6 as *const libc::sockaddr,
            len,
        )
    };
    if rc < 0 {
        return Err(last(format!("bind UDP port {port}")));
    }
    let bound = local_addr(fd.as_raw_fd()).ok_or_else(|| last("getsockname"))?;
    Ok((fd, bound.port()))
}

/// The socket's own address (None: getsockname failed).
fn local_addr(fd: RawFd) -> Option<SocketAddr> {
    // SAFETY: zeroed sockaddr_in6 is valid; getsockname writes at most len bytes.
    let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockname(
            fd,
            &mut sa as *mut libc::sockaddr_in6 as *mut libc::sockaddr,
            &mut len,
        )
    };
    (rc == 0).then(|| from_raw_addr(&sa))
}

/// Whether `fd` is an IPv6 (dual-stack) socket.
pub fn is_v6_socket(fd: RawFd) -> bool {
    matches!(local_addr(fd), Some(SocketAddr::V6(_)))
}

fn setsockopt_int(
    fd: RawFd,
    level: libc::c_int,
    opt: libc::c_int,
    v: libc::c_int,
) -> Result<(), IoError> {
    // SAFETY: an int option of the right size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            &v as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(last(format!("setsockopt {opt}")));
    }
    Ok(())
}

/// An address as the kernel takes it from a socket of the given family, in
/// room for either family (a `sockaddr_in` is written into the start of the
/// `sockaddr_in6`), with its length. IPv4 goes to an IPv6 socket as an
/// IPv4-mapped address. None: an IPv6 address for an IPv4-only socket.
pub fn raw_addr(a: SocketAddr, v6_socket: bool) -> Option<(libc::sockaddr_in6, libc::socklen_t)> {
    // SAFETY: plain data; zeroed is valid.
    let mut out: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    if v6_socket {
        let (ip, scope) = match a {
            SocketAddr::V4(v4) => (v4.ip().to_ipv6_mapped(), 0),
            SocketAddr::V6(v6) => (*v6.ip(), v6.scope_id()),
        };
        out.sin6_family = libc::AF_INET6 as libc::sa_family_t;
        out.sin6_port = a.port().to_be();
        out.sin6_addr = libc::in6_addr {
            s6_addr: ip.octets(),
        };
        out.sin6_scope_id = scope;
        return Some((
            out,
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        ));
    }
    let v4 = match a {
        SocketAddr::V4(v4) => v4,
        SocketAddr::V6(v6) => SocketAddrV4::new(v6.ip().to_ipv4_mapped()?, v6.port()),
    };
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(v4.ip().octets()),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: a sockaddr_in (16 bytes, alignment 4) fits at the start of a sockaddr_in6 (28, 4).
    unsafe {
        std::ptr::write(
            &mut out as *mut libc::sockaddr_in6 as *mut libc::sockaddr_in,
            sin,
        )
    };
    Some((
        out,
        std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
    ))
}

/// The address the kernel wrote (either family); IPv4-mapped comes back as IPv4.
pub fn from_raw_addr(sa: &libc::sockaddr_in6) -> SocketAddr {
    if i32::from(sa.sin6_family) == libc::AF_INET {
        // SAFETY: the kernel wrote a sockaddr_in at the start of the room (alignment 4 both).
        let sin: &libc::sockaddr_in =
            unsafe { &*(sa as *const libc::sockaddr_in6 as *const libc::sockaddr_in) };
        return SocketAddr::V4(SocketAddrV4::new(
            Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes()),
            u16::from_be(sin.sin_port),
        ));
    }
    let ip = Ipv6Addr::from(sa.sin6_addr.s6_addr);
    let port = u16::from_be(sa.sin6_port);
    match ip.to_ipv4_mapped() {
        Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, port)),
        None => SocketAddr::V6(SocketAddrV6::new(ip, port, 0, sa.sin6_scope_id)),
    }
}

/// An eventfd, to wake and stop the I/O threads.
pub fn eventfd() -> Result<OwnedFd, IoError> {
    // SAFETY: plain eventfd(2); the result is checked.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(last("eventfd"));
    }
    // SAFETY: fd was just made and is owned here alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Signal an eventfd.
pub fn signal(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: an 8-byte write from a live u64; a failure (counter full) still leaves it readable.
    let _ = unsafe { libc::write(fd, &one as *const u64 as *const libc::c_void, 8) };
}

/// Wait until `fd` is readable or `stop` is signalled (true: stop).
pub fn wait_readable(fd: RawFd, stop: RawFd) -> Result<bool, IoError> {
    let mut fds = [
        libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: stop,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: two live pollfds.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if rc >= 0 {
            return Ok(fds[1].revents != 0);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(IoError {
                what: "poll".into(),
                err: e,
            });
        }
    }
}

/// Read one packet; None when none is waiting.
pub fn read(fd: RawFd, buf: &mut [u8]) -> Result<Option<usize>, IoError> {
    // SAFETY: reads at most buf.len() bytes into buf.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
    if n >= 0 {
        return Ok(Some(n as usize));
    }
    let e = io::Error::last_os_error();
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
        _ => Err(IoError {
            what: "read TUN".into(),
            err: e,
        }),
    }
}

/// Write one packet (a full TUN queue drops it: false).
pub fn write(fd: RawFd, buf: &[u8]) -> Result<bool, IoError> {
    // SAFETY: writes buf.len() bytes from buf.
    let n = unsafe { libc::write(fd, buf.as_ptr() as *const libc::c_void, buf.len()) };
    if n >= 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(false),
        // The host refused this packet (bad header, no route): not the device's failure.
        _ if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::EIO)) => Ok(false),
        _ => Err(IoError {
            what: "write TUN".into(),
            err: e,
        }),
    }
}

/// Send one datagram; false when the kernel refused it (counted by the
/// caller), or when it is for IPv6 and the socket is IPv4 only.
pub fn send_to(fd: RawFd, data: &[u8], to: SocketAddr) -> bool {
    let Some((sa, len)) = raw_addr(to, is_v6_socket(fd)) else {
        return false;
    };
    // SAFETY: data and sa live across the call.
    let n = unsafe {
        libc::sendto(
            fd,
            data.as_ptr() as *const libc::c_void,
            data.len(),
            0,
            &sa as *const libc::sockaddr_in6 as *const libc::sockaddr,
            len,
        )
    };
    n >= 0
}

/// `UDP_SEGMENT` (send: cut this buffer into datagrams of this size) and
/// `UDP_GRO` (receive: datagrams of one flow arrive glued, with their size).
const UDP_SEGMENT: libc::c_int = 103;
const UDP_GRO: libc::c_int = 104;
/// At most this many datagrams in one UDP_SEGMENT send (the kernel's limit).
const MAX_GSO_SEGMENTS: usize = 64;
/// At most this many bytes in one UDP_SEGMENT send.
const MAX_GSO_BYTES: usize = 65_000;

/// Ask the kernel to glue received datagrams of one flow (UDP_GRO); false if it cannot.
pub fn enable_udp_gro(fd: RawFd) -> bool {
    setsockopt_int(fd, libc::SOL_UDP, UDP_GRO, 1).is_ok()
}

/// One datagram received: where it lies (`bufs[buf][off..off + len]`; len 0: truncated) and its source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rx {
    /// The buffer.
    pub buf: usize,
    /// Its offset there (a glued buffer holds several).
    pub off: usize,
    /// Its length.
    pub len: usize,
    /// Who sent it.
    pub from: SocketAddr,
}

/// Control-message room per message.
type Cmsg = [u64; 8];

/// Preallocated `mmsghdr`s, iovecs, addresses and control buffers for
/// `recvmmsg`/`sendmmsg`.
pub struct MsgBatch {
    hdrs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
    addrs: Vec<libc::sockaddr_in6>,
    cmsgs: Vec<Cmsg>,
    /// Send with UDP_SEGMENT (turned off for good if the kernel refuses it).
    pub gso: bool,
    /// The family of the socket sent on (learnt at the first send).
    v6: Option<bool>,
}

// SAFETY: the raw pointers inside point only into this struct's own vectors
// and the caller's buffers during a call; nothing is shared across threads.
unsafe impl Send for MsgBatch {}

/// Split a glued receive (`len` bytes of `seg`-byte datagrams) into `got`.
pub fn split_gro(buf: usize, len: usize, seg: usize, from: SocketAddr, got: &mut Vec<Rx>) {
    if seg == 0 || seg >= len {
        got.push(Rx {
            buf,
            off: 0,
            len,
            from,
        });
        return;
    }
    let mut off = 0;
    while off < len {
        let n = seg.min(len - off);
        got.push(Rx {
            buf,
            off,
            len: n,
            from,
        });
        off += n;
    }
}

/// Group `items` for UDP_SEGMENT sends: runs to one address whose datagrams
/// all have the first one's length but the last (which may be shorter).
/// Returns (start, end, segment size) per group.
pub fn gso_groups(items: &[(&[u8], SocketAddr)], out: &mut Vec<(usize, usize, usize)>) {
    out.clear();
    let mut i = 0;
    while i < items.len() {
        let (first, to) = items[i];
        let seg = first.len();
        let mut end = i + 1;
        let mut bytes = seg;
        while end < items.len()
            && end - i < MAX_GSO_SEGMENTS
            && items[end].1 == to
            && items[end].0.len() <= seg
            && bytes + items[end].0.len() <= MAX_GSO_BYTES
        {
            bytes += items[end].0.len();
            end += 1;
            if items[end - 1].0.len() < seg {
                break;
            }
        }
        out.push((i, end, seg));
        i = end;
    }
}

impl MsgBatch {
    /// Room for `n` messages.
    pub fn new(n: usize) -> MsgBatch {
        MsgBatch {
            // SAFETY: mmsghdr, iovec and sockaddr_in are plain data; zeroed is valid.
            hdrs: (0..n).map(|_| unsafe { std::mem::zeroed() }).collect(),
            iovs: (0..n).map(|_| unsafe { std::mem::zeroed() }).collect(),
            addrs: (0..n).map(|_| unsafe { std::mem::zeroed() }).collect(),
            cmsgs: vec![[0u64; 8]; n],
            gso: false,
            v6: None,
        }
    }

    /// Receive up to `bufs.len()` datagrams (or glued runs of them) without
    /// blocking; every datagram goes to `got`. Returns how many messages.
    pub fn recv(
        &mut self,
        fd: RawFd,
        bufs: &mut [Vec<u8>],
        got: &mut Vec<Rx>,
    ) -> Result<usize, IoError> {
        let n = bufs.len().min(self.hdrs.len());
        for (i, buf) in bufs.iter_mut().enumerate().take(n) {
            self.iovs[i] = libc::iovec {
                iov_base: buf.as_mut_ptr() as *mut libc::c_void,
                iov_len: buf.len(),
            };
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = &mut self.addrs[i] as *mut libc::sockaddr_in6 as *mut libc::c_void;
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = self.cmsgs[i].as_mut_ptr() as *mut libc::c_void;
            h.msg_controllen = std::mem::size_of::<Cmsg>();
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
        // SAFETY: n headers, each pointing at a live buffer, address and control buffer.
        let rc = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        got.clear();
        if rc < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                // An ICMP error queued for an earlier send: nothing to read from it.
                _ if e.raw_os_error() == Some(libc::ECONNREFUSED) => Ok(0),
                _ => Err(IoError {
                    what: "recvmmsg".into(),
                    err: e,
                }),
            };
        }
        for i in 0..rc as usize {
            let h = &self.hdrs[i].msg_hdr;
            let from = from_raw_addr(&self.addrs[i]);
            if h.msg_flags & libc::MSG_TRUNC != 0 {
                got.push(Rx {
                    buf: i,
                    off: 0,
                    len: 0,
                    from,
                });
                continue;
            }
            let len = self.hdrs[i].msg_len as usize;
            let mut seg = 0usize;
            // SAFETY: the kernel filled msg_control up to msg_controllen; the CMSG macros stay inside it.
            unsafe {
                let mut c = libc::CMSG_FIRSTHDR(h);
                while !c.is_null() {
                    if (*c).cmsg_level == libc::SOL_UDP && (*c).cmsg_type == UDP_GRO {
                        seg = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::c_int)
                            as usize;
                    }
                    c = libc::CMSG_NXTHDR(h, c);
                }
            }
            split_gro(i, len, seg, from, got);
        }
        Ok(rc as usize)
    }

    /// Send `items` (datagrams and where each goes) in as few system calls as
    /// the kernel takes: `sendmmsg`, and with `gso` one UDP_SEGMENT message
    /// per run of same-size datagrams to one address. Returns how many
    /// datagrams the kernel refused (a full buffer or an unreachable address).
    pub fn send(&mut self, fd: RawFd, items: &[(&[u8], SocketAddr)]) -> usize {
        let v6 = *self.v6.get_or_insert_with(|| is_v6_socket(fd));
        if !v6 && items.iter().any(|(_, a)| raw_addr(*a, false).is_none()) {
            // IPv6 endpoints on an IPv4-only socket (a kernel without IPv6) cannot go.
            let sendable: Vec<(&[u8], SocketAddr)> = items
                .iter()
                .copied()
                .filter(|(_, a)| raw_addr(*a, false).is_some())
                .collect();
            return items.len() - sendable.len() + self.send(fd, &sendable);
        }
        let mut groups = Vec::new();
        if self.gso {
            gso_groups(items, &mut groups);
        } else {
            groups.extend((0..items.len()).map(|i| (i, i + 1, items[i].0.len())));
        }
        if self.hdrs.len() < groups.len() {
            // SAFETY: plain data; zeroed is valid.
            self.hdrs
                .resize_with(groups.len(), || unsafe { std::mem::zeroed() });
            self.addrs
                .resize_with(groups.len(), || unsafe { std::mem::zeroed() });
            self.cmsgs.resize(groups.len(), [0u64; 8]);
        }
        self.iovs.clear();
        self.iovs.reserve(items.len());
        for (data, _) in items {
            self.iovs.push(libc::iovec {
                iov_base: data.as_ptr() as *mut libc::c_void,
                iov_len: data.len(),
            });
        }
        for (g, &(start, end, seg)) in groups.iter().enumerate() {
            let (sa, len) = raw_addr(items[start].1, v6).expect("filtered above");
            self.addrs[g] = sa;
            let h = &mut self.hdrs[g].msg_hdr;
            h.msg_name = &mut self.addrs[g] as *mut libc::sockaddr_in6 as *mut libc::c_void;
            h.msg_namelen = len;
            // SAFETY: start < iovs.len(), which was reserved before any pointer was taken.
            h.msg_iov = unsafe { self.iovs.as_mut_ptr().add(start) };
            h.msg_iovlen = end - start;
            h.msg_flags = 0;
            if end - start > 1 {
                let cbuf = self.cmsgs[g].as_mut_ptr() as *mut libc::c_void;
                h.msg_control = cbuf;
                // SAFETY: CMSG_SPACE of a u16 fits the 64-byte buffer.
                h.msg_controllen = unsafe { libc::CMSG_SPACE(2) } as usize;
                // SAFETY: the control buffer is ours, aligned and big enough.
                unsafe {
                    let c = libc::CMSG_FIRSTHDR(h);
                    (*c).cmsg_level = libc::SOL_UDP;
                    (*c).cmsg_type = UDP_SEGMENT;
                    (*c).cmsg_len = libc::CMSG_LEN(2) as usize;
                    std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut u16, seg as u16);
                }
            } else {
                h.msg_control = std::ptr::null_mut();
                h.msg_controllen = 0;
            }
        }
        let mut refused = 0;
        let mut off = 0;
        while off < groups.len() {
            // SAFETY: groups.len() - off headers from off, each pointing at live data.
            let rc = unsafe {
                libc::sendmmsg(
                    fd,
                    self.hdrs[off..].as_mut_ptr(),
                    (groups.len() - off) as libc::c_uint,
                    0,
                )
            };
            if rc > 0 {
                off += rc as usize;
                continue;
            }
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            if e.kind() == io::ErrorKind::WouldBlock {
                // The send buffer is full: wait for room rather than drop.
                let mut p = libc::pollfd {
                    fd,
                    events: libc::POLLOUT,
                    revents: 0,
                };
                // SAFETY: one live pollfd; bounded wait.
                unsafe { libc::poll(&mut p, 1, 100) };
                if p.revents & libc::POLLOUT != 0 {
                    continue;
                }
            }
            let (start, end, _) = groups[off];
            if end - start > 1 && matches!(e.raw_os_error(), Some(libc::EIO) | Some(libc::EINVAL)) {
                // This kernel or device cannot segment: send one by one from now on.
                self.gso = false;
                return refused + self.send(fd, &items[start..]);
            }
            // This message cannot go (unreachable, no route, still full): skip it.
            refused += end - start;
            off += 1;
        }
        refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 1), 1));
    const B: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 2), 1));

    #[test]
    fn gso_groups_are_runs_of_one_size_to_one_address_ending_at_a_shorter_one() {
        let big = [0u8; 1000];
        let small = [0u8; 300];
        let items: Vec<(&[u8], SocketAddr)> = vec![
            (&big, A),
            (&big, A),
            (&small, A),
            (&big, A),
            (&big, B),
            (&small, B),
            (&big, A),
        ];
        let mut g = Vec::new();
        gso_groups(&items, &mut g);
        assert_eq!(
            g,
            vec![(0, 3, 1000), (3, 4, 1000), (4, 6, 1000), (6, 7, 1000)]
        );
        // At most 64 datagrams and 65,000 bytes in one.
        let many: Vec<(&[u8], SocketAddr)> = (0..100).map(|_| (&big[..], A)).collect();
        gso_groups(&many, &mut g);
        assert_eq!(g, vec![(0, 64, 1000), (64, 100, 1000)]);
    }

    #[test]
    fn a_glued_receive_is_split_into_its_datagrams() {
        let mut got = Vec::new();
        split_gro(3, 2500, 1000, A, &mut got);
        assert_eq!(
            got.iter()
                .map(|r| (r.buf, r.off, r.len))
                .collect::<Vec<_>>(),
            vec![(3, 0, 1000), (3, 1000, 1000), (3, 2000, 500)]
        );
        got.clear();
        split_gro(0, 700, 0, A, &mut got);
        assert_eq!(
            got,
            vec![Rx {
                buf: 0,
                off: 0,
                len: 700,
                from: A
            }]
        );
    }

    #[test]
    fn addresses_convert_for_either_family_of_socket() {
        let v4 = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 7), 41641));
        let v6: SocketAddr = "[2001:db8::7]:41641".parse().unwrap();
        for (a, on_v6) in [(v4, true), (v4, false), (v6, true)] {
            let (sa, len) = raw_addr(a, on_v6).unwrap();
            let expect_len = if on_v6 { 28 } else { 16 };
            assert_eq!((from_raw_addr(&sa), len as usize), (a, expect_len));
        }
        // An IPv4-only socket cannot reach IPv6, but takes IPv4-mapped as IPv4.
        assert!(raw_addr(v6, false).is_none());
        let mapped: SocketAddr = "[::ffff:192.0.2.7]:41641".parse().unwrap();
        assert_eq!(from_raw_addr(&raw_addr(mapped, false).unwrap().0), v4);
        assert_eq!(from_raw_addr(&raw_addr(mapped, true).unwrap().0), v4);
    }

    fn roundtrip(to_ip: std::net::IpAddr) {
        // Loopback, both ways: what UDP_SEGMENT sends, UDP_GRO (or not) receives as sent.
        let (rx, rx_port) = bind_udp(0).unwrap();
        let (tx, tx_port) = bind_udp(0).unwrap();
        let gro = enable_udp_gro(rx.as_raw_fd());
        let to = SocketAddr::new(to_ip, rx_port);
        let msgs: Vec<Vec<u8>> = (0..10u8)
            .map(|i| vec![i; if i == 9 { 200 } else { 1200 }])
            .collect();
        let items: Vec<(&[u8], SocketAddr)> = msgs.iter().map(|m| (&m[..], to)).collect();
        let mut sender = MsgBatch::new(4);
        sender.gso = true;
        assert_eq!(sender.send(tx.as_raw_fd(), &items), 0);
        let mut bufs = vec![vec![0u8; 65536]; 8];
        let mut r = MsgBatch::new(8);
        let mut got = Vec::new();
        let mut all = Vec::new();
        for _ in 0..100 {
            r.recv(rx.as_raw_fd(), &mut bufs, &mut got).unwrap();
            for g in &got {
                assert_eq!(
                    g.from,
                    SocketAddr::new(to_ip, tx_port),
                    "the sender, unmapped"
                );
                all.push(bufs[g.buf][g.off..g.off + g.len].to_vec());
            }
            if all.len() >= msgs.len() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(all, msgs, "gro {gro}");
    }

    #[test]
    fn datagrams_go_out_segmented_and_come_back_glued_or_not_intact() {
        roundtrip(Ipv4Addr::LOCALHOST.into());
    }

    #[test]
    fn the_socket_carries_ipv6_too() {
        let (s, _) = bind_udp(0).unwrap();
        if !is_v6_socket(s.as_raw_fd()) {
            eprintln!("skipped: this kernel has no IPv6");
            return;
        }
        roundtrip(Ipv6Addr::LOCALHOST.into());
    }
}
