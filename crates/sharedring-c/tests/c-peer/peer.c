/* A reference peer of sharedring, written from docs/LAYOUT.md alone: it
 * does not link the Rust code or include its header. `cargo test -p
 * sharedring-c --test c_peer` compiles it with the system C compiler and
 * runs it against the Rust ends (tests/c_peer.rs). When the layout or the
 * handshake changes, this peer breaks until LAYOUT.md and this file are
 * updated together.
 *
 * Usage: peer SOCKET-PATH MODE ARGS...   (connects to SOCKET-PATH)
 *
 *   elem-send N PAUSE_EVERY PAUSE_MS   create an element ring of u64 and
 *                                      send 1..N, then mark it closed
 *   elem-recv PAUSE_EVERY PAUSE_MS     accept an element ring of u64 and
 *                                      sum it until the end
 *   msg-send N PAUSE_EVERY PAUSE_MS    create a message ring and send N
 *                                      messages (pattern below), closed
 *   msg-recv PAUSE_EVERY PAUSE_MS      accept a message ring and check
 *                                      every message until the end
 *   refuse CASE                        offer a ring with one bad field and
 *                                      print the status of the answer
 *
 * Message i has length (i * 37) % (MAX_MSG + 1) and byte j equal to
 * (i + j) & 0xff. PAUSE_EVERY > 0 sleeps PAUSE_MS after every PAUSE_EVERY
 * items, so that the other side has to sleep and be woken.
 *
 * Output, one line: "sum S count C sleeps K end closed|gone" (or "status
 * X" for refuse). Any protocol violation or a wait of more than 10 s (a
 * lost wake-up) exits with status 1 and a message. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif
#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

/* LAYOUT.md, "Header". */
enum {
    OFF_MAGIC = 0, OFF_VERSION = 8, OFF_KIND = 12, OFF_ELEM_SIZE = 16, OFF_MAX_MSG = 20,
    OFF_CAPACITY = 24, OFF_DATA_OFFSET = 32, OFF_WRITE_POS = 128, OFF_PRODUCER_CLOSED = 136,
    OFF_READ_POS = 256, OFF_CONSUMER_WAIT = 384, OFF_PRODUCER_WAIT = 388, DATA = 512,
};
#define RING_MAGIC 0x676e697264726873ULL
#define SETUP_MAGIC 0x646e616864726873ULL
#define ACK_MAGIC 0x006b636164726873ULL
#define SKIP_MARKER 0xFFFFFFFFu
#define PENDING_MARKER 0xFFFFFFFEu
#define ROLE_SENDER 1
#define ROLE_RECEIVER 2
#define MSG_CAPACITY 4096
#define MSG_MAX 200
#define ELEM_CAPACITY 1024

static void die(const char *fmt, const char *what) {
    fprintf(stderr, "c-peer: ");
    fprintf(stderr, fmt, what);
    fprintf(stderr, " (errno %d: %s)\n", errno, strerror(errno));
    exit(1);
}

/* One side of a ring, as LAYOUT.md's "Creating, and the starting values"
 * lists its private state. */
struct ring {
    uint8_t *base;
    uint64_t len, capacity;
    uint32_t kind, elem_size, max_msg;
    int producer; /* 1: we produce; 0: we consume */
    int sock, own_fd, peer_fd; /* own_fd: the eventfd we sleep on */
    uint64_t pos;    /* our position */
    uint64_t cached; /* the peer's position as last loaded */
    uint32_t s;          /* announcement counter, starts at 0 */
    uint32_t last_woken; /* starts at 0 */
    unsigned sleeps;
};

static _Atomic uint64_t *u64_at(struct ring *r, uint64_t off) { return (_Atomic uint64_t *)(r->base + off); }
static _Atomic uint32_t *u32_at(struct ring *r, uint64_t off) { return (_Atomic uint32_t *)(r->base + off); }
static _Atomic uint32_t *own_wait(struct ring *r) { return u32_at(r, r->producer ? OFF_PRODUCER_WAIT : OFF_CONSUMER_WAIT); }
static _Atomic uint32_t *peer_wait(struct ring *r) { return u32_at(r, r->producer ? OFF_CONSUMER_WAIT : OFF_PRODUCER_WAIT); }

