/*
 * test_net.h — a client socket for the unit tests that serve HTTP on
 * 127.0.0.1 (test_httpd_*).
 */
#ifndef OUTPOST_TESTS_UNIT_TEST_NET_H
#define OUTPOST_TESTS_UNIT_TEST_NET_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
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

/* A TCP connection to 127.0.0.1:port, or -1. */
static inline int local_connect(uint16_t port) {
  return local_connect_from(port, NULL);
}

#endif
