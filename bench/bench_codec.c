/*
 * bench_codec.c — throughput of the CloudEvents codecs (HTTP binary mode,
 * HTTP structured mode, the JSON event format; decode and encode) in events
 * per second, each set beside cJSON alone doing the comparable JSON work on
 * the same bytes in the same run. Absolute figures depend on the machine;
 * the ratio to cJSON is what can be compared across machines and runs.
 * Nothing here asserts a speed. See bench/README.md.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "bench_util.h"
#include "core/ce.h"

/* Everything a measurement reads, prepared before any timing. */
typedef struct fixture {
  const char *name;
  ce_event *ev;
  ce_headers bin_hdrs; /* binary mode, as our encoder writes it */
  ce_buf bin_body;
  ce_headers st_hdrs; /* structured mode */
  ce_buf st_body;
  ce_buf json;       /* the JSON event format */
  cJSON *data_tree;  /* the data alone: the binary-mode encode baseline */
  cJSON *event_tree; /* the whole event: the structured and JSON baseline */
  ce_limits lim;
} fixture;

/* One row of the table: an operation of ours and its cJSON baseline, each
 * run on a fixture. */
typedef struct bench_case {
  const char *codec;
  const char *op;
  bench_fn ours;
  bench_fn base;
} bench_case;

/* Results are folded into this so the compiler cannot drop the work. */
static volatile size_t sink;

/* ------------------------------------------------------------ operations */

static int http_decode(const ce_headers *h, const ce_buf *body, const ce_limits *lim, long n) {
  for (long i = 0; i < n; i++) {
    ce_batch b;
    ce_batch_init(&b);
    if (ce_http_decode(h->items, h->n, body->data, body->len, lim, &b, NULL) < 0) return -1;
    sink += b.n;
    ce_batch_cleanup(&b);
  }
  return 0;
}

static int ours_bin_decode(const void *arg, long n) {
  const fixture *fx = arg;
  return http_decode(&fx->bin_hdrs, &fx->bin_body, &fx->lim, n);
}

static int ours_st_decode(const void *arg, long n) {
  const fixture *fx = arg;
  return http_decode(&fx->st_hdrs, &fx->st_body, &fx->lim, n);
}

static int ours_json_decode(const void *arg, long n) {
  const fixture *fx = arg;
  for (long i = 0; i < n; i++) {
    ce_event *ev = NULL;
    if (ce_json_decode(fx->json.data, fx->json.len, &fx->lim, &ev, NULL) != 0) return -1;
    sink += ce_event_attr_count(ev);
    ce_event_free(ev);
  }
  return 0;
}

/* Fresh output buffers each time, as cJSON_PrintUnformatted allocates its
 * string each time. */
static int http_encode(const ce_event *ev, ce_mode mode, long n) {
  for (long i = 0; i < n; i++) {
    ce_headers h;
    ce_buf body;
    ce_headers_init(&h);
    ce_buf_init(&body);
    int rc = ce_http_encode(ev, mode, &h, &body, NULL);
    sink += body.len + h.n;
    ce_buf_cleanup(&body);
    ce_headers_cleanup(&h);
    if (rc != 0) return -1;
  }
  return 0;
}

static int ours_bin_encode(const void *arg, long n) {
  const fixture *fx = arg;
  return http_encode(fx->ev, CE_MODE_BINARY, n);
}

static int ours_st_encode(const void *arg, long n) {
  const fixture *fx = arg;
  return http_encode(fx->ev, CE_MODE_STRUCTURED, n);
}

static int ours_json_encode(const void *arg, long n) {
  const fixture *fx = arg;
  for (long i = 0; i < n; i++) {
    ce_buf out;
    ce_buf_init(&out);
    int rc = ce_json_encode(fx->ev, &out, NULL);
    sink += out.len;
    ce_buf_cleanup(&out);
    if (rc != 0) return -1;
  }
  return 0;
}

