/*
 * ce_rules.c — the value rules of the CloudEvents type system: attribute
 * names, strings, UTF-8, URIs, RFC 3339 timestamps, media types, base64.
 * Each check is a pure function of its bytes, so filters and admin APIs can
 * use the same rules as the decoders.
 */
#include "core/ce.h"
#include "core/ce_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

size_t ce__utf8_next(const uint8_t *p, const uint8_t *end, uint32_t *cp) {
  uint8_t c = p[0];
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  size_t n;
  uint32_t v, min;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2, v = c & 0x1F, min = 0x80;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3, v = c & 0x0F, min = 0x800;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4, v = c & 0x07, min = 0x10000;
  } else {
    return 0; /* continuation byte, C0/C1 (always overlong) or F5+ */
  }
  if ((size_t)(end - p) < n) return 0;
  for (size_t i = 1; i < n; i++) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    v = (v << 6) | (p[i] & 0x3F);
  }
  if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
  *cp = v;
  return n;
}

bool ce_valid_utf8(const char *s, size_t len) {
  const uint8_t *p = (const uint8_t *)s, *end = p + len;
  while (p < end) {
    if (*p < 0x80) {
      p++;
      continue;
    }
    uint32_t cp;
    size_t n = ce__utf8_next(p, end, &cp);
    if (!n) return false;
    p += n;
  }
  return true;
}

bool ce_valid_string(const char *s, size_t len) {
  const uint8_t *p = (const uint8_t *)s, *end = p + len;
  while (p < end) {
    if (*p >= 0x20 && *p < 0x7F) { /* printable ASCII, most of any string */
      p++;
      continue;
    }
    uint32_t cp;
    size_t n = ce__utf8_next(p, end, &cp);
    if (!n) return false;
    p += n;
    /* Control characters, then Unicode noncharacters (U+FDD0..U+FDEF and
     * the last two code points of every plane). Surrogates cannot appear:
     * ce__utf8_next refuses them. */
    if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) return false;
    if ((cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE) return false;
  }
  return true;
}

