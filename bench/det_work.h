/*
 * det_work.h — the detector benchmarks' workloads, one round (or one exec)
 * at a time: bench/det_load.c (bench_detector.sh, whole runs) and
 * bench/det_alt.c (paired alternation) time the same system calls through
 * these. Header-only (static functions), because det_load.c is built by its
 * script with the system's cc, outside the project's build.
 */
#ifndef OUTPOST_BENCH_DET_WORK_H
#define OUTPOST_BENCH_DET_WORK_H

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* The ordinary mix opens a file under the watched prefix every 64th round. */
#define DET_MIX_OPEN_EVERY 64
#define DET_MIX_BUF        4096

static void det_open_close(const char *path) {
  int fd = openat(AT_FDCWD, path, O_RDONLY);
  if (fd >= 0) close(fd);
}

/* Round i of the ordinary system-call-heavy program on fd (the file `file`,
 * at least DET_MIX_BUF bytes long): pread and pwrite 4 KiB, stat, getpid,
 * mmap and munmap 64 KiB, 6 calls the detector does not report; every 64th
 * round also an open+close of `watched` (reported). 0, or -1 when a call
 * failed. */
static int det_mix_round(long i, int fd, const char *file, const char *watched,
                         char buf[DET_MIX_BUF]) {
  struct stat st;
  if (pread(fd, buf, DET_MIX_BUF, 0) != DET_MIX_BUF) return -1;
  if (pwrite(fd, buf, DET_MIX_BUF, 0) != DET_MIX_BUF) return -1;
  if (stat(file, &st) != 0) return -1;
  (void)syscall(SYS_getpid); /* not glibc's getpid, which could be cached */
  void *m = mmap(NULL, 64 << 10, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return -1;
  munmap(m, 64 << 10);
  if (i % DET_MIX_OPEN_EVERY == 0) det_open_close(watched);
  return 0;
}

/* One round of the worst case: open+close under the watched prefix
 * (reported), another open+close (looked up), a TCP connect to `closed`,
 * where nothing listens (reported), a setuid to uid, a no-op (reported), and
 * getppid: 9 calls, 3 reported. 0; -1 when a call failed; -2 when the
 * connect succeeded (something listens there after all). */
static int det_loop_round(const char *watched, const char *other, const struct sockaddr_in *closed,
                          uid_t uid) {
  det_open_close(watched);
  det_open_close(other);
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return -1;
  int rc = connect(s, (const struct sockaddr *)closed, sizeof *closed);
  close(s);
  if (rc == 0) return -2;
  if (setuid(uid) != 0) return -1;
  (void)getppid();
  return 0;
}

/* fork, exec /bin/true, wait (fork, exec and exit events). 0, or -1 when
 * any of it failed. */
static int det_exec_once(void) {
  int st;
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    execl("/bin/true", "true", (char *)NULL);
    _exit(127);
  }
  if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) return -1;
  return 0;
}

#endif
