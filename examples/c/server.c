/* A C server: binds a listener, takes one client, creates a message ring
 * for it and receives until the client closes its stream, checking every
 * message. Run with the client (cargo xtask c-examples does both):
 *
 *     ./server /tmp/demo.sock &   ./client /tmp/demo.sock
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sharedring.h"

#define MESSAGES 100000

static int fail(const char *what, int rc) {
    fprintf(stderr, "server: %s: %s: %s\n", what, sharedring_strerror(rc), sharedring_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s SOCKET-PATH\n", argv[0]);
        return 2;
    }
    sharedring_listener *listener;
    int rc = sharedring_listener_bind(argv[1], &listener);
    if (rc != SHAREDRING_OK) return fail("bind", rc);

    int sock;
    sharedring_peer_credentials who;
    rc = sharedring_listener_accept(listener, &sock, &who);
    if (rc != SHAREDRING_OK) return fail("accept", rc);
    printf("server: client pid %d uid %u\n", who.pid, who.uid);

    /* We create the ring (and so choose its size); the client accepts. */
    sharedring_options opts = {0};
    opts.capacity = 1 << 16;
    opts.max_msg = 1024;
    sharedring_msg_receiver *rx;
    rc = sharedring_msg_receiver_create(sock, &opts, &rx);
    if (rc != SHAREDRING_OK) return fail("create", rc);

    unsigned char buf[1024];
    size_t count = 0, bytes = 0;
    for (;;) {
        size_t len;
        rc = sharedring_msg_receiver_recv(rx, buf, sizeof buf, 10 * 1000 * 1000, &len);
        if (rc == SHAREDRING_ERR_CLOSED) break;
        if (rc != SHAREDRING_OK) return fail("recv", rc);
        /* Message i has length i % 200 and bytes (i + j) & 0xff. */
        if (len != count % 200) {
            fprintf(stderr, "server: message %zu has length %zu\n", count, len);
            return 1;
        }
        for (size_t j = 0; j < len; j++) {
            if (buf[j] != (unsigned char)(count + j)) {
                fprintf(stderr, "server: message %zu byte %zu is wrong\n", count, j);
                return 1;
            }
        }
        count++;
        bytes += len;
    }
    sharedring_msg_receiver_free(rx);
    sharedring_listener_free(listener);
    if (count != MESSAGES) {
        fprintf(stderr, "server: got %zu messages, expected %d\n", count, MESSAGES);
        return 1;
    }
    printf("server: %zu messages, %zu bytes, all correct; the client closed its stream\n", count, bytes);
    return 0;
}
