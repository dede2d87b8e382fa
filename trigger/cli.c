/*
 * cli.c — `outpost trigger`: applies, shows and deletes triggers through
 * the broker's admin API (/v1/triggers), as kubectl does for Knative's.
 * The server's JSON answer is printed as it came; a refusal exits 1 with
 * the server's reason.
 */
#include "trigger/dispatcher.h"

#include "core/httpc.h"

#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
  fputs("usage: outpost trigger [options] apply -f FILE\n"
        "       outpost trigger [options] get [NAMESPACE[/NAME]]\n"
        "       outpost trigger [options] delete NAMESPACE/NAME\n"
        "\n"
        "Manages the triggers of a running broker (Knative Trigger resources, YAML or JSON).\n"
        "\n"
        "  --server URL   the broker (default $OUTPOST_SERVER, else http://127.0.0.1:8080)\n"
        "  --token TOKEN  the admin bearer token (default $OUTPOST_ADMIN_TOKEN)\n",
        f);
}

/* Reads a whole file (or stdin for "-") into *out. */
static int slurp(const char *path, char **out, size_t *len) {
  FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
  if (!f) return -1;
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  for (size_t got; buf && (got = fread(buf + n, 1, cap - n, f)) > 0;) {
    n += got;
    if (n == cap) {
      char *b = cap < (16u << 20) ? realloc(buf, cap *= 2) : NULL;
      if (!b) free(buf);
      buf = b;
    }
  }
  bool bad = ferror(f);
  if (f != stdin) fclose(f);
  if (!buf || bad) {
    free(buf);
    return -1;
  }
  *out = buf;
  *len = n;
  return 0;
}

static size_t collect(char *p, size_t size, size_t n, void *opaque) {
  ce_buf *b = opaque;
  return ce_buf_append(b, p, size * n) ? 0 : size * n;
}

/* One request; prints the answer. Returns the exit code. */
static int call(const char *method, const char *url, const char *token, const char *body,
                size_t len) {
  CURL *h = curl_easy_init();
  if (!h) return 1;
  struct curl_slist *hdrs = NULL;
  char auth[512];
  if (token) {
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    hdrs = curl_slist_append(hdrs, auth);
  }
  if (body) hdrs = curl_slist_append(hdrs, "Content-Type: application/yaml");
  ce_buf out;
  ce_buf_init(&out);
  curl_easy_setopt(h, CURLOPT_URL, url);
  if (httpc_ca_file()) curl_easy_setopt(h, CURLOPT_CAINFO, httpc_ca_file());
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &out);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 60000L);
  if (body) {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
  }
  CURLcode cc = curl_easy_perform(h);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  int rc = 0;
  if (cc != CURLE_OK) {
    fprintf(stderr, "outpost trigger: %s: %s\n", url, curl_easy_strerror(cc));
    rc = 1;
  } else if (status < 200 || status > 299) {
    fprintf(stderr, "outpost trigger: HTTP %ld: %.*s\n", status, (int)out.len,
            out.data ? out.data : "");
    rc = 1;
  } else if (out.len) {
    printf("%.*s\n", (int)out.len, out.data);
  }
  ce_buf_cleanup(&out);
  curl_slist_free_all(hdrs);
  curl_easy_cleanup(h);
  return rc;
}

int trigger_main(int argc, char **argv) {
  static const struct option longopts[] = {{"server", required_argument, NULL, 's'},
                                           {"token", required_argument, NULL, 't'},
                                           {"file", required_argument, NULL, 'f'},
                                           {"help", no_argument, NULL, 'h'},
                                           {NULL, 0, NULL, 0}};
  const char *server = getenv("OUTPOST_SERVER"), *token = getenv("OUTPOST_ADMIN_TOKEN");
  const char *file = NULL;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "hf:", longopts, NULL)) != -1) {
    if (c == 's') server = optarg;
    if (c == 't') token = optarg;
    if (c == 'f') file = optarg;
    if (c == 'h') {
      usage(stdout);
      return 0;
    }
    if (c == '?') {
      usage(stderr);
      return 2;
    }
  }
  if (!server) server = "http://127.0.0.1:8080";
  size_t slen = strlen(server);
  while (slen > 0 && server[slen - 1] == '/') slen--; /* "http://h:8080/" works too */
  const char *verb = optind < argc ? argv[optind] : NULL;
  const char *arg = optind + 1 < argc ? argv[optind + 1] : NULL;
  bool bad = !verb || (optind + 2 < argc) || (strcmp(verb, "apply") == 0 && (!file || arg)) ||
             (strcmp(verb, "delete") == 0 && (!arg || !strchr(arg, '/'))) ||
             (strcmp(verb, "apply") && strcmp(verb, "get") && strcmp(verb, "delete"));
  if (bad) {
    usage(stderr);
    return 2;
  }
  char url[1024];
  snprintf(url, sizeof url, "%.*s/v1/triggers%s%s", (int)slen, server, arg ? "/" : "",
           arg ? arg : "");
  curl_global_init(CURL_GLOBAL_DEFAULT);
  int rc;
  if (strcmp(verb, "apply") == 0) {
    char *body;
    size_t len;
    if (slurp(file, &body, &len)) {
      perror(file);
      return 1;
    }
    rc = call("PUT", url, token, body, len);
    free(body);
  } else {
    rc = call(strcmp(verb, "get") == 0 ? "GET" : "DELETE", url, token, NULL, 0);
  }
  curl_global_cleanup();
  return rc;
}
