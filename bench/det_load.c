/*
 * det_load.c — the workloads of bench_detector.sh: it joins a cgroup2
 * directory (the environment the detector watches, or not), then times one
 * workload and prints one result line. Built by the script with the system's
 * cc, so that the benchmark needs nothing from the project's build but the
 * outpost binary.
 *
 *   det_load CGROUP exec N              fork + execve /bin/true + wait, N times
 *   det_load CGROUP sys N WATCHED OTHER PORT
 *       N rounds of: open+close a file under a watched prefix (reported),
 *       open+close one outside it (looked up, not reported), a TCP connect
 *       to 127.0.0.1:PORT where nothing listens (reported), setuid to the
 *       current uid (a no-op, reported) and getppid (not reported)
 *   det_load CGROUP mix N WATCHED FILE
 *       an ordinary system-call-heavy program, N rounds of: pread 4 KiB of
 *       FILE, pwrite 4 KiB to it, stat it, getpid, mmap 64 KiB anonymous and
 *       munmap it (6 calls the detector does not report); and every 64th
 *       round also open+close a file under a watched prefix (reported):
 *       1 reported call in 386
 *   det_load CGROUP rate R SECS         setuid no-ops at R per second for SECS
 *                                       seconds (R 0: as fast as it can)
 *
 * CGROUP "-" stays where it is. Prints
 * "det_load mode=M n=CALLS secs=S cpu=C rate=CALLS_PER_S": S the wall-clock
 * seconds, C the CPU seconds (user and system, its children's included) the
 * workload used, which the kernel side's work in the workload's own context
 * is part of and other processes on the machine mostly are not.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "det_work.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
  struct rusage self, kids;
  getrusage(RUSAGE_SELF, &self);
  getrusage(RUSAGE_CHILDREN, &kids);
  double s = 0;
  const struct timeval *tv[] = {&self.ru_utime, &self.ru_stime, &kids.ru_utime, &kids.ru_stime};
  for (int i = 0; i < 4; i++) s += (double)tv[i]->tv_sec + (double)tv[i]->tv_usec / 1e6;
  return s;
}

static int join(const char *cg) {
  char path[4096];
  if (strcmp(cg, "-") == 0) return 0;
  snprintf(path, sizeof path, "%s/cgroup.procs", cg);
  int fd = open(path, O_WRONLY);
  if (fd < 0 || write(fd, "0", 1) != 1) {
    fprintf(stderr, "det_load: joining %s: %s\n", cg, strerror(errno));
    return -1;
  }
  close(fd);
  return 0;
}

static int run_exec(long n) {
  for (long i = 0; i < n; i++)
    if (det_exec_once()) return -1;
  return 0;
}

static int run_sys(long n, const char *watched, const char *other, int port) {
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  uid_t uid = geteuid();
  for (long i = 0; i < n; i++) {
    int rc = det_loop_round(watched, other, &sa, uid);
    if (rc == -2) fprintf(stderr, "det_load: something listens on port %d\n", port);
    if (rc) return -1;
  }
  return 0;
}

static int run_mix(long n, const char *watched, const char *file) {
  char buf[DET_MIX_BUF];
  int fd = open(file, O_RDWR);
  if (fd < 0) return -1;
  memset(buf, 'x', sizeof buf);
  if (pwrite(fd, buf, sizeof buf, 0) != (ssize_t)sizeof buf) return -1;
  for (long i = 0; i < n; i++)
    if (det_mix_round(i, fd, file, watched, buf)) return -1;
  close(fd);
  return 0;
}

/* Paced by the clock: each pass makes the calls that are due by now, then
 * sleeps 50 us, so the rate holds whatever a call costs (up to what one
 * process can make). */
static long run_rate(long rate, double secs) {
  uid_t uid = geteuid();
  double t0 = now_s();
  long done = 0;
  for (;;) {
    double el = now_s() - t0;
    if (el >= secs) break;
    long due = rate > 0 ? (long)(el * (double)rate) : done + 1000;
    while (done < due) {
      if (setuid(uid) != 0) return -1;
      done++;
    }
    if (rate > 0) nanosleep(&(struct timespec){0, 50000}, NULL);
  }
  return done;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: det_load CGROUP exec N | sys N WATCHED OTHER PORT | mix N WATCHED FILE"
                    " | rate R SECS\n");
    return 2;
  }
  if (join(argv[1])) return 1;
  const char *mode = argv[2];
  long n = atol(argv[3]), calls = n;
  int rc = 0;
  double t0 = now_s(), c0 = cpu_s();
  if (strcmp(mode, "exec") == 0) {
    rc = run_exec(n);
  } else if (strcmp(mode, "sys") == 0 && argc == 7) {
    rc = run_sys(n, argv[4], argv[5], atoi(argv[6]));
  } else if (strcmp(mode, "mix") == 0 && argc == 6) {
    rc = run_mix(n, argv[4], argv[5]);
  } else if (strcmp(mode, "rate") == 0 && argc == 5) {
    calls = run_rate(n, atof(argv[4]));
    rc = calls < 0 ? -1 : 0;
  } else {
    fprintf(stderr, "det_load: bad arguments\n");
    return 2;
  }
  double secs = now_s() - t0, cpu = cpu_s() - c0;
  if (rc) {
    fprintf(stderr, "det_load: %s failed: %s\n", mode, strerror(errno));
    return 1;
  }
  printf("det_load mode=%s n=%ld secs=%.4f cpu=%.4f rate=%.1f\n", mode, calls, secs, cpu,
         (double)calls / secs);
  return 0;
}
