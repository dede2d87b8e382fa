/*
 * show.h — bytes as a printable, escaped C-string excerpt, for failure
 * messages. Apart from test_util.h (which includes it) because that file
 * needs cmocka and the fuzz targets do not use it.
 */
#ifndef OUTPOST_TESTS_UNIT_SHOW_H
#define OUTPOST_TESTS_UNIT_SHOW_H

#include <stddef.h>
#include <stdio.h>

/* Writes a printable, escaped, possibly shortened copy of p[0..n) into out. */
static inline const char *show(const void *p, size_t n, char *out, size_t size) {
  const unsigned char *s = p;
  size_t o = 0;
  if (p == NULL) return "(null)";
  for (size_t i = 0; i < n && o + 8 < size; i++) {
    if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\\')
      out[o++] = (char)s[i];
    else
      o += (size_t)snprintf(out + o, size - o, "\\x%02x", s[i]);
  }
  if (o + 8 >= size) o += (size_t)snprintf(out + o, size - o, "...");
  out[o] = '\0';
  return out;
}

#endif
