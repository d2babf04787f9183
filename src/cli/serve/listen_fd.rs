//! `--listen-fd N`: serve on a listening TCP socket inherited from the parent process instead
//! of binding `--addr`. That is systemd socket activation (`--listen-fd 3`), and it is how a
//! supervisor restarts the webhook without refusing a single connection: the socket stays
//! open in the supervisor, the next process starts accepting on it, then the old one drains
//! and exits. Connections that arrive in between wait in the kernel's accept queue.
//!
//! Turning a number into an owned socket is the one place hookguard needs `unsafe`; the
//! descriptor is checked first (open, a socket, IPv4/IPv6, stream, listening), so a wrong
//! number gets a clear error instead of a server that fails on its first accept.

use std::io;
use std::net::TcpListener;
use std::os::fd::RawFd;

#[derive(Debug, thiserror::Error)]
pub enum ListenFdError {
    #[error(
        "--listen-fd {0}: no such open file descriptor (the parent must pass it without \
         FD_CLOEXEC, e.g. systemd socket activation passes fd 3)"
    )]
    NotOpen(RawFd),
    #[error("--listen-fd {fd}: {what}")]
    Unsuitable { fd: RawFd, what: &'static str },
    #[error("--listen-fd {fd}: {call} failed: {source}")]
    Sys {
        fd: RawFd,
        call: &'static str,
        source: io::Error,
    },
}

/// Checks that `fd` is an open, listening TCP socket (IPv4 or IPv6) and takes ownership of
/// it: non-blocking (for tokio) and close-on-exec (not leaked any further). On an error the
/// descriptor is left as it was. Call it once per descriptor: the listener owns it after.
#[allow(unsafe_code)]
pub fn take(fd: RawFd) -> Result<TcpListener, ListenFdError> {
    use std::os::fd::{FromRawFd, OwnedFd};
    check(fd)?;
    // SAFETY: `check` proved `fd` is an open socket of this process; nothing else in
    // hookguard refers to it (it came from the command line, and `take` is called once), so
    // the listener becomes its only owner and closes it when dropped.
    let listener = TcpListener::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let sys = |call| move |source| ListenFdError::Sys { fd, call, source };
    listener
        .set_nonblocking(true)
        .map_err(sys("set_nonblocking"))?;
    // SAFETY: F_SETFD on a descriptor this process owns changes only its close-on-exec flag.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
        return Err(sys("fcntl(F_SETFD)")(io::Error::last_os_error()));
    }
    Ok(listener)
}

/// The checks, reading only: nothing here changes or closes the descriptor.
#[allow(unsafe_code)]
fn check(fd: RawFd) -> Result<(), ListenFdError> {
    let unsuitable = |what| Err(ListenFdError::Unsuitable { fd, what });
    let sys = |call| {
        move || ListenFdError::Sys {
            fd,
            call,
            source: io::Error::last_os_error(),
        }
    };
    if fd < 0 {
        return Err(ListenFdError::NotOpen(fd));
    }
    // SAFETY (all calls below): fcntl(F_GETFD), fstat, getsockopt and getsockname only read
    // the descriptor table and the socket's state into buffers owned here, sized as passed;
    // on a number that is not open they fail with EBADF.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(ListenFdError::NotOpen(fd));
    }
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(sys("fstat")());
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return unsuitable("not a socket (a file, pipe or terminal)");
    }
    let int_opt = |opt, call| {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if rc == 0 {
            Ok(v)
        } else {
            Err(sys(call)())
        }
    };
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    if unsafe {
        libc::getsockname(
            fd,
            (&mut addr as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    } != 0
    {
        return Err(sys("getsockname")());
    }
    if !matches!(i32::from(addr.ss_family), libc::AF_INET | libc::AF_INET6) {
        return unsuitable("not an IPv4 or IPv6 socket (e.g. a Unix socket)");
    }
    if int_opt(libc::SO_TYPE, "getsockopt(SO_TYPE)")? != libc::SOCK_STREAM {
        return unsuitable("not a stream (TCP) socket (e.g. UDP)");
    }
    if int_opt(libc::SO_ACCEPTCONN, "getsockopt(SO_ACCEPTCONN)")? == 0 {
        return unsuitable(
            "a TCP socket that is not listening (bind and listen before passing it)",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsRawFd, IntoRawFd};

    #[test]
    fn takes_a_listening_tcp_socket() {
        let std = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = std.local_addr().expect("addr");
        let taken = take(std.into_raw_fd()).expect("a listening socket is accepted");
        assert_eq!(taken.local_addr().expect("addr"), addr);
        // Non-blocking: accept with nothing queued answers at once.
        let e = taken.accept().expect_err("nothing queued");
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        let _client = std::net::TcpStream::connect(addr).expect("connect");
        let fd = taken.as_raw_fd();
        let flags = fd_flags(fd);
        assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
    }

    /// fcntl(F_GETFD) for the test's own assertions.
    #[allow(unsafe_code)]
    fn fd_flags(fd: RawFd) -> libc::c_int {
        // SAFETY: reads the flags of a descriptor the test owns.
        unsafe { libc::fcntl(fd, libc::F_GETFD) }
    }

    fn err(fd: RawFd) -> String {
        take(fd).expect_err("must be refused").to_string()
    }

    #[test]
    fn refuses_what_is_not_a_listening_tcp_socket() {
        assert!(err(-1).contains("no such open file descriptor"));
        assert!(err(1_000_000).contains("no such open file descriptor"));

        let file = tempfile::tempfile().expect("file");
        assert!(
            err(file.as_raw_fd()).contains("not a socket"),
            "{}",
            err(file.as_raw_fd())
        );

        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
        assert!(err(udp.as_raw_fd()).contains("not a stream"));

        let dir = tempfile::tempdir().expect("dir");
        let unix = std::os::unix::net::UnixListener::bind(dir.path().join("s")).expect("unix");
        assert!(err(unix.as_raw_fd()).contains("not an IPv4 or IPv6"));

        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let stream =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        assert!(err(stream.as_raw_fd()).contains("not listening"));

        // Refused descriptors are left open and usable.
        assert!(udp.local_addr().is_ok() && stream.peer_addr().is_ok());
    }
}