static int cjson_parse(const ce_buf *bytes, long n) {
  for (long i = 0; i < n; i++) {
    cJSON *tree = cJSON_ParseWithLength(bytes->data, bytes->len);
    if (!tree) return -1;
    sink += (size_t)tree->type;
    cJSON_Delete(tree);
  }
  return 0;
}

static int base_bin_decode(const void *arg, long n) {
  const fixture *fx = arg;
  return cjson_parse(&fx->bin_body, n);
}

static int base_st_decode(const void *arg, long n) {
  const fixture *fx = arg;
  return cjson_parse(&fx->st_body, n);
}

static int base_json_decode(const void *arg, long n) {
  const fixture *fx = arg;
  return cjson_parse(&fx->json, n);
}

static int cjson_print(const cJSON *tree, long n) {
  for (long i = 0; i < n; i++) {
    char *s = cJSON_PrintUnformatted(tree);
    if (!s) return -1;
    sink += (size_t)s[0];
    cJSON_free(s);
  }
  return 0;
}

static int base_data_encode(const void *arg, long n) {
  const fixture *fx = arg;
  return cjson_print(fx->data_tree, n);
}

static int base_event_encode(const void *arg, long n) {
  const fixture *fx = arg;
  return cjson_print(fx->event_tree, n);
}

static const bench_case cases[] = {
    {"HTTP binary", "decode", ours_bin_decode, base_bin_decode},
    {"HTTP structured", "decode", ours_st_decode, base_st_decode},
    {"JSON format", "decode", ours_json_decode, base_json_decode},
    {"HTTP binary", "encode", ours_bin_encode, base_data_encode},
    {"HTTP structured", "encode", ours_st_encode, base_event_encode},
    {"JSON format", "encode", ours_json_encode, base_event_encode},
};

/* The bytes a case decodes or writes: the body (binary mode: the data). */
static size_t case_bytes(const fixture *fx, const bench_case *c) {
  if (strcmp(c->codec, "HTTP binary") == 0) return fx->bin_body.len;
  if (strcmp(c->codec, "HTTP structured") == 0) return fx->st_body.len;
  return fx->json.len;
}

/* ------------------------------------------------------------ fixtures */

/* A ~300-byte order, the kind of payload a webhook carries. */
static const char small_data[] =
    "{\"orderId\":\"o-2026-1042\",\"customer\":{\"id\":4711,\"name\":\"Zo\\u00eb Martin\","
    "\"email\":\"zoe@example.com\"},\"items\":[{\"sku\":\"BK-0042\",\"qty\":2,\"price\":19.99},"
    "{\"sku\":\"PN-7731\",\"qty\":1,\"price\":4.5}],\"total\":44.48,\"currency\":\"EUR\","
    "\"shipping\":{\"method\":\"standard\",\"country\":\"FR\"},\"paid\":true,"
    "\"notes\":\"leave at the door\"}";

/* A ~8 KB batch of sensor readings. */
static int large_data(ce_buf *out) {
  int rc = ce_buf_append_str(out, "{\"gateway\":\"gw-17\",\"readings\":[");
  for (int i = 0; rc == 0 && out->len < 8100; i++) {
    char item[160];
    snprintf(item, sizeof(item),
             "%s{\"seq\":%d,\"sensor\":\"t-%03d\",\"ts\":\"2026-11-21T17:%02d:%02dZ\","
             "\"celsius\":%d.%d,\"ok\":%s}",
             i ? "," : "", i, i % 40, i / 60 % 60, i % 60, 15 + i % 10, i % 10,
             i % 7 ? "true" : "false");
    rc = ce_buf_append_str(out, item);
  }
  return rc ? rc : ce_buf_append_str(out, "]}");
}

/* The attributes of a typical event: the four required, four optional, and
 * three extensions (one an integer). */
