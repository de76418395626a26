// SPDX-License-Identifier: Apache-2.0 OR MIT
//
// Does membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) interrupt every CPU that
// runs a thread of a registered process? Counts the function-call IPIs that
// CPU 1 receives while our registered thread spins there and CPU 0 makes
// 10 000 GLOBAL_EXPEDITED calls: about 10 000 if every call reached it.
//
// Build and run (2 CPUs or more; x86, for the "CAL" line of /proc/interrupts):
//   cc -O2 -pthread -o ipi-count ipi-count.c
//   ./ipi-count stale; ./ipi-count synced; ./ipi-count fix
//   stale:  registered while CPU 1 idled after running our thread (the
//           kernel refreshes its per-CPU copy of "registered" only on a
//           switch to a different address space, and registration only on
//           CPUs running the process: this CPU's copy can stay stale)
//   synced: registered while our thread ran on CPU 1
//   fix:    as stale, then a child process (another address space) ran on
//           CPU 1 before our thread went back there
// See README.md for what it printed on the project's host.
#define _GNU_SOURCE
#include <linux/membarrier.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <pthread.h>
#include <stdatomic.h>

static int membarrier(int cmd) { return syscall(__NR_membarrier, cmd, 0, 0); }
static void pin(int cpu) { cpu_set_t s; CPU_ZERO(&s); CPU_SET(cpu, &s); if (sched_setaffinity(0, sizeof s, &s)) { perror("affinity"); exit(1); } }
static long cal(int cpu) {
  FILE *f = fopen("/proc/interrupts", "r"); char line[4096];
  while (fgets(line, sizeof line, f)) {
    char *p = line; while (*p == ' ') p++;
    if (strncmp(p, "CAL:", 4) == 0) { p += 4; long v[8]; for (int i = 0; i <= cpu; i++) v[i] = strtol(p, &p, 10); fclose(f); return v[cpu]; }
  }
  fclose(f); return -1;
}
static int pipefd[2];
static atomic_int stop;
static void *spinner(void *arg) {
  (void)arg; pin(1);
  for (volatile long i = 0; i < 20000000; i++) {}   // run on CPU 1 a while
  char c; if (read(pipefd[0], &c, 1) != 1) exit(1);  // CPU 1 goes idle, lazily on our mm
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {}  // back on CPU 1, spinning
  return NULL;
}
static void visit_cpu1_from_another_process(void) {
  pid_t pid = fork();
  if (pid == 0) { pin(1); for (volatile long i = 0; i < 1000000; i++) {} _exit(0); }
  waitpid(pid, NULL, 0);
}
int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "stale";
  pin(0);
  if (pipe(pipefd)) return 1;
  pthread_t t; pthread_create(&t, NULL, spinner, NULL);
  if (!strcmp(mode, "synced")) {
    if (write(pipefd[1], "x", 1) != 1) return 1;
    usleep(200000);                    // the spinner is running on CPU 1
    if (membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED)) { perror("register"); return 1; }
  } else {
    usleep(200000);                    // the spinner is blocked: CPU 1 idle
    if (membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED)) { perror("register"); return 1; }
    if (!strcmp(mode, "fix")) visit_cpu1_from_another_process();
    if (write(pipefd[1], "x", 1) != 1) return 1;
    usleep(100000);                    // the spinner is back on CPU 1
  }
  const int n = 10000;
  long before = cal(1);
  for (int i = 0; i < n; i++) if (membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)) { perror("membarrier"); return 1; }
  long after = cal(1);
  atomic_store(&stop, 1); pthread_join(t, NULL);
  printf("%-6s: %d GLOBAL_EXPEDITED calls from CPU 0, function-call IPIs on CPU 1 (running our registered thread): %ld\n", mode, n, after - before);
  return 0;
}