static uint64_t fnv1a(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ULL;
    return h;
}

/* ---- Wake-ups (LAYOUT.md, "Wake-ups") ---------------------------------- */

/* Waker: after every publication or release. */
static void wake_peer(struct ring *r) {
    atomic_thread_fence(memory_order_seq_cst);
    uint32_t w = atomic_load_explicit(peer_wait(r), memory_order_relaxed);
    if ((w & 1) && w != r->last_woken) {
        r->last_woken = w;
        fcntl(r->peer_fd, F_SETFL, O_NONBLOCK);
        uint64_t one = 1;
        if (write(r->peer_fd, &one, 8) != 8 && errno != EAGAIN) die("%s", "write(eventfd)");
    }
}

/* Sleeper: announce, fence, re-check, poll, read, withdraw. Returns 1 when
 * ready or woken (look again), 0 when the liveness socket says the peer is
 * gone. */
static int sleep_until(struct ring *r, int (*ready)(struct ring *, uint64_t), uint64_t want) {
    r->s += 1;
    atomic_store_explicit(own_wait(r), (r->s << 1) | 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    if (ready(r, want)) {
        atomic_store_explicit(own_wait(r), r->s << 1, memory_order_relaxed);
        return 1;
    }
    struct pollfd p[2] = {{.fd = r->own_fd, .events = POLLIN}, {.fd = r->sock, .events = POLLIN}};
    int n;
    do n = poll(p, 2, 10000); while (n < 0 && errno == EINTR);
    if (n < 0) die("%s", "poll");
    if (n == 0) die("%s", "nothing for 10 s: a lost wake-up");
    r->sleeps++;
    int woken = p[0].revents != 0;
    if (woken) {
        uint64_t v;
        if (read(r->own_fd, &v, 8) < 0 && errno != EAGAIN) die("%s", "read(eventfd)");
    }
    atomic_store_explicit(own_wait(r), r->s << 1, memory_order_relaxed);
    return woken || p[1].revents == 0;
}

static void pause_maybe(uint64_t done, uint64_t every, uint64_t ms) {
    if (every && done % every == 0) {
        struct timespec t = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
        nanosleep(&t, NULL);
    }
}

/* ---- Positions (LAYOUT.md, the "Producing" and "Consuming" sections) --- */

/* Producer: free room, refreshing the cached read position only when the
 * cache says too little. */
static uint64_t free_room(struct ring *r, uint64_t want) {
    uint64_t free = r->capacity - (r->pos - r->cached);
    if (free >= want) return free;
    uint64_t rp = atomic_load_explicit(u64_at(r, OFF_READ_POS), memory_order_acquire);
    if (rp - r->cached > r->pos - r->cached) die("%s", "corrupt read_pos");
    r->cached = rp;
    return r->capacity - (r->pos - r->cached);
}

static int room_ready(struct ring *r, uint64_t want) { return free_room(r, want) >= want; }

/* Kind 1 consumer: available elements, refreshing the cache if empty. */
static uint64_t available(struct ring *r) {
    uint64_t avail = r->cached - r->pos;
    if (avail) return avail;
    uint64_t wp = atomic_load_explicit(u64_at(r, OFF_WRITE_POS), memory_order_acquire);
    if (wp - r->pos < r->cached - r->pos || wp - r->pos > r->capacity) die("%s", "corrupt write_pos");
    r->cached = wp;
    return r->cached - r->pos;
}

static int closed(struct ring *r) {
    return atomic_load_explicit(u32_at(r, OFF_PRODUCER_CLOSED), memory_order_acquire) != 0;
}

/* The consumer's re-check after announcing: data, or the end of the
 * stream (LAYOUT.md, "End of stream"). */
static int data_ready(struct ring *r, uint64_t unused) { (void)unused; return available(r) > 0 || closed(r); }

/* ---- Message records (LAYOUT.md, "Message rings") ---------------------- */

static uint32_t tag(uint64_t p) { return (uint32_t)(p / 8); }
static uint64_t word(uint64_t p, uint32_t len) { return ((uint64_t)tag(p) << 32) | len; }
static uint64_t roundup8(uint64_t n) { return (n + 7) & ~7ULL; }
static _Atomic uint64_t *record_word(struct ring *r, uint64_t p) { return u64_at(r, DATA + (p & (r->capacity - 1))); }

/* Consumer: the next record; 0 if nothing yet, 1 with *at, *len, *advance. */
static int next_record(struct ring *r, uint64_t *at, uint32_t *len, uint64_t *advance) {
    uint64_t index = r->pos & (r->capacity - 1);
    uint64_t h = atomic_load_explicit(record_word(r, r->pos), memory_order_acquire);
    uint32_t t = (uint32_t)(h >> 32), n = (uint32_t)h;
    if (t == tag(r->pos - r->capacity) || h == word(r->pos, PENDING_MARKER)) return 0;
    if (t != tag(r->pos)) die("%s", "corrupt record sequence");
    uint64_t skip = 0, where = index;
    if (n == SKIP_MARKER) {
        if (index == 0) die("%s", "skip marker at offset 0");
        skip = r->capacity - index;
        uint64_t h2 = atomic_load_explicit(u64_at(r, DATA), memory_order_acquire);
        if ((uint32_t)(h2 >> 32) != tag(r->pos + skip)) die("%s", "corrupt record sequence after a skip");
        n = (uint32_t)h2;
        where = 0;
    }
    uint64_t room = (r->capacity - where - 8) & ~7ULL;
    uint64_t max = room < r->max_msg ? room : r->max_msg;
    if (n > max) die("%s", "corrupt record length");
    *at = where;
    *len = n;
    *advance = skip + 8 + roundup8(n);
    return 1;
}

static int record_ready(struct ring *r, uint64_t unused) {
    uint64_t at, adv;
    uint32_t len;
    (void)unused;
    return next_record(r, &at, &len, &adv) || closed(r);
}

/* Producer: one record of `len` bytes, pattern of message `i`. Returns 0
 * if there is no room now. */
static int put_record(struct ring *r, uint64_t i, uint32_t len) {
    uint64_t size = 8 + roundup8(len), index = r->pos & (r->capacity - 1), to_end = r->capacity - index;
    int skip = size > to_end;
    uint64_t p = skip ? r->pos + to_end : r->pos, need = skip ? to_end + size : size;
    if (free_room(r, need) < need) return 0;
    uint8_t *payload = r->base + DATA + (p & (r->capacity - 1)) + 8;
    for (uint32_t j = 0; j < len; j++) payload[j] = (uint8_t)(i + j);
    uint64_t e = p + size;
    if (e - r->cached != r->capacity)
        atomic_store_explicit(record_word(r, e), word(e, PENDING_MARKER), memory_order_relaxed);
    atomic_store_explicit(record_word(r, p), word(p, len), memory_order_release);
    if (skip) atomic_store_explicit(record_word(r, r->pos), word(r->pos, SKIP_MARKER), memory_order_release);
    r->pos += need;
    atomic_store_explicit(u64_at(r, OFF_WRITE_POS), r->pos, memory_order_release);
    wake_peer(r);
    return 1;
}

static uint32_t msg_len(uint64_t i) { return (uint32_t)((i * 37) % (MSG_MAX + 1)); }

/* ---- The handshake (LAYOUT.md, "Handshake over a Unix socket") --------- */

struct setup {
    uint64_t magic;
    uint32_t version, kind, creator, elem_size;
    uint64_t capacity, region_len;
    uint32_t flags, max_msg, elem_align, zero;
    uint64_t type_tag;
};
_Static_assert(sizeof(struct setup) == 64, "the setup message is 64 bytes");

static int connect_to(const char *path) {
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strncpy(a.sun_path, path, sizeof a.sun_path - 1);
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) < 0) die("connect %s", path);
    return s;
}

