/*
 * test_net.h — a client socket for the unit tests that serve HTTP on
 * 127.0.0.1 (test_httpd_*).
 */
#ifndef OUTPOST_TESTS_UNIT_TEST_NET_H
#define OUTPOST_TESTS_UNIT_TEST_NET_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

/* A TCP connection to 127.0.0.1:port from the address from (another of
 * 127.0.0.0/8, which is all the loopback's; NULL: the kernel's choice):
 * its descriptor, or -1 when the connect failed (the socket closed
 * again). */
static inline int local_connect_from(uint16_t port, const char *from) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  struct sockaddr_in src = {.sin_family = AF_INET};
  if (fd >= 0 && from &&
      (inet_pton(AF_INET, from, &src.sin_addr) != 1 ||
       bind(fd, (struct sockaddr *)&src, sizeof src) != 0)) {
    close(fd);
    return -1;
  }
  if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    close(fd);
    fd = -1;
  }
  return fd;
}

/* A TCP connection to [::1]:port, or -1. */
static inline int local_connect6(uint16_t port) {
  int fd = socket(AF_INET6, SOCK_STREAM, 0);
  struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
  sa.sin6_addr = in6addr_loopback;
  if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    close(fd);
    fd = -1;
  }
  return fd;
}

/* A TCP connection to 127.0.0.1:port, or -1. */
static inline int local_connect(uint16_t port) {
  return local_connect_from(port, NULL);
}

/* Sends "METHOD path" with no body on fd: the status of the answer, -1 if
 * the server closed the connection (or never took it), 0 if nothing came
 * in 5 s or it was not HTTP/1.1. */
static inline int local_ask(int fd, const char *method, const char *path) {
  char req[256], buf[1024];
  int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
                   method, path);
  if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) return -1;
  struct pollfd p = {fd, POLLIN, 0};
  if (poll(&p, 1, 5000) != 1) return 0;
  ssize_t got = recv(fd, buf, sizeof buf - 1, 0);
  if (got <= 0) return -1;
  buf[got] = '\0';
  int status = 0;
  return sscanf(buf, "HTTP/1.1 %d", &status) == 1 ? status : 0;
}

#endif