static ce_event *event_build(const char *data, size_t len) {
  static const char *attrs[][2] = {
      {"specversion", "1.0"},
      {"id", "b7c9a1e2-4f3d-4a8b-9c1e-2d3f4a5b6c7d"},
      {"source", "https://shop.example.com/orders"},
      {"type", "com.example.shop.order.created"},
      {"subject", "orders/2026/11/1042"},
      {"time", "2026-11-21T17:46:29.123Z"},
      {"datacontenttype", "application/json"},
      {"dataschema", "https://shop.example.com/schemas/order-v2.json"},
      {"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
      {"partitionkey", "customer-4711"},
  };
  ce_event *ev = ce_event_new();
  ce_err err;

  if (!ev) return NULL;
  for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++)
    if (ce_event_set_str(ev, attrs[i][0], attrs[i][1], &err) != 0) goto fail;
  if (ce_event_set_int(ev, "priority", 5, &err) != 0) goto fail;
  if (ce_event_set_data(ev, data, len) != 0) goto fail;
  return ev;

fail:
  fprintf(stderr, "bench_codec: cannot build the event: %s: %s\n", err.attr, err.reason);
  ce_event_free(ev);
  return NULL;
}

/* The same attribute values (as strings) and data. Binary mode carries
 * extensions as strings, so an integer extension comes back as a string and
 * ce_event_equal, which compares types too, would say no. */
static bool same_values(const ce_event *a, const ce_event *b) {
  size_t na = ce_event_attr_count(a), la, lb;
  const uint8_t *da = ce_event_data(a, &la), *db = ce_event_data(b, &lb);

  if (na != ce_event_attr_count(b) || la != lb || (la && memcmp(da, db, la) != 0)) return false;
  for (size_t i = 0; i < na; i++) {
    const ce_attr *x = ce_event_attr_at(a, i);
    const char *y = ce_event_get_str(b, x->name);
    if (!y || strcmp(x->value, y) != 0) return false;
  }
  return true;
}

/* Encodes fx->ev every way, checks that each form decodes back to the same
 * event (a benchmark of a broken codec means nothing), and builds the cJSON
 * trees the encode baselines print. */
static int fixture_prepare(fixture *fx) {
  ce_err err = {0};
  ce_event *back = NULL;
  ce_batch b;

  ce_limits_init(&fx->lim);
  ce_headers_init(&fx->bin_hdrs);
  ce_headers_init(&fx->st_hdrs);
  ce_buf_init(&fx->bin_body);
  ce_buf_init(&fx->st_body);
  ce_buf_init(&fx->json);
  if (ce_http_encode(fx->ev, CE_MODE_BINARY, &fx->bin_hdrs, &fx->bin_body, &err) != 0 ||
      ce_http_encode(fx->ev, CE_MODE_STRUCTURED, &fx->st_hdrs, &fx->st_body, &err) != 0 ||
      ce_json_encode(fx->ev, &fx->json, &err) != 0) {
    fprintf(stderr, "bench_codec: %s: encode failed: %s: %s\n", fx->name, err.attr, err.reason);
    return -1;
  }

  ce_batch_init(&b);
  if (ce_http_decode(fx->bin_hdrs.items, fx->bin_hdrs.n, fx->bin_body.data, fx->bin_body.len,
                     &fx->lim, &b, &err) != CE_MODE_BINARY ||
      ce_http_decode(fx->st_hdrs.items, fx->st_hdrs.n, fx->st_body.data, fx->st_body.len, &fx->lim,
                     &b, &err) != CE_MODE_STRUCTURED ||
      ce_json_decode(fx->json.data, fx->json.len, &fx->lim, &back, &err) != 0) {
    fprintf(stderr, "bench_codec: %s: decode failed: %s: %s\n", fx->name, err.attr, err.reason);
    goto fail;
  }
  if (!same_values(b.ev[0], fx->ev) || !ce_event_equal(b.ev[1], fx->ev) ||
      !ce_event_equal(back, fx->ev)) {
    fprintf(stderr, "bench_codec: %s: a decoded event differs from the encoded one\n", fx->name);
    goto fail;
  }
  ce_batch_cleanup(&b);
  ce_event_free(back);

  size_t data_len;
  const uint8_t *data = ce_event_data(fx->ev, &data_len);
  fx->data_tree = cJSON_ParseWithLength((const char *)data, data_len);
  fx->event_tree = cJSON_ParseWithLength(fx->json.data, fx->json.len);
  if (!fx->data_tree || !fx->event_tree) {
    fprintf(stderr, "bench_codec: %s: cJSON cannot parse our output\n", fx->name);
    return -1;
  }
  return 0;

fail:
  ce_batch_cleanup(&b);
  ce_event_free(back);
  return -1;
}