static int new_memfd(void) {
    int fd = memfd_create("c-peer", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL);
    if (fd < 0 && errno == EINVAL) fd = memfd_create("c-peer", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) die("%s", "memfd_create");
    return fd;
}

static void send_setup(int sock, const void *msg, size_t len, const int *fds, int nfds) {
    char control[CMSG_SPACE(sizeof(int) * 4)];
    memset(control, 0, sizeof control);
    struct iovec iov = {.iov_base = (void *)msg, .iov_len = len};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds) {
        m.msg_control = control;
        m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    if (sendmsg(sock, &m, MSG_NOSIGNAL) != (ssize_t)len) die("%s", "sendmsg(setup)");
}

/* Reads the 16-byte answer; returns its status. */
static uint32_t read_ack(int sock) {
    uint8_t b[16];
    size_t got = 0;
    while (got < 16) {
        ssize_t n = recv(sock, b + got, 16 - got, 0);
        if (n <= 0) die("%s", "no answer to the setup message");
        got += (size_t)n;
    }
    uint64_t magic;
    uint32_t status;
    memcpy(&magic, b, 8);
    memcpy(&status, b + 8, 4);
    if (magic != ACK_MAGIC) die("%s", "the answer has another magic");
    return status;
}

/* The creator's part: memfd, seals, header, eventfds (LAYOUT.md, "What
 * the creator makes"), and the setup message. */
