/*
 * httpd_tls.c — a TLS server's certificate and key (httpd_opts.tls_cert_file
 * and tls_key_file), read from their PEM files at start and read again when
 * they change, so that a renewed certificate (cert-manager's, a mounted
 * Kubernetes Secret's) is served without a restart.
 *
 * libmicrohttpd asks for the pair on each handshake through GnuTLS's
 * retrieve callback (MHD_OPTION_HTTPS_CERT_CALLBACK), which carries no
 * pointer of ours: the server is found by the handshake's local port in a
 * small table of the process's TLS servers (a port is one server's).
 *
 * A handshake looks at the files at most every HTTPD_TLS_LOOK_MS, one
 * thread at a time (core/file_watch.h): a new inode, size or modification
 * time of either makes it read both again. A pair that loads (a certificate chain and the
 * key that belongs to its first certificate) is published with one atomic
 * store; one that does not leaves the served pair as it was, and stderr
 * says why. Replaced pairs live until the server stops: a handshake under
 * way may still hold one.
 */
#include "core/httpd_int.h"

#include "core/clock.h"
#include "core/file_watch.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

enum { TLS_CHAIN_MAX = 16, TLS_SERVERS_MAX = 16 };

typedef struct tls_pair {
  gnutls_pcert_st certs[TLS_CHAIN_MAX];
  unsigned n_certs;
  gnutls_privkey_t key;
  struct tls_pair *older; /* freed at stop */
} tls_pair;

struct httpd_tls {
  char *cert_file, *key_file;
  _Atomic(tls_pair *) cur; /* its replaced ones chained behind it */
  file_watch watch;
  uint16_t port;
  _Atomic uint64_t reloads_ok, reloads_failed;
};

static pthread_mutex_t servers_mu = PTHREAD_MUTEX_INITIALIZER;
static httpd_tls *servers[TLS_SERVERS_MAX];

/* ------------------------------------------------------------- loading */

/* A PEM file of at most HTTPD_PEM_MAX bytes into d (gnutls_free'd). */
static int read_pem(const char *what, const char *path, gnutls_datum_t *d, char *why,
                    size_t whylen) {
  FILE *f = fopen(path, "re");
  d->data = f ? gnutls_malloc(HTTPD_PEM_MAX + 1) : NULL;
  size_t n = d->data ? fread(d->data, 1, HTTPD_PEM_MAX + 1, f) : 0;
  int err = errno;
  if (f) fclose(f);
  if (d->data && n > 0 && n <= HTTPD_PEM_MAX) {
    d->data[n] = '\0';
    d->size = (unsigned)n;
    if (strstr((char *)d->data, "-----BEGIN ")) return 0;
  }
  snprintf(why, whylen, "TLS %s '%s': %s", what, path,
           !f                  ? strerror(err)
           : !d->data          ? "out of memory"
           : n > HTTPD_PEM_MAX ? "larger than 1 MiB"
                               : "not a PEM file");
  gnutls_free(d->data);
  d->data = NULL;
  return -1;
}

static void pair_free(tls_pair *p) {
  while (p) {
    tls_pair *older = p->older;
    for (unsigned i = 0; i < p->n_certs; i++) gnutls_pcert_deinit(&p->certs[i]);
    if (p->key) gnutls_privkey_deinit(p->key);
    free(p);
    p = older;
  }
}

