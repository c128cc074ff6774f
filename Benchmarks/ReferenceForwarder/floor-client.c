/*
 * The client side's floor (issue 14): what `conclave load`'s participants would cost if they
 * did nothing but their system calls, and optionally their cipher, in C.
 *
 * Each participant has a UDP socket of its own (downlink datagrams carry no session ID,
 * protocol/PROTOCOL.md 6.2, so participants cannot share one) registered with the
 * reference forwarder (forwarder.c) in a room of PER_ROOM. Every participant sends one
 * datagram every 1/FPS s on a 5 ms grid (as `LoopTicker`), and reads, on each readable
 * event of its socket, one datagram (as the client's UDP channel, `maxMessagesPerRead` 1).
 * THREADS threads each own a share of the participants, with one epoll set and one timer.
 *
 * Datagrams have the sizes the relay forwards for 160-byte audio: a 13-byte MEDIA header
 * and 16-byte hop tag (which the forwarder strips), around a 200-byte body. In mode
 * "crypto" the body is a 24-byte nonce and the XChaCha20-Poly1305 (libsodium) sealing of the
 * 160-byte frame, and every datagram received is opened; in mode "none" the body is the
 * same size and nothing is sealed or opened. There are no keys to agree, no SFrame header,
 * no replay window: a floor, not a client.
 *
 * It measures the bare seal and open of one 160-byte frame in the same run (thread CPU
 * time), so that its CPU per operation is reported as a ratio to the bare crypto, as
 * `conclave load` reports the real client's.
 *
 * Usage: floor-client PORT PARTICIPANTS PER_ROOM SECONDS MODE [THREADS [FPS [FORWARDER_PID]]]
 *   PORT           the forwarder's loopback port
 *   MODE           crypto | none
 *   FORWARDER_PID  read /proc/PID/stat over the measurement, to report the forwarder's CPU
 * It warms up for 2 s, measures for SECONDS, stops sending, drains for 300 ms, and prints
 * one JSON object. Limits: 1..8192 participants, 2..64 per room, 1..600 s, 1..8 threads,
 * 1..200 fps.
 *
 * Build: cc -O2 -pthread -o floor-client floor-client.c -lsodium
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define FRAME 160
#define HEADER 13
#define HOP_TAG 16
#define NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG crypto_aead_xchacha20poly1305_ietf_ABYTES
#define BODY (NONCE + FRAME + TAG)
#define DATAGRAM (HEADER + BODY + HOP_TAG)
#define TICK_NS 5000000ull
#define BINS 20000 /* latency histogram: 50 µs bins up to 1 s */
#define BIN_NS 50000ull
#define MAX_THREADS 8

static unsigned char key[crypto_aead_xchacha20poly1305_ietf_KEYBYTES];
static int with_crypto;
static int participants, per_room, fps, thread_count;
static struct sockaddr_in forwarder;

/* 0 warm-up, 1 measuring, 2 draining (no sends), 3 stop. */
static volatile int phase;
static uint64_t measure_start_ns;

struct worker {
    int first, count; /* participants [first, first + count) */
    int *fds;
    uint32_t *sequence;
    pthread_t thread;
    /* counted for frames sent during the measurement only */
    uint64_t sent, expected, received, failures;
    uint64_t histogram[BINS + 1];
};

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static double thread_cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int room_size(int participant) {
    int room = participant / per_room, rooms = (participants + per_room - 1) / per_room;
    return room == rooms - 1 ? participants - room * per_room : per_room;
}

/* Body: nonce (sender u32, sequence u32, zeros) then the sealed frame, whose first 8 bytes
 * are the send time and next 4 the sender. */
static void send_one(struct worker *w, int i) {
    unsigned char datagram[DATAGRAM] = {0};
    unsigned char frame[FRAME] = {0};
    unsigned char *body = datagram + HEADER;
    int p = w->first + i;
    int measuring = phase == 1; /* read before the time: a counted frame is never older than the window */
    uint64_t t = now_ns();
    uint32_t s = w->sequence[i]++;
    memcpy(frame, &t, 8);
    memcpy(frame + 8, &p, 4);
    memcpy(body, &p, 4);
    memcpy(body + 4, &s, 4);
    if (with_crypto) {
        crypto_aead_xchacha20poly1305_ietf_encrypt(body + NONCE, NULL, frame, FRAME, NULL, 0, NULL, body, key);
    } else {
        memcpy(body + NONCE, frame, FRAME);
    }
    if (send(w->fds[i], datagram, DATAGRAM, MSG_DONTWAIT) == DATAGRAM && measuring) {
        w->sent++;
        w->expected += (uint64_t)(room_size(p) - 1);
    }
}

