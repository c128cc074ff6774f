#define _GNU_SOURCE
#include <stddef.h>
#include <sys/socket.h>

#include "conclave_udp.h"

_Static_assert(sizeof(conclave_mmsghdr) == sizeof(struct mmsghdr), "mmsghdr size");
_Static_assert(offsetof(conclave_mmsghdr, msg_len) == offsetof(struct mmsghdr, msg_len), "mmsghdr layout");

int conclave_recvmmsg_waitforone(int fd, conclave_mmsghdr *messages, unsigned int count) {
    return recvmmsg(fd, (struct mmsghdr *)messages, count, MSG_WAITFORONE, NULL);
}

int conclave_sendmmsg_dontwait(int fd, conclave_mmsghdr *messages, unsigned int count) {
    return sendmmsg(fd, (struct mmsghdr *)messages, count, MSG_DONTWAIT);
}

#include <pthread.h>

int conclave_name_this_thread(const char *name) {
    return pthread_setname_np(pthread_self(), name);
}