static void create_ring(struct ring *r, int sock, uint32_t kind, int producer) {
    r->sock = sock;
    r->kind = kind;
    r->producer = producer;
    r->elem_size = kind == 1 ? 8 : 1;
    r->capacity = kind == 1 ? ELEM_CAPACITY : MSG_CAPACITY;
    r->max_msg = kind == 1 ? 0 : MSG_MAX;
    r->len = DATA + r->capacity * r->elem_size;
    int memfd = new_memfd();
    if (ftruncate(memfd, (off_t)r->len) < 0) die("%s", "ftruncate");
    r->base = mmap(NULL, r->len, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (r->base == MAP_FAILED) die("%s", "mmap");
    if (fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) die("%s", "F_ADD_SEALS");
    /* The header: a fresh memfd is zero; the fields, then the magic. */
    atomic_store_explicit(u64_at(r, OFF_CAPACITY), r->capacity, memory_order_relaxed);
    atomic_store_explicit(u64_at(r, OFF_DATA_OFFSET), DATA, memory_order_relaxed);
    atomic_store_explicit(u32_at(r, OFF_ELEM_SIZE), r->elem_size, memory_order_relaxed);
    atomic_store_explicit(u32_at(r, OFF_MAX_MSG), r->max_msg, memory_order_relaxed);
    atomic_store_explicit(u32_at(r, OFF_KIND), kind, memory_order_relaxed);
    atomic_store_explicit(u32_at(r, OFF_VERSION), 2, memory_order_relaxed);
    if (kind == 2) atomic_store_explicit(record_word(r, 0), word(0, PENDING_MARKER), memory_order_relaxed);
    atomic_store_explicit(u64_at(r, OFF_MAGIC), RING_MAGIC, memory_order_release);
    int data = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), room = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (data < 0 || room < 0) die("%s", "eventfd");
    r->own_fd = producer ? room : data;
    r->peer_fd = producer ? data : room;
    struct setup s = {
        .magic = SETUP_MAGIC, .version = 2, .kind = kind,
        .creator = producer ? ROLE_SENDER : ROLE_RECEIVER, .elem_size = r->elem_size,
        .capacity = r->capacity, .region_len = r->len, .max_msg = r->max_msg,
        .elem_align = kind == 1 ? 8 : 1, .type_tag = kind == 1 ? fnv1a("u64") : 0,
    };
    int fds[3] = {memfd, data, room};
    send_setup(sock, &s, sizeof s, fds, 3);
    close(memfd);
    uint32_t status = read_ack(sock);
    if (status != 0) {
        fprintf(stderr, "c-peer: the Rust side refused our ring with status %u\n", status);
        exit(1);
    }
}

