/* A C client: connects to the C server, accepts the message ring it
 * offers, and sends 100000 messages (every other one written in place),
 * then closes its stream. */
#include <stdio.h>
#include <string.h>

#include "sharedring.h"

#define MESSAGES 100000

static int fail(const char *what, int rc) {
    fprintf(stderr, "client: %s: %s: %s\n", what, sharedring_strerror(rc), sharedring_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s SOCKET-PATH\n", argv[0]);
        return 2;
    }
    int sock;
    int rc = sharedring_connect(argv[1], &sock);
    if (rc != SHAREDRING_OK) return fail("connect", rc);
    sharedring_msg_sender *tx;
    rc = sharedring_msg_sender_accept(sock, NULL, &tx);
    if (rc != SHAREDRING_OK) return fail("accept", rc);
    printf("client: ring of %zu bytes, messages up to %zu bytes\n",
           sharedring_msg_sender_capacity(tx), sharedring_msg_sender_max_msg(tx));

    unsigned char msg[200];
    for (size_t i = 0; i < MESSAGES; i++) {
        size_t len = i % 200;
        if (i % 2 == 0) {
            for (size_t j = 0; j < len; j++) msg[j] = (unsigned char)(i + j);
            rc = sharedring_msg_sender_send(tx, msg, len, 10 * 1000 * 1000);
            if (rc != SHAREDRING_OK) return fail("send", rc);
        } else {
            /* In place: reserve, write into the ring, commit. */
            uint8_t *p;
            while ((rc = sharedring_msg_sender_reserve(tx, len, &p)) == SHAREDRING_AGAIN) {
                /* Full: sleep until the server frees room. */
                if (sharedring_msg_sender_wait_room(tx, len, 10 * 1000 * 1000) != SHAREDRING_OK)
                    return fail("wait", rc);
            }
            if (rc != SHAREDRING_OK) return fail("reserve", rc);
            for (size_t j = 0; j < len; j++) p[j] = (unsigned char)(i + j);
            rc = sharedring_msg_sender_commit(tx, len);
            if (rc != SHAREDRING_OK) return fail("commit", rc);
        }
    }
    rc = sharedring_msg_sender_close(tx);
    if (rc != SHAREDRING_OK) return fail("close", rc);
    printf("client: sent %d messages and closed the stream\n", MESSAGES);
    return 0;
}
