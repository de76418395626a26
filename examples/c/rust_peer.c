/* A C program talking to a Rust program (examples/c_partner.rs), both
 * ring kinds, both directions:
 *
 *  1. C creates an element ring of uint64_t and streams 1..N into it; the
 *     Rust partner accepts it and sums what it receives.
 *  2. The Rust partner creates a message ring; C accepts it, and receives
 *     the sum as a message, then a stream of text messages, until the
 *     partner closes its stream.
 *
 * Usage: rust_peer PATH-TO-c_partner (cargo xtask c-examples runs it), or
 * rust_peer --connect SOCKET-PATH to connect twice to a Rust program that
 * plays the partner's part (the tests do). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sharedring.h"

#define N 1000000ULL

static int talk(int elems, int msgs, pid_t child);

static int fail(const char *what, int rc) {
    fprintf(stderr, "rust_peer: %s: %s: %s\n", what, sharedring_strerror(rc), sharedring_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--connect") == 0) {
        int e, m, rc;
        if ((rc = sharedring_connect(argv[2], &e)) != SHAREDRING_OK ||
            (rc = sharedring_connect(argv[2], &m)) != SHAREDRING_OK)
            return fail("connect", rc);
        return talk(e, m, -1);
    }
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH-TO-c_partner | --connect SOCKET-PATH\n", argv[0]);
        return 2;
    }
    int elems[2], msgs[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, elems) || socketpair(AF_UNIX, SOCK_STREAM, 0, msgs)) {
        perror("socketpair");
        return 1;
    }
    pid_t child = fork();
    if (child < 0) {
        perror("fork");
        return 1;
    }
    if (child == 0) {
        char a[16], b[16];
        close(elems[0]);
        close(msgs[0]);
        snprintf(a, sizeof a, "%d", elems[1]);
        snprintf(b, sizeof b, "%d", msgs[1]);
        execl(argv[1], argv[1], a, b, (char *)NULL);
        perror("exec c_partner");
        _exit(127);
    }
    close(elems[1]);
    close(msgs[1]);
    return talk(elems[0], msgs[0], child);
}

/* Both rings over the two sockets; then waits for `child` (if any). */
static int talk(int elems, int msgs, pid_t child) {
    /* 1. An element ring of uint64_t, created here. */
    sharedring_options opts = {0};
    opts.capacity = 4096; /* elements */
    sharedring_sender *tx;
    int rc = sharedring_sender_create(elems, SHAREDRING_ELEM_U64, &opts, &tx);
    if (rc != SHAREDRING_OK) return fail("create the element ring", rc);
    uint64_t batch[512];
    for (uint64_t next = 1; next <= N;) {
        size_t n = 0;
        while (n < 512 && next <= N) batch[n++] = next++;
        rc = sharedring_sender_send(tx, batch, n, -1, NULL);
        if (rc != SHAREDRING_OK) return fail("send", rc);
    }
    rc = sharedring_sender_close(tx);
    if (rc != SHAREDRING_OK) return fail("close", rc);

    /* 2. A message ring, created by the Rust partner. */
    sharedring_msg_receiver *rx;
    rc = sharedring_msg_receiver_accept(msgs, NULL, &rx);
    if (rc != SHAREDRING_OK) return fail("accept the message ring", rc);
    char buf[256];
    size_t len;
    rc = sharedring_msg_receiver_recv(rx, buf, sizeof buf, -1, &len);
    if (rc != SHAREDRING_OK) return fail("recv the sum", rc);
    uint64_t sum;
    if (len != sizeof sum) {
        fprintf(stderr, "rust_peer: the sum message has %zu bytes\n", len);
        return 1;
    }
    memcpy(&sum, buf, sizeof sum);
    if (sum != N * (N + 1) / 2) {
        fprintf(stderr, "rust_peer: the partner summed %llu, expected %llu\n",
                (unsigned long long)sum, N * (N + 1) / 2);
        return 1;
    }
    size_t lines = 0;
    for (;;) {
        /* In place: the record stays in the ring until released. */
        const uint8_t *p;
        rc = sharedring_msg_receiver_read(rx, &p, &len);
        if (rc == SHAREDRING_AGAIN) {
            rc = sharedring_msg_receiver_wait_data(rx, -1);
            if (rc == SHAREDRING_OK) continue;
        }
        if (rc == SHAREDRING_ERR_CLOSED) break;
        if (rc != SHAREDRING_OK) return fail("read", rc);
        char expect[64];
        int n = snprintf(expect, sizeof expect, "line %zu from Rust", lines);
        if (len != (size_t)n || memcmp(p, expect, len) != 0) {
            fprintf(stderr, "rust_peer: message %zu is wrong\n", lines);
            return 1;
        }
        rc = sharedring_msg_receiver_release(rx);
        if (rc != SHAREDRING_OK) return fail("release", rc);
        lines++;
    }
    sharedring_msg_receiver_free(rx);
    int status;
    if (child > 0 &&
        (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
        fprintf(stderr, "rust_peer: the Rust partner failed\n");
        return 1;
    }
    printf("rust_peer: Rust summed 1..%llu to %llu; received %zu messages in place, then the end of stream\n",
           N, (unsigned long long)sum, lines);
    return 0;
}