/* The acceptor's part, with the checks a careful peer makes. */
static void accept_ring(struct ring *r, int sock, uint32_t kind, int producer) {
    uint8_t b[64];
    int fds[3] = {-1, -1, -1}, nfds = 0;
    size_t got = 0;
    while (got < 64) {
        char control[CMSG_SPACE(sizeof(int) * 3)];
        struct iovec iov = {.iov_base = b + got, .iov_len = 64 - got};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
        ssize_t n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
        if (n <= 0) die("%s", "no setup message");
        if (m.msg_flags & MSG_CTRUNC) die("%s", "descriptors truncated");
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
                if (nfds + k > 3) die("%s", "too many descriptors");
                memcpy(fds + nfds, CMSG_DATA(c), sizeof(int) * (size_t)k);
                nfds += k;
            }
        }
        got += (size_t)n;
    }
    struct setup s;
    memcpy(&s, b, 64);
    uint32_t want_creator = producer ? ROLE_RECEIVER : ROLE_SENDER;
    uint32_t esize = kind == 1 ? 8 : 1;
    if (s.magic != SETUP_MAGIC || s.version != 2 || s.kind != kind) die("%s", "bad setup message");
    if (nfds != 3) die("%s", "not three descriptors");
    if (s.creator != want_creator || s.elem_size != esize || s.elem_align != (kind == 1 ? 8u : 1u) ||
        s.type_tag != (kind == 1 ? fnv1a("u64") : 0))
        die("%s", "mismatched ends");
    if (s.capacity == 0 || (s.capacity & (s.capacity - 1)) || s.capacity > (1ULL << 30)) die("%s", "bad capacity");
    if (kind == 2 && (s.capacity < 16 || s.max_msg > s.capacity / 2 - 8)) die("%s", "bad max_msg");
    if (s.region_len != DATA + s.capacity * esize) die("%s", "bad region length");
    r->sock = sock;
    r->kind = kind;
    r->producer = producer;
    r->elem_size = esize;
    r->capacity = s.capacity;
    r->max_msg = kind == 2 ? s.max_msg : 0;
    r->len = s.region_len;
    /* The memfd: seal it against shrinking first, then the size is a
     * minimum; map exactly our length. */
    int seals = fcntl(fds[0], F_GET_SEALS);
    if (seals < 0 || (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE))) die("%s", "not a writable memfd");
    if ((seals & (F_SEAL_SHRINK | F_SEAL_SEAL)) != (F_SEAL_SHRINK | F_SEAL_SEAL) &&
        fcntl(fds[0], F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_SEAL) < 0)
        die("%s", "cannot seal the memfd");
    struct stat st;
    if (fstat(fds[0], &st) < 0 || (uint64_t)st.st_size < r->len) die("%s", "memfd too small");
    r->base = mmap(NULL, r->len, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);
    if (r->base == MAP_FAILED) die("%s", "mmap");
    close(fds[0]);
    /* The ring header (LAYOUT.md, "Attaching"), each field loaded once. */
    if (atomic_load_explicit(u64_at(r, OFF_MAGIC), memory_order_acquire) != RING_MAGIC ||
        atomic_load_explicit(u32_at(r, OFF_VERSION), memory_order_relaxed) != 2 ||
        atomic_load_explicit(u32_at(r, OFF_KIND), memory_order_relaxed) != kind ||
        atomic_load_explicit(u32_at(r, OFF_ELEM_SIZE), memory_order_relaxed) != esize ||
        atomic_load_explicit(u64_at(r, OFF_CAPACITY), memory_order_relaxed) != r->capacity ||
        atomic_load_explicit(u64_at(r, OFF_DATA_OFFSET), memory_order_relaxed) != DATA ||
        (kind == 2 && atomic_load_explicit(u32_at(r, OFF_MAX_MSG), memory_order_relaxed) != r->max_msg))
        die("%s", "bad ring header");
    uint64_t wp = atomic_load_explicit(u64_at(r, OFF_WRITE_POS), memory_order_acquire);
    uint64_t rp = atomic_load_explicit(u64_at(r, OFF_READ_POS), memory_order_acquire);
    if (wp - rp > r->capacity) die("%s", "bad positions");
    r->pos = producer ? wp : rp;
    r->cached = producer ? rp : wp;
    if (kind == 2 && r->pos % 8) die("%s", "unaligned position");
    r->own_fd = producer ? fds[2] : fds[1];
    r->peer_fd = producer ? fds[1] : fds[2];
    uint8_t ack[16] = {0};
    uint64_t magic = ACK_MAGIC;
    memcpy(ack, &magic, 8);
    if (send(sock, ack, 16, MSG_NOSIGNAL) != 16) die("%s", "send(ack)");
}

