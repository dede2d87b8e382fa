/*
 * httpc.h — the HTTP client Outpost delivers with (the trigger dispatcher's
 * CloudEvents to subscribers): libcurl's multi interface on one thread of
 * its own, so that hundreds of requests are in flight at once without a
 * thread each, over keep-alive connections reused across requests to the
 * same host. HTTP/1.1 only, no redirects followed (a 3xx is an answer like
 * any other), TLS peers verified as libcurl does by default, libcurl's proxy
 * variables (http_proxy, https_proxy, no_proxy) honoured.
 *
 * Thread rules: httpc_send may be called from any thread, a done callback
 * included. Done callbacks run on the client's thread, one at a time: a
 * callback that blocks holds up every transfer of the client, and it must
 * not call httpc_stop.
 *
 * Errors are negative errno values. A request that was accepted always ends
 * with exactly one call of its done callback, whether it got an answer, a
 * transport error, or was cancelled by httpc_stop.
 */
#ifndef OUTPOST_CORE_HTTPC_H
#define OUTPOST_CORE_HTTPC_H

#include "core/ce.h"

#include <stddef.h>
#include <stdint.h>

typedef struct httpc httpc;

/* Zero in a field means its default. */
typedef struct httpc_opts {
  size_t max_inflight;              /* requests accepted and not yet completed (default 256);
                                       httpc_send refuses more with -EAGAIN */
  size_t max_per_host;              /* connections to one host and port (default 64); requests
                                       beyond wait inside the client for a free connection */
  size_t max_response_body;         /* bytes (default 1 MiB); past it -EMSGSIZE */
  size_t max_response_headers;      /* header count (default 100); past it -EMSGSIZE */
  size_t max_response_header_bytes; /* bytes of all header lines (default 64 KiB) */
  long connect_timeout_ms;          /* TCP and TLS set-up (default 5000) */
  const char *ca_file;              /* PEM certificates of the CAs that HTTPS peers are
                                       verified with, instead of libcurl's bundle file
                                       (default httpc_ca_file(): $OUTPOST_CA_FILE) */
} httpc_opts;

void httpc_opts_init(httpc_opts *o);

/* $OUTPOST_CA_FILE, or NULL when unset or empty: the CA file every HTTP
 * client of Outpost's uses (a private CA that signed an ingress's
 * certificate, say). libcurl's CA directory, where it has one (Debian's
 * /etc/ssl/certs), is still looked in. */
const char *httpc_ca_file(void);

/* How a request ended. Everything it points to is valid during the done
 * callback only. */
typedef struct httpc_result {
  /* 0 when an answer arrived (whatever its status), else a transport error:
   *   -ETIMEDOUT     connecting took connect_timeout_ms, or the request its
   *                  own timeout
   *   -ECONNREFUSED  nothing listens there
   *   -EHOSTUNREACH  the name does not resolve, or no route to the host
   *   -EPROTO        the peer does not speak HTTP/1.x or TLS as expected
   *                  (a malformed answer, a failed handshake or certificate)
   *   -EMSGSIZE      the answer's body or headers are over the limits
   *   -ECANCELED     httpc_stop was called before an answer arrived
   *   -ENOMEM        out of memory
   *   -EIO           anything else (the connection reset or closed early...) */
  int error;
  char error_text[128]; /* the reason in words (libcurl's when it has some); "" when error is 0 */
  /* The HTTP status. Always set when error is 0; with an error, the status
   * of an answer that had begun to arrive (-EMSGSIZE tells "delivered, but
   * the reply is too big" apart this way), else 0. */
  long status;
  /* The answer's headers, names lower-cased, values trimmed, both also
   * NUL-terminated, in the order received (repeated names kept; a folded
   * line joined to its header with a space). With an error: those that had
   * arrived. */
  const ce_kv *headers;
  size_t n_headers;
  /* The answer's body, never NULL ("" when empty). Empty when error != 0. */
  const void *body;
  size_t body_len;
  /* Retry-After in milliseconds from now: delta-seconds, or an HTTP-date (0
   * when already past). -1 when absent or unparsable. */
  int64_t retry_after_ms;
  /* From httpc_send to the end, waiting for a connection included. */
  int64_t elapsed_us;
} httpc_result;

/* Called exactly once per accepted request, on the client's thread. */
typedef void (*httpc_done)(void *opaque, const httpc_result *res);

/* Whether a bearer token can be sent as "Authorization: Bearer <token>"
 * as it is: visible ASCII characters only, no space (NULL or empty: true,
 * nothing to refuse). For the flags that take one. */
bool httpc_token_ok(const char *token);

/* The value of an Authorization header for token: "Bearer <token>", a new
 * string the caller frees; NULL when out of memory. */
char *httpc_bearer(const char *token);

/* Starts a client and its thread. opts NULL: the defaults. Returns NULL with
 * a message in errbuf on failure. */
httpc *httpc_start(const httpc_opts *opts, char *errbuf, size_t errlen);

/* Queues a request. method is an HTTP token ("POST"); url an http:// or
 * https:// URL; headers are sent as given (n_headers pairs, values without
 * CR, LF or NUL; Content-Length and Transfer-Encoding are the client's and
 * refused). A body (body_len bytes, may hold NUL bytes) is sent with its
 * Content-Length, and without a Content-Type unless headers name one;
 * "Expect: 100-continue" is never sent. timeout_ms bounds the whole request,
 * from this call to the end of the answer, a wait for a free connection
 * included (0: no bound but the connect timeout). Everything is copied: the
 * caller's memory may go as soon as this returns.
 *
 * Returns 0 when accepted: done(opaque, res) is then called once, later, on
 * the client's thread. Else done is not called, and the result is -EINVAL
 * (a bad argument), -ENOMEM, -EAGAIN (max_inflight requests are accepted and
 * not yet completed; a request counts until its done callback has begun, so
 * a callback may send again) or -ECANCELED (httpc_stop has begun). */
int httpc_send(httpc *c, const char *method, const char *url, const ce_kv *headers,
               size_t n_headers, const void *body, size_t body_len, long timeout_ms,
               httpc_done done, void *opaque);

/* Stops the client: every request queued or in flight completes with
 * -ECANCELED (those answered already have had their callbacks), its thread
 * ends, its connections close, and it is freed. Must not be called from a
 * done callback. Other threads must not call httpc_send once httpc_stop has
 * been called; done callbacks that send during the stop get -ECANCELED.
 * httpc_stop(NULL) does nothing. */
void httpc_stop(httpc *c);

#endif