static void receive_one(struct worker *w, int i) {
    unsigned char body[BODY + 64];
    ssize_t n = recv(w->fds[i], body, sizeof body, MSG_DONTWAIT);
    if (n != BODY) return;
    unsigned char frame[FRAME + TAG];
    const unsigned char *plain = body + NONCE;
    if (with_crypto) {
        if (crypto_aead_xchacha20poly1305_ietf_decrypt(frame, NULL, NULL, body + NONCE, FRAME + TAG, NULL, 0, body, key) != 0) {
            w->failures++;
            return;
        }
        plain = frame;
    }
    uint64_t sent_at;
    memcpy(&sent_at, plain, 8);
    if (sent_at < measure_start_ns || phase == 0) return; /* sent before the measurement */
    uint64_t latency = now_ns() - sent_at;
    uint64_t bin = latency / BIN_NS;
    w->histogram[bin < BINS ? bin : BINS]++;
    w->received++;
}

static void *run(void *argument) {
    struct worker *w = argument;
    int epoll = epoll_create1(0);
    int timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    struct itimerspec every = {.it_interval = {0, (long)TICK_NS}, .it_value = {0, (long)TICK_NS}};
    timerfd_settime(timer, 0, &every, NULL);
    struct epoll_event event = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
    epoll_ctl(epoll, EPOLL_CTL_ADD, timer, &event);
    for (int i = 0; i < w->count; i++) {
        event.data.u32 = (uint32_t)i;
        epoll_ctl(epoll, EPOLL_CTL_ADD, w->fds[i], &event);
    }
    int ticks_per_frame = (int)(1000000000ull / TICK_NS / (uint64_t)fps);
    if (ticks_per_frame < 1) ticks_per_frame = 1;
    uint64_t tick = 0;
    struct epoll_event events[256];
    while (phase != 3) {
        int n = epoll_wait(epoll, events, 256, 100);
        for (int k = 0; k < n; k++) {
            uint32_t i = events[k].data.u32;
            if (i != UINT32_MAX) {
                receive_one(w, (int)i);
                continue;
            }
            uint64_t expirations = 0;
            if (read(timer, &expirations, sizeof expirations) != sizeof expirations) continue;
            /* A late timer runs the ticks it missed as one: each participant whose phase fell
             * among them sends once. */
            uint64_t span = expirations < (uint64_t)ticks_per_frame ? expirations : (uint64_t)ticks_per_frame;
            for (uint64_t t = tick + expirations - span + 1; t <= tick + expirations; t++) {
                if (phase >= 2) break;
                for (int p = (int)(t % (uint64_t)ticks_per_frame); p < w->count; p += ticks_per_frame) send_one(w, p);
            }
            tick += expirations;
        }
    }
    close(timer);
    close(epoll);
    return NULL;
}

/* Registers a socket with the forwarder: CFWD room member, answered by CFOK member. */
static int register_participant(int fd, int p) {
    unsigned char request[12] = {'C', 'F', 'W', 'D'};
    uint32_t room = htonl((uint32_t)(p / per_room)), member = htonl((uint32_t)p);
    memcpy(request + 4, &room, 4);
    memcpy(request + 8, &member, 4);
    for (int attempt = 0; attempt < 5; attempt++) {
        send(fd, request, sizeof request, 0);
        struct pollfd readable = {.fd = fd, .events = POLLIN};
        if (poll(&readable, 1, 1000) == 1) {
            unsigned char reply[16];
            if (recv(fd, reply, sizeof reply, MSG_DONTWAIT) == 8 && memcmp(reply, "CFOK", 4) == 0) return 0;
        }
    }
    return -1;
}

