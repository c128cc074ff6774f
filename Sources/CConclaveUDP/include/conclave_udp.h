// recvmmsg/sendmmsg for the relay's media sockets (ConclaveRelay/Media/MediaSocket.swift).
//
// Glibc's Swift module is built without _GNU_SOURCE, so `struct mmsghdr` and the two calls
// are not visible from Swift. This declares a struct of the same layout and thin wrappers
// compiled with _GNU_SOURCE (conclave_udp.c checks the layout at compile time).
#ifndef CONCLAVE_UDP_H
#define CONCLAVE_UDP_H

#include <sys/socket.h>

typedef struct {
    struct msghdr msg_hdr;
    unsigned int msg_len;
} conclave_mmsghdr;

/// recvmmsg(2) with MSG_WAITFORONE and no timeout: blocks (up to the socket's SO_RCVTIMEO)
/// for the first datagram, then takes whatever else is queued, up to `count`.
int conclave_recvmmsg_waitforone(int fd, conclave_mmsghdr *messages, unsigned int count);

/// sendmmsg(2) with MSG_DONTWAIT.
int conclave_sendmmsg_dontwait(int fd, conclave_mmsghdr *messages, unsigned int count);

/// Names the calling thread (15 bytes at most), as `top -H` and perf show it.
int conclave_name_this_thread(const char *name);

#endif
