/*
 * The reference forwarder of `conclave bench relay --baseline` (issue 14).
 *
 * The least a UDP SFU can do: recvmmsg a burst, and for each datagram from a registered
 * member, sendmmsg its body to every other member of its room. No authentication, no
 * replay window, no rate limits, no policy. It strips the same bytes the relay strips
 * (the 13-byte MEDIA header and the 16-byte hop tag, protocol/PROTOCOL.md 6.2) so that
 * the receivers see the same datagrams as through the relay.
 *
 * Usage: forwarder            binds 127.0.0.1 on a free port and prints "port N\n"
 *        forwarder PORT       binds 127.0.0.1:PORT
 * It runs until SIGTERM or SIGINT and then prints "forwarded N received M\n".
 *
 * Registration: a 12-byte datagram "CFWD" + room (u32, big endian) + member (u32, big
 * endian) adds its source address to the room (or moves it there); the forwarder answers
 * "CFOK" + member. Limits (datagrams past them are dropped and counted): 4096 members,
 * 64 members per room, 1024 rooms, datagrams up to 2048 bytes.
 *
 * Build: cc -O2 -o forwarder forwarder.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_MEMBERS 4096
#define MAX_ROOM 64
#define MAX_ROOMS 1024
#define MAX_DATAGRAM 2048
#define BURST 32 /* the relay's vectorReadCount */
#define MEDIA_HEADER 13
#define HOP_TAG 16
#define SEND_BATCH 1024 /* UIO_MAXIOV */
#define TABLE (MAX_MEMBERS * 2)

struct member {
    struct sockaddr_in address;
    uint32_t room; /* index into rooms */
    int used;
};

struct room {
    uint32_t id;
    int used;
    int count;
    int members[MAX_ROOM];
};

static struct member members[MAX_MEMBERS];
static int member_count;
static int table[TABLE]; /* address hash -> member index + 1 */
static struct room rooms[MAX_ROOMS];
static volatile sig_atomic_t stopping;

static void on_signal(int sig) {
    (void)sig;
    stopping = 1;
}

static unsigned hash_address(const struct sockaddr_in *a) {
    uint64_t k = ((uint64_t)a->sin_addr.s_addr << 16) | a->sin_port;
    k *= 0x9E3779B97F4A7C15ull;
    return (unsigned)(k >> 40) % TABLE;
}

static int same_address(const struct sockaddr_in *a, const struct sockaddr_in *b) {
    return a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr;
}

/* The member at this address, or -1. */
static int find_member(const struct sockaddr_in *a) {
    for (unsigned h = hash_address(a), n = 0; n < TABLE; h = (h + 1) % TABLE, n++) {
        int slot = table[h];
        if (slot == 0) return -1;
        if (same_address(&members[slot - 1].address, a)) return slot - 1;
    }
    return -1;
}

static int find_room(uint32_t id, int create) {
    unsigned start = (id * 2654435761u) % MAX_ROOMS;
    for (unsigned h = start, n = 0; n < MAX_ROOMS; h = (h + 1) % MAX_ROOMS, n++) {
        if (rooms[h].used && rooms[h].id == id) return (int)h;
        if (!rooms[h].used) {
            if (!create) return -1;
            rooms[h].used = 1;
            rooms[h].id = id;
            rooms[h].count = 0;
            return (int)h;
        }
    }
    return -1;
}

static void leave_room(int m) {
    struct room *r = &rooms[members[m].room];
    for (int i = 0; i < r->count; i++) {
        if (r->members[i] == m) {
            r->members[i] = r->members[--r->count];
            return;
        }
    }
}

/* Adds (or moves) the sender to a room; returns 0 on success. */
static int register_member(const struct sockaddr_in *a, uint32_t room_id) {
    int room = find_room(room_id, 1);
    if (room < 0 || rooms[room].count >= MAX_ROOM) return -1;
    int m = find_member(a);
    if (m >= 0) {
        leave_room(m);
    } else {
        if (member_count >= MAX_MEMBERS) return -1;
        m = member_count++;
        members[m].address = *a;
        members[m].used = 1;
        unsigned h = hash_address(a);
        while (table[h] != 0) h = (h + 1) % TABLE;
        table[h] = m + 1;
    }
    members[m].room = (uint32_t)room;
    rooms[room].members[rooms[room].count++] = m;
    return 0;
}