bool ce_valid_name(const char *s, size_t len) {
  if (len == 0) return false;
  for (size_t i = 0; i < len; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9'))) return false;
  return true;
}

static bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
static bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
static bool is_hex(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* RFC 3986 unreserved / sub-delims / ':' / '@' / '/' / '?': the characters
 * allowed in path, query and fragment (pct-encoded handled by the caller). */
static bool uri_char(char c) {
  /* Letters, digits and -._~!$&'()*+,;=:@/? */
  static const uint64_t set[2] = {0xafffffd200000000u, 0x47fffffe87ffffffu};
  return ce__ascii_in(set, c);
}

/* Length of a scheme at the start of s ("http" in "http:..."), or 0. */
static size_t scheme_len(const char *s, size_t len) {
  if (len == 0 || !is_alpha(s[0])) return 0;
  for (size_t i = 1; i < len; i++) {
    if (s[i] == ':') return i;
    if (!(is_alpha(s[i]) || is_digit(s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.')) return 0;
  }
  return 0;
}

/* Checks the part after the scheme (or the whole relative reference):
 * allowed characters, well-formed %XX, one '#' at most, '[' ']' only inside
 * the authority, and (for relative references) no ':' in the first segment. */
static bool uri_rest(const char *s, size_t len, bool relative, bool allow_fragment) {
  size_t i = 0, auth_end = 0;
  if (len >= 2 && s[0] == '/' && s[1] == '/') {
    auth_end = 2;
    while (auth_end < len && s[auth_end] != '/' && s[auth_end] != '?' && s[auth_end] != '#')
      auth_end++;
  }
  bool in_fragment = false, first_segment = relative && auth_end == 0;
  for (; i < len; i++) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= len || !is_hex(s[i + 1]) || !is_hex(s[i + 2])) return false;
      i += 2;
      continue;
    }
    if (c == '#') {
      if (in_fragment || !allow_fragment) return false;
      in_fragment = true;
      first_segment = false;
      continue;
    }
    if (c == '[' || c == ']') {
      if (i >= auth_end) return false;
      continue;
    }
    if (first_segment) {
      if (c == '/' || c == '?')
        first_segment = false;
      else if (c == ':')
        return false;
    }
    if (!uri_char(c)) return false;
  }
  return true;
}

bool ce_valid_uri(const char *s, size_t len) {
  size_t n = scheme_len(s, len);
  return n > 0 && uri_rest(s + n + 1, len - n - 1, false, false);
}

bool ce_valid_uri_ref(const char *s, size_t len) {
  size_t n = scheme_len(s, len);
  if (n) return uri_rest(s + n + 1, len - n - 1, false, true);
  return uri_rest(s, len, true, true);
}

/* Reads exactly n digits at s. */
static bool digits(const char *s, size_t n, int *out) {
  int v = 0;
  for (size_t i = 0; i < n; i++) {
    if (!is_digit(s[i])) return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

static bool leap(int y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

int ce_timestamp_parse(const char *s, size_t len, int64_t *sec, int32_t *nsec) {
  /* date-time = full-date "T" full-time (RFC 3339 §5.6; 't', 'z' allowed). */
  int y, mo, d, h, mi, se;
  if (len < 20) return -EINVAL;
  if (!digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
      !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2, &h) ||
      s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' || !digits(s + 17, 2, &se))
    return -EINVAL;
  static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (mo < 1 || mo > 12 || d < 1) return -EINVAL;
  if (d > mdays[mo - 1] + (mo == 2 && leap(y))) return -EINVAL;
  if (h > 23 || mi > 59 || se > 60) return -EINVAL;
  size_t i = 19;
  int32_t ns = 0;
  if (s[i] == '.') {
    size_t start = ++i;
    int32_t scale = 100000000;
    while (i < len && is_digit(s[i])) {
      ns += (s[i] - '0') * scale;
      scale /= 10;
      i++;
    }
    if (i == start) return -EINVAL;
  }
  int off = 0;
  if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
    i++;
  } else if (i < len && (s[i] == '+' || s[i] == '-')) {
    int oh, om;
    if (len - i < 6 || !digits(s + i + 1, 2, &oh) || s[i + 3] != ':' ||
        !digits(s + i + 4, 2, &om) || oh > 23 || om > 59)
      return -EINVAL;
    off = (oh * 60 + om) * 60 * (s[i] == '-' ? -1 : 1);
    i += 6;
  } else {
    return -EINVAL;
  }
  if (i != len) return -EINVAL;
  if (sec) {
    /* A leap second (:60) is counted as the next second's start. */
    *sec = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - off;
  }
  if (nsec) *nsec = ns;
  return 0;
}

static bool lower_hex(const char *s, size_t n, bool nonzero) {
  bool any = false;
  for (size_t i = 0; i < n; i++) {
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    any |= s[i] != '0';
  }
  return any || !nonzero;
}

bool ce_valid_traceparent(const char *s, size_t len) {
  if (len < 55) return false;
  /* Version 00 has these four fields only; a later one may add more. */
  if (len > 55 && ((s[0] == '0' && s[1] == '0') || s[55] != '-')) return false;
  return lower_hex(s, 2, false) && !(s[0] == 'f' && s[1] == 'f') && s[2] == '-' &&
         lower_hex(s + 3, 32, true) && s[35] == '-' && lower_hex(s + 36, 16, true) &&
         s[52] == '-' && lower_hex(s + 53, 2, false);
}

bool ce_valid_tracestate(const char *s, size_t len) {
  if (len > 512) return false;
  for (size_t i = 0; i < len; i++)
    if (s[i] < 0x20 || s[i] > 0x7e) return false;
  return true;
}

bool ce_valid_timestamp(const char *s, size_t len) {
  return ce_timestamp_parse(s, len, NULL, NULL) == 0;
}

size_t ce_timestamp_format(int64_t sec, int32_t nsec, char *out, size_t out_size) {
  int64_t days = sec / 86400, rem = sec % 86400;
  if (rem < 0) rem += 86400, days--;
  /* civil_from_days (inverse of days_from_civil) */
  days += 719468;
  int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  int64_t doe = days - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t y = yoe + era * 400, doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  int d = (int)(doy - (153 * mp + 2) / 5 + 1), m = (int)(mp < 10 ? mp + 3 : mp - 9);
  y += m <= 2;
  if (y < 0 || y > 9999 || nsec < 0 || nsec > 999999999) {
    int n = snprintf(out, out_size, "%04lld-%02d-%02dT%02d:%02d:%02d.%09dZ", (long long)y, m, d,
                     (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60), (int)nsec);
    return n < 0 ? 0 : (size_t)n;
  }
  /* The common case by hand: the broker stamps every event with one, and
   * snprintf was 2% of its CPU. Same output, same truncation rule. */
  char b[31];
  int parts[6] = {(int)y, m, d, (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60)};
  static const char sep[6] = {'-', '-', 'T', ':', ':', '.'};
  char *p = b;
  for (int i = 0; i < 6; i++) {
    int v = parts[i], w = i == 0 ? 4 : 2;
    for (int k = w - 1; k >= 0; k--, v /= 10) p[k] = (char)('0' + v % 10);
    p += w;
    *p++ = sep[i];
  }
  for (int k = 8, v = nsec; k >= 0; k--, v /= 10) p[k] = (char)('0' + v % 10);
  p += 9;
  *p++ = 'Z';
  size_t n = (size_t)(p - b);
  if (out_size) {
    size_t c = n < out_size - 1 ? n : out_size - 1;
    memcpy(out, b, c);
    out[c] = '\0';
  }
  return n;
}

/* RFC 7230 tchar. */
static bool tchar(char c) {
  return is_alpha(c) || is_digit(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static size_t token(const char *s, size_t len) {
  size_t i = 0;
  while (i < len && tchar(s[i])) i++;
  return i;
}

static size_t ows(const char *s, size_t len) {
  size_t i = 0;
  while (i < len && (s[i] == ' ' || s[i] == '\t')) i++;
  return i;
}

bool ce_valid_media_type(const char *s, size_t len) {
  size_t i = token(s, len);
  if (i == 0 || i == len || s[i] != '/') return false;
  size_t t = token(s + i + 1, len - i - 1);
  if (t == 0) return false;
  i += 1 + t;
  /* *( OWS ";" OWS parameter ), parameter = token "=" ( token / quoted-string );
   * whitespace only before a ';', never at the end. */
  for (;;) {
    if (i == len) return true;
    i += ows(s + i, len - i);
    if (i == len || s[i] != ';') return false;
    i++;
    if (i == len) return true; /* a trailing ';' is tolerated, as browsers do */
    i += ows(s + i, len - i);
    if (i == len) return false;
    size_t k = token(s + i, len - i);
    if (k == 0 || i + k == len || s[i + k] != '=') return false;
    i += k + 1;
    if (i < len && s[i] == '"') {
      for (i++; i < len && s[i] != '"'; i++)
        if (s[i] == '\\' && ++i == len) return false;
      if (i == len) return false;
      i++;
    } else {
      k = token(s + i, len - i);
      if (k == 0) return false;
      i += k;
    }
  }
}

/* The type/subtype of a media type, lower-cased into out; false if none. */
static bool essence(const char *s, size_t len, char *out, size_t out_size) {
  size_t i = ows(s, len), o = 0;
  for (; i < len && s[i] != ';' && s[i] != ' ' && s[i] != '\t'; i++) {
    if (o + 1 >= out_size) return false;
    char c = s[i];
    out[o++] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
  }
  out[o] = '\0';
  return o > 0;
}

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

bool ce_media_type_is_json(const char *s, size_t len) {
  if (!s) return true;
  char e[128];
  if (!essence(s, len, e, sizeof e)) return false;
  return strcmp(e, "application/json") == 0 || strcmp(e, "text/json") == 0 || ends_with(e, "+json");
}

bool ce__media_type_is_text(const char *s, size_t len) {
  if (!s) return false;
  char e[128];
  if (!essence(s, len, e, sizeof e)) return false;
  if (strncmp(e, "text/", 5) == 0 || ends_with(e, "+xml") || strcmp(e, "application/xml") == 0)
    return true;
  for (size_t i = 0; i + 8 <= len; i++)
    if (ce__iprefix(s + i, len - i, "charset=")) return true;
  return false;
}

bool ce__ieq(const char *a, size_t n, const char *b) {
  /* One pass, no strlen: most comparisons end at the first byte. */
  for (size_t i = 0; i < n; i++) {
    char x = a[i], y = b[i];
    if (!y) return false; /* b is shorter */
    if (x >= 'A' && x <= 'Z') x = (char)(x + 32);
    if (y >= 'A' && y <= 'Z') y = (char)(y + 32);
    if (x != y) return false;
  }
  return b[n] == '\0';
}

bool ce__iprefix(const char *a, size_t n, const char *prefix) {
  size_t m = strlen(prefix);
  if (n < m) return false;
  for (size_t i = 0; i < m; i++) {
    char x = a[i], y = prefix[i];
    if (x >= 'A' && x <= 'Z') x = (char)(x + 32);
    if (y >= 'A' && y <= 'Z') y = (char)(y + 32);
    if (x != y) return false;
  }
  return true;
}

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64val(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

int ce__b64_encode(const uint8_t *in, size_t len, ce_buf *out) {
  int rc = ce_buf_reserve(out, (len + 2) / 3 * 4);
  if (rc) return rc;
  char *o = out->data + out->len;
  size_t i = 0;
  for (; i + 3 <= len; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    *o++ = b64chars[v >> 18];
    *o++ = b64chars[(v >> 12) & 63];
    *o++ = b64chars[(v >> 6) & 63];
    *o++ = b64chars[v & 63];
  }
  if (i < len) {
    uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0);
    *o++ = b64chars[v >> 18];
    *o++ = b64chars[(v >> 12) & 63];
    *o++ = i + 1 < len ? b64chars[(v >> 6) & 63] : '=';
    *o++ = '=';
  }
  out->len = (size_t)(o - out->data);
  out->data[out->len] = '\0';
  return 0;
}

int ce_base64_encode(const void *in, size_t len, ce_buf *out) {
  return ce__b64_encode(in, len, out);
}

/* Padding is optional, but when present it must complete the last quantum;
 * a lone final character (len % 4 == 1) can never be valid. */
static bool b64_shape(const char *in, size_t len, size_t *body) {
  size_t n = len;
  if (n && in[n - 1] == '=') {
    n--;
    if (n && in[n - 1] == '=') n--;
    if (len % 4) return false;
  }
  if (n % 4 == 1) return false;
  for (size_t i = 0; i < n; i++)
    if (b64val(in[i]) < 0) return false;
  *body = n;
  return true;
}

bool ce_valid_base64(const char *s, size_t len) {
  size_t body;
  return b64_shape(s, len, &body);
}

int ce__b64_decode(const char *in, size_t len, ce_buf *out) {
  size_t n;
  if (!b64_shape(in, len, &n)) return -EINVAL;
  int rc = ce_buf_reserve(out, n / 4 * 3 + 3);
  if (rc) return rc;
  uint8_t *o = (uint8_t *)out->data + out->len;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    acc = acc << 6 | (uint32_t)b64val(in[i]);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      *o++ = (uint8_t)(acc >> bits);
    }
  }
  out->len = (size_t)(o - (uint8_t *)out->data);
  out->data[out->len] = '\0';
  return 0;
}