/* ---- The modes ---------------------------------------------------------- */

/* Producer: the end of the stream (LAYOUT.md, "End of stream"). */
static void close_stream(struct ring *r) {
    atomic_store_explicit(u32_at(r, OFF_PRODUCER_CLOSED), 1, memory_order_release);
    wake_peer(r);
}

static void report(struct ring *r, uint64_t sum, uint64_t count, const char *end) {
    printf("sum %llu count %llu sleeps %u end %s\n", (unsigned long long)sum, (unsigned long long)count,
           r->sleeps, end);
}

static int elem_send(int sock, uint64_t n, uint64_t every, uint64_t ms) {
    struct ring r = {0};
    create_ring(&r, sock, 1, 1);
    uint64_t v = 1;
    while (v <= n) {
        uint64_t free = free_room(&r, 1);
        if (free == 0) {
            if (!sleep_until(&r, room_ready, 1)) die("%s", "the receiver is gone");
            continue;
        }
        uint64_t k = 0;
        while (k < free && v <= n) {
            uint64_t slot = (r.pos + k) & (r.capacity - 1);
            memcpy(r.base + DATA + slot * 8, &v, 8);
            k++;
            if (every && v % every == 0) { v++; break; }
            v++;
        }
        r.pos += k;
        atomic_store_explicit(u64_at(&r, OFF_WRITE_POS), r.pos, memory_order_release);
        wake_peer(&r);
        pause_maybe(v - 1, every, ms);
    }
    close_stream(&r);
    report(&r, n * (n + 1) / 2, n, "closed");
    return 0;
}

static int elem_recv(int sock, uint64_t every, uint64_t ms) {
    struct ring r = {0};
    accept_ring(&r, sock, 1, 0);
    uint64_t sum = 0, count = 0;
    const char *end;
    for (;;) {
        uint64_t avail = available(&r);
        if (avail) {
            if (every && avail > every) avail = every;
            for (uint64_t k = 0; k < avail; k++) {
                uint64_t v;
                memcpy(&v, r.base + DATA + ((r.pos + k) & (r.capacity - 1)) * 8, 8);
                sum += v;
            }
            r.pos += avail;
            count += avail;
            atomic_store_explicit(u64_at(&r, OFF_READ_POS), r.pos, memory_order_release);
            wake_peer(&r);
            if (every) pause_maybe(0, 1, ms);
            continue;
        }
        if (closed(&r)) {
            if (available(&r)) continue;
            end = "closed";
            break;
        }
        if (!sleep_until(&r, data_ready, 0)) {
            if (available(&r)) continue; /* drain what it sent before it went */
            end = "gone";
            break;
        }
    }
    report(&r, sum, count, end);
    return 0;
}

