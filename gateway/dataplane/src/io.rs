//! The system calls of the data plane, thinly wrapped: the TUN device, the
//! UDP socket with `recvmmsg`/`sendmmsg`, an eventfd to stop the threads, and
//! `poll`. Errors carry what was being done.

use std::ffi::CString;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
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

/// A non-blocking IPv4 UDP socket bound on every address at `port` (0: any),
/// with buffers raised as wireguard-go raises them (7 MiB; FORCE as root).
pub fn bind_udp(port: u16) -> Result<(OwnedFd, u16), IoError> {
    // SAFETY: plain socket(2); the result is checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(last("socket(AF_INET, SOCK_DGRAM)"));
    }
    // SAFETY: fd was just made and is owned here alone.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
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
    let sa = sockaddr_in(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port));
    // SAFETY: sa is a valid sockaddr_in of the length given.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sa as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(last(format!("bind UDP port {port}")));
    }
    // SAFETY: getsockname into a sockaddr_in of the length given.
    let mut out: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockname(
            fd.as_raw_fd(),
            &mut out as *mut libc::sockaddr_in as *mut libc::sockaddr,
            &mut len,
        )
    };
    if rc < 0 {
        return Err(last("getsockname"));
    }
    Ok((fd, u16::from_be(out.sin_port)))
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

/// A `sockaddr_in` for an address.
pub fn sockaddr_in(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(a.ip().octets()),
        },
        sin_zero: [0; 8],
    }
}

/// The address in a `sockaddr_in`.
pub fn from_sockaddr_in(sa: &libc::sockaddr_in) -> SocketAddrV4 {
    SocketAddrV4::new(
        Ipv4Addr::from(sa.sin_addr.s_addr.to_ne_bytes()),
        u16::from_be(sa.sin_port),
    )
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

/// Send one datagram; false when the kernel refused it (counted by the caller).
pub fn send_to(fd: RawFd, data: &[u8], to: SocketAddrV4) -> bool {
    let sa = sockaddr_in(to);
    // SAFETY: data and sa live across the call.
    let n = unsafe {
        libc::sendto(
            fd,
            data.as_ptr() as *const libc::c_void,
            data.len(),
            0,
            &sa as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    n >= 0
}

/// Preallocated `mmsghdr`s, iovecs and addresses for `recvmmsg`/`sendmmsg`.
pub struct MsgBatch {
    hdrs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
    addrs: Vec<libc::sockaddr_in>,
}

// SAFETY: the raw pointers inside point only into this struct's own vectors
// and the caller's buffers during a call; nothing is shared across threads.
unsafe impl Send for MsgBatch {}

impl MsgBatch {
    /// Room for `n` messages.
    pub fn new(n: usize) -> MsgBatch {
        MsgBatch {
            // SAFETY: mmsghdr, iovec and sockaddr_in are plain data; zeroed is valid.
            hdrs: (0..n).map(|_| unsafe { std::mem::zeroed() }).collect(),
            iovs: (0..n).map(|_| unsafe { std::mem::zeroed() }).collect(),
            addrs: (0..n).map(|_| unsafe { std::mem::zeroed() }).collect(),
        }
    }

    /// Receive up to `bufs.len()` datagrams without blocking; each one's
    /// length and source go to `got`. Returns how many.
    pub fn recv(
        &mut self,
        fd: RawFd,
        bufs: &mut [Vec<u8>],
        got: &mut Vec<(usize, SocketAddrV4)>,
    ) -> Result<usize, IoError> {
        let n = bufs.len().min(self.hdrs.len());
        for (i, buf) in bufs.iter_mut().enumerate().take(n) {
            self.iovs[i] = libc::iovec {
                iov_base: buf.as_mut_ptr() as *mut libc::c_void,
                iov_len: buf.len(),
            };
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = &mut self.addrs[i] as *mut libc::sockaddr_in as *mut libc::c_void;
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
        // SAFETY: n headers, each pointing at a live buffer and address.
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
            let truncated = self.hdrs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            let len = if truncated {
                0
            } else {
                self.hdrs[i].msg_len as usize
            };
            got.push((len, from_sockaddr_in(&self.addrs[i])));
        }
        Ok(rc as usize)
    }

    /// Send `items` (a buffer's first bytes and the address each goes to) in
    /// as few `sendmmsg` calls as the kernel takes; returns how many the
    /// kernel refused (a full buffer or an unreachable address drops one).
    pub fn send(&mut self, fd: RawFd, items: &[(&[u8], SocketAddrV4)]) -> usize {
        let mut refused = 0;
        for chunk in items.chunks(self.hdrs.len()) {
            for (i, (data, to)) in chunk.iter().enumerate() {
                self.addrs[i] = sockaddr_in(*to);
                self.iovs[i] = libc::iovec {
                    iov_base: data.as_ptr() as *mut libc::c_void,
                    iov_len: data.len(),
                };
                let h = &mut self.hdrs[i].msg_hdr;
                h.msg_name = &mut self.addrs[i] as *mut libc::sockaddr_in as *mut libc::c_void;
                h.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
                h.msg_iov = &mut self.iovs[i];
                h.msg_iovlen = 1;
                h.msg_control = std::ptr::null_mut();
                h.msg_controllen = 0;
            }
            let mut off = 0;
            while off < chunk.len() {
                // SAFETY: chunk.len() - off headers from off, each pointing at live data.
                let rc = unsafe {
                    libc::sendmmsg(
                        fd,
                        self.hdrs[off..].as_mut_ptr(),
                        (chunk.len() - off) as libc::c_uint,
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
                // This message cannot go (unreachable, no route, still full): skip it.
                refused += 1;
                off += 1;
            }
        }
        refused
    }
}