/* Both files as a pair, checked to belong together; NULL with why. */
static tls_pair *pair_load(const httpd_tls *t, char *why, size_t whylen) {
  gnutls_datum_t cert = {0}, key = {0};
  gnutls_certificate_credentials_t check = NULL;
  tls_pair *p = calloc(1, sizeof *p);
  int rc = -1;
  if (!p) {
    snprintf(why, whylen, "out of memory");
  } else if (!read_pem("certificate", t->cert_file, &cert, why, whylen) &&
             !read_pem("key", t->key_file, &key, why, whylen)) {
    /* GnuTLS's own pairing check: a key that is not the certificate's fails. */
    int g = gnutls_certificate_allocate_credentials(&check);
    if (!g)
      g = gnutls_certificate_set_x509_key_mem2(check, &cert, &key, GNUTLS_X509_FMT_PEM, NULL, 0);
    p->n_certs = TLS_CHAIN_MAX;
    if (g >= 0)
      g = gnutls_pcert_list_import_x509_raw(p->certs, &p->n_certs, &cert, GNUTLS_X509_FMT_PEM, 0);
    if (g < 0) p->n_certs = 0;
    if (g >= 0) g = gnutls_privkey_init(&p->key);
    if (g >= 0) g = gnutls_privkey_import_x509_raw(p->key, &key, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (g < 0)
      snprintf(why, whylen, "TLS certificate '%s' and key '%s': %s", t->cert_file, t->key_file,
               gnutls_strerror(g));
    else
      rc = 0;
  }
  if (check) gnutls_certificate_free_credentials(check);
  gnutls_free(cert.data);
  gnutls_free(key.data);
  if (rc) {
    pair_free(p);
    return NULL;
  }
  return p;
}

/* Reads the files again, which changed (t->watch held). */
static void reload(httpd_tls *t) {
  char why[512];
  tls_pair *p = pair_load(t, why, sizeof why);
  if (!p) {
    size_t n = strlen(why);
    if (n && why[n - 1] == '.') why[n - 1] = '\0'; /* GnuTLS's sentences end with one */
    atomic_fetch_add(&t->reloads_failed, 1);
    fprintf(stderr, "outpost httpd: %s; still serving the certificate read before\n", why);
    return;
  }
  p->older = atomic_load(&t->cur);
  atomic_store(&t->cur, p);
  atomic_fetch_add(&t->reloads_ok, 1);
  fprintf(stderr, "outpost httpd: TLS certificate read again from %s\n", t->cert_file);
}

/* ------------------------------------------------------------- handshakes */

static httpd_tls *server_of(gnutls_session_t session) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int fd = gnutls_transport_get_int(session);
  if (getsockname(fd, (struct sockaddr *)&ss, &len)) return NULL;
  uint16_t port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
  httpd_tls *t = NULL;
  pthread_mutex_lock(&servers_mu);
  for (size_t i = 0; i < TLS_SERVERS_MAX && !t; i++)
    if (servers[i] && servers[i]->port == port) t = servers[i];
  pthread_mutex_unlock(&servers_mu);
  return t;
}

int httpd__tls_retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_rdn, int nreqs,
                        const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                        gnutls_pcert_st **pcert, unsigned int *pcert_length,
                        gnutls_privkey_t *privkey) {
  (void)req_ca_rdn, (void)nreqs, (void)pk_algos, (void)pk_algos_length;
  httpd_tls *t = server_of(session);
  if (!t) return -1;
  if (file_watch_changed(&t->watch, (uint64_t)clock_mono_us() * 1000u)) {
    reload(t);
    file_watch_done(&t->watch);
  }
  tls_pair *p = atomic_load(&t->cur);
  *pcert = p->certs;
  *pcert_length = p->n_certs;
  *privkey = p->key;
  return 0;
}

/* ------------------------------------------------------------- the server */

httpd_tls *httpd__tls_new(const char *cert_file, const char *key_file, char *errbuf,
                          size_t errlen) {
  httpd_tls *t = calloc(1, sizeof *t);
  if (!t || !(t->cert_file = strdup(cert_file)) || !(t->key_file = strdup(key_file))) {
    snprintf(errbuf, errlen, "out of memory");
    if (t) free(t->cert_file);
    free(t);
    return NULL;
  }
  /* Watched before they are read: a change meanwhile is seen at the first look. */
  const char *files[] = {t->cert_file, t->key_file};
  file_watch_init(&t->watch, files, 2, (uint64_t)HTTPD_TLS_LOOK_MS * 1000000u);
  tls_pair *p = pair_load(t, errbuf, errlen);
  if (!p) {
    httpd__tls_free(t);
    return NULL;
  }
  atomic_store(&t->cur, p);
  return t;
}

int httpd__tls_listen(httpd_tls *t, uint16_t port) {
  int rc = -ENOSPC;
  t->port = port;
  pthread_mutex_lock(&servers_mu);
  for (size_t i = 0; i < TLS_SERVERS_MAX && rc; i++)
    if (!servers[i]) servers[i] = t, rc = 0;
  pthread_mutex_unlock(&servers_mu);
  return rc;
}

void httpd__tls_free(httpd_tls *t) {
  if (!t) return;
  pthread_mutex_lock(&servers_mu);
  for (size_t i = 0; i < TLS_SERVERS_MAX; i++)
    if (servers[i] == t) servers[i] = NULL;
  pthread_mutex_unlock(&servers_mu);
  pair_free(atomic_load(&t->cur));
  file_watch_destroy(&t->watch);
  free(t->cert_file);
  free(t->key_file);
  free(t);
}

void httpd__tls_reloads(const httpd_tls *t, uint64_t *ok, uint64_t *failed) {
  *ok = t ? atomic_load(&t->reloads_ok) : 0;
  *failed = t ? atomic_load(&t->reloads_failed) : 0;
}