static int msg_send(int sock, uint64_t n, uint64_t every, uint64_t ms) {
    struct ring r = {0};
    create_ring(&r, sock, 2, 1);
    uint64_t bytes = 0;
    for (uint64_t i = 0; i < n;) {
        uint32_t len = msg_len(i);
        if (!put_record(&r, i, len)) {
            /* Room for the record, and for the skip before it if it does
             * not fit before the ring's end (put_record's own rule). */
            uint64_t size = 8 + roundup8(len), to_end = r.capacity - (r.pos & (r.capacity - 1));
            uint64_t need = size > to_end ? to_end + size : size;
            if (!sleep_until(&r, room_ready, need)) die("%s", "the receiver is gone");
            continue;
        }
        bytes += len;
        i++;
        pause_maybe(i, every, ms);
    }
    close_stream(&r);
    report(&r, bytes, n, "closed");
    return 0;
}

static int msg_recv(int sock, uint64_t every, uint64_t ms) {
    struct ring r = {0};
    accept_ring(&r, sock, 2, 0);
    uint64_t count = 0, bytes = 0;
    const char *end;
    for (;;) {
        uint64_t at, adv;
        uint32_t len;
        if (next_record(&r, &at, &len, &adv)) {
            const uint8_t *p = r.base + DATA + at + 8;
            if (len != msg_len(count)) die("%s", "a message of the wrong length");
            for (uint32_t j = 0; j < len; j++)
                if (p[j] != (uint8_t)(count + j)) die("%s", "a wrong byte");
            r.pos += adv;
            atomic_store_explicit(u64_at(&r, OFF_READ_POS), r.pos, memory_order_release);
            wake_peer(&r); /* mandatory: the producer may wait for room */
            count++;
            bytes += len;
            pause_maybe(count, every, ms);
            continue;
        }
        if (closed(&r)) {
            if (next_record(&r, &at, &len, &adv)) continue;
            end = "closed";
            break;
        }
        if (!sleep_until(&r, record_ready, 0)) {
            if (next_record(&r, &at, &len, &adv)) continue;
            end = "gone";
            break;
        }
    }
    report(&r, bytes, count, end);
    return 0;
}

/* ---- Refusals: a ring offer with one bad field ------------------------- */

