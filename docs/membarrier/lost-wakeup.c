// SPDX-License-Identifier: Apache-2.0 OR MIT
//
// A waker that skips its fence, and a sleeper that calls membarrier instead,
// as a sharedring broadcast publisher with header flag bit 0 and its
// subscriber do (docs/LAYOUT.md, "Sleeping and waking"), in plain C.
//
//   P (waker):   head = i; compiler barrier (mode 2, 3: a fence);
//                w = wait; if w is an announcement not woken yet:
//                wake_word++, FUTEX_WAKE
//   S (sleeper): [v = wake_word]; wait = announcement; fence; membarrier();
//                [v = wake_word]; h = head; if h is old:
//                FUTEX_WAIT(wake_word, v) for at most 2 s
//
// Build and run:
//   cc -O2 -pthread -o lost-wakeup lost-wakeup.c
//   ./lost-wakeup MODE ROUNDS [early]
//   MODE 0: GLOBAL_EXPEDITED (waker registered), 1: PRIVATE_EXPEDITED (both
//   threads of one process), 2: the waker fences, no membarrier, 3: both.
//   "early": the sleeper loads v before announcing (the fixed order);
//   otherwise after its barrier (the order sharedring had until 2026-11-30).
// A "sleep timed out" line is a sleeper not woken within 2 s; it says
// whether the waker had finished that round by then, and the wake word
// against the value slept on. A "violation" line says the waker's load
// missed the announcement while the sleeper's re-check missed the
// publication (the store-buffering outcome the barrier forbids).
#define _GNU_SOURCE
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/futex.h>
#include <time.h>
#include <errno.h>
static _Alignas(64) _Atomic unsigned int wake_word;
static long futex(void *a, int op, unsigned v, const struct timespec *t) { return syscall(SYS_futex, a, op, v, t, NULL, 0); }

static int membarrier(int cmd) { return syscall(__NR_membarrier, cmd, 0, 0); }
static int mode; // 0 global, 1 private, 2 fence on P, no membarrier
static long rounds;
static int early; // the sleeper loads the futex value before announcing
static _Alignas(64) _Atomic unsigned long head;
static _Alignas(64) _Atomic unsigned int wait_word;
static _Alignas(64) _Atomic unsigned long received;
static _Alignas(64) _Atomic unsigned long obs_round;
static _Atomic unsigned int obs_w;

static void *publisher(void *arg) {
  (void)arg;
  unsigned r = 1;
  for (unsigned long i = 1; i <= (unsigned long)rounds; i++) {
    while (atomic_load_explicit(&received, memory_order_acquire) < i - 1) __builtin_ia32_pause();
    r = r * 1103515245u + 12345u;
    for (unsigned k = 0; k < (r >> 16) % 48; k++) __builtin_ia32_pause();
    atomic_store_explicit(&head, i, memory_order_release);
    if (mode >= 2) atomic_thread_fence(memory_order_seq_cst);
    else atomic_signal_fence(memory_order_seq_cst);
    unsigned w = atomic_load_explicit(&wait_word, memory_order_relaxed);
    static unsigned last;
    if ((w & 1) && w != last) { last = w; atomic_fetch_add_explicit(&wake_word, 1, memory_order_release); futex(&wake_word, FUTEX_WAKE, 1 << 30, NULL); }
    atomic_store_explicit(&obs_w, w, memory_order_relaxed);
    atomic_store_explicit(&obs_round, i, memory_order_release);
  }
  return NULL;
}

int main(int argc, char **argv) {
  mode = argc > 1 ? atoi(argv[1]) : 0;
  rounds = argc > 2 ? atol(argv[2]) : 1000000;
  early = argc > 3 && !strcmp(argv[3], "early");
  if ((mode == 0 || mode == 3) && membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED)) { perror("register"); return 1; }
  if (mode == 1 && membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED)) { perror("register"); return 1; }
  pthread_t t; pthread_create(&t, NULL, publisher, NULL);
  unsigned long cursor = 0, sleeps = 0, violations = 0; unsigned seq = 0;
  while (cursor < (unsigned long)rounds) {
    unsigned long h = atomic_load_explicit(&head, memory_order_acquire);
    if (h > cursor) { cursor = h; atomic_store_explicit(&received, cursor, memory_order_release); continue; }
    unsigned fv = 0;
    if (early) fv = atomic_load_explicit(&wake_word, memory_order_acquire);
    seq++;
    unsigned announce = (seq << 1) | 1;
    atomic_store_explicit(&wait_word, announce, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    if (mode == 0 || mode == 3) membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED);
    if (mode == 1) membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
    if (!early) fv = atomic_load_explicit(&wake_word, memory_order_acquire);
    unsigned long h2 = atomic_load_explicit(&head, memory_order_acquire);
    if (h2 == cursor) {
      // Would sleep. Did the publisher's next round see the announcement?
      sleeps++;
      struct timespec ts = {2, 0};
      if (futex(&wake_word, FUTEX_WAIT, fv, &ts) && errno == ETIMEDOUT) {
        // Had the waker finished that round (its wake-up, if any, done)
        // before we gave up, or was it itself stalled?
        unsigned long done = atomic_load_explicit(&obs_round, memory_order_acquire);
        fprintf(stderr, "sleep timed out at round %lu: the waker had %s that round (wake word %u, was %u)\n",
                cursor + 1, done >= cursor + 1 ? "finished" : "not finished", atomic_load(&wake_word), fv);
      }
      while (atomic_load_explicit(&obs_round, memory_order_acquire) < cursor + 1) __builtin_ia32_pause();
      if (atomic_load_explicit(&obs_w, memory_order_relaxed) != announce) {
        violations++;
        fprintf(stderr, "violation at round %lu: publisher saw %#x, announcement %#x\n", cursor + 1,
                atomic_load(&obs_w), announce);
      }
    }
    atomic_store_explicit(&wait_word, seq << 1, memory_order_relaxed);
  }
  pthread_join(t, NULL);
  const char *names[] = {"GLOBAL_EXPEDITED", "PRIVATE_EXPEDITED", "publisher fence", "publisher fence + sleeper GLOBAL_EXPEDITED"};
  printf("%s, futex value loaded %s the announcement: %ld rounds, %lu would-sleeps, %lu violations\n", names[mode],
         early ? "before" : "after", rounds, sleeps, violations);
  return 0;
}