static double process_cpu_seconds(long pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char text[1024];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    char *end = strrchr(text, ')'); /* the name may hold spaces */
    if (!end) return -1;
    unsigned long utime = 0, stime = 0;
    /* after ") ": state, then fields 4..13; utime and stime are fields 14 and 15 */
    if (sscanf(end + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2) return -1;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static double rusage_seconds(int user_only) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    double user = (double)u.ru_utime.tv_sec + (double)u.ru_utime.tv_usec / 1e6;
    double system = (double)u.ru_stime.tv_sec + (double)u.ru_stime.tv_usec / 1e6;
    return user_only ? user : user + system;
}

/* The bare seal and open of one frame, µs each, in thread CPU time. */
static void bare_crypto(double *seal_us, double *open_us) {
    unsigned char frame[FRAME] = {1}, sealed[FRAME + TAG], opened[FRAME], nonce[NONCE] = {0};
    const int rounds = 200000;
    double start = thread_cpu_seconds();
    for (int i = 0; i < rounds; i++) {
        memcpy(nonce, &i, sizeof i);
        crypto_aead_xchacha20poly1305_ietf_encrypt(sealed, NULL, frame, FRAME, NULL, 0, NULL, nonce, key);
    }
    double middle = thread_cpu_seconds();
    int failures = 0;
    for (int i = 0; i < rounds; i++) {
        failures += crypto_aead_xchacha20poly1305_ietf_decrypt(opened, NULL, NULL, sealed, FRAME + TAG, NULL, 0, nonce, key) != 0;
    }
    double end = thread_cpu_seconds();
    if (failures) fprintf(stderr, "floor-client: bare open failed\n");
    *seal_us = (middle - start) * 1e6 / rounds;
    *open_us = (end - middle) * 1e6 / rounds;
}

static double percentile(const uint64_t *histogram, uint64_t count, double q) {
    if (count == 0) return 0;
    uint64_t rank = (uint64_t)((double)count * q), seen = 0;
    for (int b = 0; b <= BINS; b++) {
        seen += histogram[b];
        if (seen > rank) return (double)(b + 1) * (double)BIN_NS / 1e6; /* the bin's upper edge, ms */
    }
    return (double)BINS * (double)BIN_NS / 1e6;
}

static void sleep_ns(uint64_t ns) {
    struct timespec t = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
    while (nanosleep(&t, &t) != 0 && errno == EINTR) {}
}

static int bounded(const char *text, int low, int high, const char *what) {
    char *end;
    long value = strtol(text, &end, 10);
    if (*end != 0 || value < low || value > high) {
        fprintf(stderr, "floor-client: %s must be %d...%d, not %s\n", what, low, high, text);
        exit(2);
    }
    return (int)value;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: floor-client PORT PARTICIPANTS PER_ROOM SECONDS crypto|none [THREADS [FPS [FORWARDER_PID]]]\n");
        return 2;
    }
    int port = bounded(argv[1], 1, 65535, "PORT");
    participants = bounded(argv[2], 1, 8192, "PARTICIPANTS");
    per_room = bounded(argv[3], 2, 64, "PER_ROOM");
    int seconds = bounded(argv[4], 1, 600, "SECONDS");
    if (strcmp(argv[5], "crypto") != 0 && strcmp(argv[5], "none") != 0) {
        fprintf(stderr, "floor-client: MODE must be crypto or none, not %s\n", argv[5]);
        return 2;
    }
    with_crypto = strcmp(argv[5], "crypto") == 0;
    thread_count = argc > 6 ? bounded(argv[6], 1, MAX_THREADS, "THREADS") : 2;
    fps = argc > 7 ? bounded(argv[7], 1, 200, "FPS") : 50;
    long forwarder_pid = argc > 8 ? bounded(argv[8], 1, 1 << 30, "FORWARDER_PID") : 0;
    if (sodium_init() < 0) {
        fprintf(stderr, "floor-client: libsodium failed to initialise\n");
        return 1;
    }
    randombytes_buf(key, sizeof key);
    forwarder.sin_family = AF_INET;
    forwarder.sin_port = htons((uint16_t)port);
    forwarder.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    static struct worker workers[MAX_THREADS];
    int *fds = calloc((size_t)participants, sizeof *fds);
    uint32_t *sequences = calloc((size_t)participants, sizeof *sequences);
    if (!fds || !sequences) return 1;
    for (int p = 0; p < participants; p++) {
        fds[p] = socket(AF_INET, SOCK_DGRAM, 0);
        if (fds[p] < 0 || connect(fds[p], (struct sockaddr *)&forwarder, sizeof forwarder) != 0) {
            perror("floor-client: socket");
            return 1;
        }
        if (register_participant(fds[p], p) != 0) {
            fprintf(stderr, "floor-client: participant %d was not registered by the forwarder on port %d\n", p, port);
            return 1;
        }
    }
    /* Rooms stay within one thread: a thread owns whole rooms where it can. */
    int rooms = (participants + per_room - 1) / per_room;
    for (int t = 0, room = 0; t < thread_count; t++) {
        int share = (rooms - room) / (thread_count - t);
        int first = room * per_room, last = (room + share) * per_room;
        if (last > participants) last = participants;
        workers[t].first = first;
        workers[t].count = last - first;
        workers[t].fds = fds + first;
        workers[t].sequence = sequences + first;
        room += share;
    }
    for (int t = 0; t < thread_count; t++) pthread_create(&workers[t].thread, NULL, run, &workers[t]);

    sleep_ns(2000000000ull);
    double cpu_start = rusage_seconds(0), user_start = rusage_seconds(1);
    double forwarder_start = forwarder_pid ? process_cpu_seconds(forwarder_pid) : -1;
    measure_start_ns = now_ns();
    __atomic_store_n(&phase, 1, __ATOMIC_SEQ_CST);
    sleep_ns((uint64_t)seconds * 1000000000ull);
    __atomic_store_n(&phase, 2, __ATOMIC_SEQ_CST);
    double elapsed = (double)(now_ns() - measure_start_ns) / 1e9;
    double cpu = rusage_seconds(0) - cpu_start, user = rusage_seconds(1) - user_start;
    double forwarder_cpu = forwarder_pid ? process_cpu_seconds(forwarder_pid) - forwarder_start : -1;
    sleep_ns(300000000ull);
    __atomic_store_n(&phase, 3, __ATOMIC_SEQ_CST);
    for (int t = 0; t < thread_count; t++) pthread_join(workers[t].thread, NULL);

    uint64_t sent = 0, expected = 0, received = 0, failures = 0;
    static uint64_t histogram[BINS + 1];
    for (int t = 0; t < thread_count; t++) {
        sent += workers[t].sent;
        expected += workers[t].expected;
        received += workers[t].received;
        failures += workers[t].failures;
        for (int b = 0; b <= BINS; b++) histogram[b] += workers[t].histogram[b];
    }
    double seal_us, open_us;
    bare_crypto(&seal_us, &open_us);
    /* Operations during the window: the sends counted, and the receives of frames sent in
     * it (a close estimate of the receives made in it). */
    double operations = (double)(sent + received);
    double us_per_operation = operations > 0 ? cpu * 1e6 / operations : 0;
    double bare_per_operation = (seal_us * (double)sent + open_us * (double)received) / (operations > 0 ? operations : 1);
    double loss = expected > 0 ? 100.0 * (double)(expected > received ? expected - received : 0) / (double)expected : 0;
    printf("{\"mode\": \"%s\", \"participants\": %d, \"per_room\": %d, \"fps\": %d, \"threads\": %d, \"seconds\": %.3f,\n",
        with_crypto ? "crypto" : "none", participants, per_room, fps, thread_count, elapsed);
    printf(" \"sent\": %llu, \"expected\": %llu, \"received\": %llu, \"loss_percent\": %.4f, \"open_failures\": %llu,\n",
        (unsigned long long)sent, (unsigned long long)expected, (unsigned long long)received, loss, (unsigned long long)failures);
    printf(" \"p50_ms\": %.2f, \"p99_ms\": %.2f, \"p999_ms\": %.2f,\n", percentile(histogram, received, 0.5), percentile(histogram, received, 0.99),
        percentile(histogram, received, 0.999));
    printf(" \"client_cpu_percent\": %.1f, \"client_user_cpu_percent\": %.1f, \"forwarder_cpu_percent\": %.1f,\n", 100 * cpu / elapsed,
        100 * user / elapsed, forwarder_cpu >= 0 ? 100 * forwarder_cpu / elapsed : -1.0);
    printf(" \"client_us_per_operation\": %.3f, \"client_user_us_per_operation\": %.3f, \"bare_seal_us\": %.3f, \"bare_open_us\": %.3f,\n",
        us_per_operation, operations > 0 ? user * 1e6 / operations : 0, seal_us, open_us);
    printf(" \"ratio_to_bare_crypto\": %.2f}\n", bare_per_operation > 0 ? us_per_operation / bare_per_operation : 0);
    return 0;
}