/* One sendmmsg per burst, as the relay flushes once per read burst. An error (a full
 * socket buffer) drops the rest, as a relay would. */
static void flush(int fd, struct mmsghdr *out, int pending, unsigned long long *forwarded, unsigned long long *dropped) {
    int offset = 0;
    while (offset < pending) {
        int sent = sendmmsg(fd, out + offset, (unsigned)(pending - offset), 0);
        if (sent <= 0) {
            if (sent < 0 && errno == EINTR) continue;
            *dropped += (unsigned)(pending - offset);
            return;
        }
        *forwarded += (unsigned)sent;
        offset += sent;
    }
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 0;
    if (port < 0 || port > 65535) {
        fprintf(stderr, "forwarder: bad port %s\n", argv[1]);
        return 2;
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) {
        perror("forwarder: socket");
        return 1;
    }
    int buffer = 4 << 20; /* as the relay's media sockets */
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof buffer);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer, sizeof buffer);
    struct sockaddr_in local = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&local, sizeof local) < 0) {
        perror("forwarder: bind");
        return 1;
    }
    socklen_t length = sizeof local;
    getsockname(fd, (struct sockaddr *)&local, &length);
    printf("port %d\n", ntohs(local.sin_port));
    fflush(stdout);

    struct sigaction action = {.sa_handler = on_signal}; /* no SA_RESTART: recvmmsg returns EINTR */
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);

    static unsigned char data[BURST][MAX_DATAGRAM];
    static struct sockaddr_in from[BURST];
    static struct iovec in_iov[BURST];
    static struct mmsghdr in[BURST];
    static struct iovec out_iov[SEND_BATCH];
    static struct mmsghdr out[SEND_BATCH];
    unsigned long long forwarded = 0, received = 0, dropped = 0;

    for (int i = 0; i < BURST; i++) {
        in_iov[i].iov_base = data[i];
        in_iov[i].iov_len = MAX_DATAGRAM;
    }
    while (!stopping) {
        for (int i = 0; i < BURST; i++) {
            memset(&in[i].msg_hdr, 0, sizeof in[i].msg_hdr);
            in[i].msg_hdr.msg_iov = &in_iov[i];
            in[i].msg_hdr.msg_iovlen = 1;
            in[i].msg_hdr.msg_name = &from[i];
            in[i].msg_hdr.msg_namelen = sizeof from[i];
        }
        int n = recvmmsg(fd, in, BURST, MSG_WAITFORONE, NULL);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("forwarder: recvmmsg");
            return 1;
        }
        int pending = 0;
        for (int i = 0; i < n; i++) {
            unsigned len = in[i].msg_len;
            unsigned char *d = data[i];
            received++;
            if (len == 12 && memcmp(d, "CFWD", 4) == 0) {
                uint32_t room, member;
                memcpy(&room, d + 4, 4);
                memcpy(&member, d + 8, 4);
                if (register_member(&from[i], ntohl(room)) == 0) {
                    unsigned char ok[8] = {'C', 'F', 'O', 'K'};
                    memcpy(ok + 4, &member, 4);
                    sendto(fd, ok, sizeof ok, 0, (struct sockaddr *)&from[i], sizeof from[i]);
                } else {
                    dropped++;
                }
                continue;
            }
            int m = len > MEDIA_HEADER + HOP_TAG ? find_member(&from[i]) : -1;
            if (m < 0) {
                dropped++;
                continue;
            }
            struct room *r = &rooms[members[m].room];
            for (int k = 0; k < r->count; k++) {
                int to = r->members[k];
                if (to == m) continue;
                if (pending == SEND_BATCH) {
                    flush(fd, out, pending, &forwarded, &dropped);
                    pending = 0;
                }
                out_iov[pending].iov_base = d + MEDIA_HEADER;
                out_iov[pending].iov_len = len - MEDIA_HEADER - HOP_TAG;
                memset(&out[pending].msg_hdr, 0, sizeof out[pending].msg_hdr);
                out[pending].msg_hdr.msg_iov = &out_iov[pending];
                out[pending].msg_hdr.msg_iovlen = 1;
                out[pending].msg_hdr.msg_name = &members[to].address;
                out[pending].msg_hdr.msg_namelen = sizeof members[to].address;
                pending++;
            }
        }
        flush(fd, out, pending, &forwarded, &dropped);
    }
    printf("forwarded %llu received %llu dropped %llu\n", forwarded, received, dropped);
    fflush(stdout);
    return 0;
}