static void fixture_cleanup(fixture *fx) {
  cJSON_Delete(fx->event_tree);
  cJSON_Delete(fx->data_tree);
  ce_buf_cleanup(&fx->json);
  ce_buf_cleanup(&fx->st_body);
  ce_headers_cleanup(&fx->st_hdrs);
  ce_buf_cleanup(&fx->bin_body);
  ce_headers_cleanup(&fx->bin_hdrs);
  ce_event_free(fx->ev);
}

/* ------------------------------------------------------------ main */

int main(int argc, char **argv) {
  bench_opts opts;
  int parsed = bench_opts_parse(&opts, argc, argv, "bench_codec", "runs"), rc = 1;
  ce_buf large;
  fixture fx[2] = {{.name = "small"}, {.name = "8 KB"}};

  if (parsed != 0) return parsed > 0 ? 0 : 2; /* 1: --help was shown */
  ce_buf_init(&large);
  if (large_data(&large) != 0) goto cleanup;
  fx[0].ev = event_build(small_data, sizeof(small_data) - 1);
  fx[1].ev = event_build(large.data, large.len);
  if (!fx[0].ev || !fx[1].ev) goto cleanup;
  for (int i = 0; i < 2; i++)
    if (fixture_prepare(&fx[i]) != 0) goto cleanup;

  printf("Outpost codec benchmark: events/s, median of %d measurements each\n", opts.repeats);
  printf("ratio = outpost / cJSON alone on the same bytes, measured in the same run "
         "(median of\nadjacent pairs; >1: faster than cJSON)\n\n");
  for (int i = 0; i < 2; i++) {
    size_t hb = 0;
    for (size_t k = 0; k < fx[i].bin_hdrs.n; k++)
      hb += fx[i].bin_hdrs.items[k].name_len + fx[i].bin_hdrs.items[k].value_len + 4;
    printf("%-6s event: %zu attributes, data %zu B; binary mode adds %zu header bytes\n",
           fx[i].name, ce_event_attr_count(fx[i].ev), fx[i].bin_body.len, hb);
  }
  printf("\n%-6s %-16s %-6s %6s %12s %12s %6s\n", "event", "codec", "op", "bytes", "outpost/s",
         "cJSON/s", "ratio");
  printf("%-6s %-16s %-6s %6s %12s %12s %6s\n", "------", "----------------", "------", "------",
         "------------", "------------", "------");
  for (int i = 0; i < 2; i++) {
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
      bench_result res;
      if (bench_pair_measure(cases[k].ours, cases[k].base, &fx[i], &opts, &res) != 0) {
        fprintf(stderr, "bench_codec: %s %s %s failed\n", fx[i].name, cases[k].codec, cases[k].op);
        goto cleanup;
      }
      printf("%-6s %-16s %-6s %6zu", fx[i].name, cases[k].codec, cases[k].op,
             case_bytes(&fx[i], &cases[k]));
      bench_rate_print(res.ours);
      bench_rate_print(res.base);
      printf(" %6.2f\n", res.ratio);
      fflush(stdout);
    }
  }
  rc = 0;

cleanup:
  for (int i = 0; i < 2; i++) fixture_cleanup(&fx[i]);
  ce_buf_cleanup(&large);
  return rc;
}
