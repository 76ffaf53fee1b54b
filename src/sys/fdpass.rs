//! Handing fds to a thread with a private fd table: a Unix stream socket
//! carrying fixed 16-byte messages, each with at most one fd (SCM_RIGHTS).
//!
//! Signal context: [`send_message`] and [`recv_message`] are async-signal-safe
//! (one system call each, on stack memory, with no errno written).

use libc::c_int;
use std::io;
use std::os::fd::RawFd;

/// The payload of one message.
pub type Message = [u8; MESSAGE_LEN];

const MESSAGE_LEN: usize = 16;

/// The room `recvmsg`/`sendmsg` need for one fd's control message, on the
/// stack and aligned for `cmsghdr`.
#[repr(C, align(8))]
struct OneFdSpace([u8; 24]);

const _: () = assert!(std::mem::size_of::<libc::cmsghdr>() + 4 <= 24);

/// A connected pair of close-on-exec Unix stream sockets.
pub fn stream_socketpair() -> io::Result<(RawFd, RawFd)> {
    let mut fds = [-1; 2];
    // SAFETY: fds has room for the two fds socketpair writes.
    let rc = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok((fds[0], fds[1]))
}

/// Sends `message` with `fd` (-1: none) attached, without blocking and without
/// SIGPIPE. Err(errno), EAGAIN when the socket is full. Async-signal-safe.
pub fn send_message(sock: RawFd, message: &Message, fd: RawFd) -> Result<(), c_int> {
    let mut iov = libc::iovec { iov_base: message.as_ptr().cast_mut().cast(), iov_len: message.len() };
    let mut space = OneFdSpace([0; 24]);
    // SAFETY: msghdr is plain data; all-zero is a valid starting value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if fd >= 0 {
        msg.msg_control = space.0.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE only computes a size.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(4) } as usize;
        // SAFETY: msg_control points to `space`, which has room for one
        // cmsghdr and one int (asserted above), so the first header exists.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(4) as usize;
            libc::CMSG_DATA(cmsg).cast::<c_int>().write_unaligned(fd);
        }
    }
    loop {
        let flags = (libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) as usize;
        let args = [sock as usize, &msg as *const libc::msghdr as usize, flags, 0, 0, 0];
        // SAFETY: msg describes live stack memory for the whole call.
        match unsafe { super::bare::syscall6(libc::SYS_sendmsg, args) } {
            Ok(MESSAGE_LEN) => return Ok(()),
            Err(libc::EINTR) => continue,
            Err(errno) => return Err(errno),
            // A stream socket takes the 16 bytes whole or not at all when they
            // fit in one buffer, which the kernel guarantees for this size.
            Ok(_) => return Err(libc::EIO),
        }
    }
}

/// What [`recv_message`] got.
pub enum Received {
    /// One message and the fd sent with it (-1: none, or it could not be
    /// installed because the fd table is full).
    Message(Message, RawFd),
    /// Nothing waiting.
    Empty,
    /// The other end is closed.
    Closed,
}

/// Receives one message without blocking; the fd arrives close-on-exec.
/// Async-signal-safe.
pub fn recv_message(sock: RawFd) -> Received {
    let mut message: Message = [0; MESSAGE_LEN];
    let mut iov = libc::iovec { iov_base: message.as_mut_ptr().cast(), iov_len: message.len() };
    let mut space = OneFdSpace([0; 24]);
    // SAFETY: msghdr is plain data; all-zero is a valid starting value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = space.0.as_mut_ptr().cast();
    msg.msg_controllen = space.0.len();
    // Messages are written whole and the kernel never merges two that carry
    // fds, so asking for exactly MESSAGE_LEN bytes returns one message.
    let flags = (libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC) as usize;
    let got = loop {
        let args = [sock as usize, &mut msg as *mut libc::msghdr as usize, flags, 0, 0, 0];
        // SAFETY: msg describes live stack memory for the whole call.
        match unsafe { super::bare::syscall6(libc::SYS_recvmsg, args) } {
            Err(libc::EINTR) => continue,
            got => break got,
        }
    };
    match got {
        Ok(0) => return Received::Closed,
        Err(_) => return Received::Empty,
        Ok(_) => {}
    }
    let mut fd = -1;
    // SAFETY: the kernel filled msg_control; CMSG_FIRSTHDR checks its length.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if !cmsg.is_null() && (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
            fd = libc::CMSG_DATA(cmsg).cast::<c_int>().read_unaligned();
        }
    }
    Received::Message(message, fd)
}

/// Gives the calling thread a private copy of the fd table
/// (`unshare(CLONE_FILES)`) and closes every fd in it but `keep` (each an fd
/// or -1). Later opens and closes in either table do not affect the other.
/// Err(errno) if the copy cannot be made. Async-signal-safe; writes no errno
/// (it runs on the keeper's bare thread).
pub fn private_fd_table<const N: usize>(mut keep: [RawFd; N]) -> Result<(), c_int> {
    // SAFETY: unshare only changes the calling thread's own fd table.
    unsafe { super::bare::syscall6(libc::SYS_unshare, [libc::CLONE_FILES as usize, 0, 0, 0, 0, 0]) }?;
    let mut first: u32 = 0;
    keep.sort_unstable();
    for fd in keep.into_iter().filter(|&fd| fd >= 0).map(|fd| fd as u32) {
        close_range(first, fd.wrapping_sub(1), fd > first);
        first = fd + 1;
    }
    close_range(first, u32::MAX, true);
    Ok(())
}

fn close_range(first: u32, last: u32, nonempty: bool) {
    if nonempty {
        // SAFETY: closes fds of this thread's private table only.
        let _ = unsafe { super::bare::syscall6(libc::SYS_close_range, [first as usize, last as usize, 0, 0, 0, 0]) };
    }
}