static int refuse(int sock, const char *c) {
    /* A valid ring first (kind 2 for the message cases, else kind 1), made
     * as the creator makes it, then one thing broken. */
    int msg = strncmp(c, "msg-", 4) == 0;
    uint32_t kind = msg ? 2 : 1, esize = msg ? 1 : 8;
    uint64_t capacity = msg ? MSG_CAPACITY : ELEM_CAPACITY, len = DATA + capacity * esize;
    int memfd = new_memfd();
    uint64_t file_len = strcmp(c, "memfd-small") == 0 ? len - 8 : strcmp(c, "memfd-page") == 0 ? 3 * 4096 : len;
    if (ftruncate(memfd, (off_t)file_len) < 0) die("%s", "ftruncate");
    if (strcmp(c, "memfd-write-sealed") != 0) {
        struct ring r = {0};
        r.base = mmap(NULL, file_len, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
        if (r.base == MAP_FAILED) die("%s", "mmap");
        r.capacity = capacity;
        if (file_len >= DATA) {
            atomic_store_explicit(u64_at(&r, OFF_CAPACITY), capacity, memory_order_relaxed);
            atomic_store_explicit(u64_at(&r, OFF_DATA_OFFSET), strcmp(c, "ring-data-offset") == 0 ? 1024 : DATA, memory_order_relaxed);
            atomic_store_explicit(u32_at(&r, OFF_ELEM_SIZE), esize, memory_order_relaxed);
            atomic_store_explicit(u32_at(&r, OFF_MAX_MSG), msg ? MSG_MAX : 0, memory_order_relaxed);
            atomic_store_explicit(u32_at(&r, OFF_KIND), kind, memory_order_relaxed);
            atomic_store_explicit(u32_at(&r, OFF_VERSION), 2, memory_order_relaxed);
            if (msg) atomic_store_explicit(record_word(&r, 0), word(0, PENDING_MARKER), memory_order_relaxed);
            atomic_store_explicit(u64_at(&r, OFF_MAGIC), strcmp(c, "ring-magic") == 0 ? 1 : RING_MAGIC, memory_order_release);
        }
        munmap(r.base, file_len);
    } else if (fcntl(memfd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE) < 0) {
        die("%s", "F_SEAL_FUTURE_WRITE");
    }
    if (fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) die("%s", "F_ADD_SEALS");
    int data = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | (strcmp(c, "eventfd-semaphore") == 0 ? EFD_SEMAPHORE : 0));
    int room = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (strcmp(c, "eventfd-pipe") == 0) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0) die("%s", "pipe");
        room = p[0];
    }
    if (strcmp(c, "memfd-pipe") == 0) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0) die("%s", "pipe");
        memfd = p[0];
    }
    struct setup s = {
        .magic = SETUP_MAGIC, .version = 2, .kind = kind, .creator = ROLE_SENDER, .elem_size = esize,
        .capacity = capacity, .region_len = len, .max_msg = msg ? MSG_MAX : 0,
        .elem_align = msg ? 1 : 8, .type_tag = msg ? 0 : fnv1a("u64"),
    };
    if (!strcmp(c, "magic")) s.magic ^= 1;
    else if (!strcmp(c, "version")) s.version = 3;
    else if (!strcmp(c, "kind")) s.kind = 2;
    else if (!strcmp(c, "role-same")) s.creator = ROLE_RECEIVER;
    else if (!strcmp(c, "role-unknown")) s.creator = 7;
    else if (!strcmp(c, "elem-size")) s.elem_size = 4;
    else if (!strcmp(c, "elem-align")) s.elem_align = 4;
    else if (!strcmp(c, "type-tag")) s.type_tag = fnv1a("f64");
    else if (!strcmp(c, "capacity")) { s.capacity = 1000; s.region_len = DATA + 1000 * 8; }
    else if (!strcmp(c, "capacity-limit")) { s.capacity = 1ULL << 40; s.region_len = DATA + (1ULL << 43); }
    else if (!strcmp(c, "region-len")) s.region_len += 8;
    else if (!strcmp(c, "msg-max-msg")) s.max_msg = MSG_CAPACITY / 2;
    else if (!strcmp(c, "msg-elem-size")) s.elem_size = 2;
    else if (!strcmp(c, "msg-type-tag")) s.type_tag = 1;
    else if (!strcmp(c, "msg-capacity")) { s.capacity = 8; s.region_len = DATA + 8; }
    int fds[3] = {memfd, data, room};
    if (!strcmp(c, "short")) {
        send_setup(sock, &s, 40, fds, 3);
        shutdown(sock, SHUT_WR);
    } else {
        send_setup(sock, &s, sizeof s, fds, !strcmp(c, "descriptors") ? 2 : 3);
    }
    printf("status %u\n", read_ack(sock));
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 3) {
        fprintf(stderr, "usage: peer SOCKET-PATH MODE ARGS...\n");
        return 2;
    }
    int sock = connect_to(argv[1]);
    const char *mode = argv[2];
    uint64_t a[3] = {0, 0, 0};
    for (int i = 3; i < argc && i < 6; i++) a[i - 3] = strtoull(argv[i], NULL, 10);
    if (!strcmp(mode, "elem-send")) return elem_send(sock, a[0], a[1], a[2]);
    if (!strcmp(mode, "elem-recv")) return elem_recv(sock, a[0], a[1]);
    if (!strcmp(mode, "msg-send")) return msg_send(sock, a[0], a[1], a[2]);
    if (!strcmp(mode, "msg-recv")) return msg_recv(sock, a[0], a[1]);
    if (!strcmp(mode, "refuse") && argc == 4) return refuse(sock, argv[3]);
    fprintf(stderr, "c-peer: unknown mode %s\n", mode);
    return 2;
}
