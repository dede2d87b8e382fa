/*
 * test_senders.c — broker/senders.c, who may POST events (--senders-file):
 * a file read whole with its comments, each fault refused with its line and
 * reason, a token found among all the senders' and nothing else taken for
 * it, the type prefixes each sender may send, the brokers it may send to,
 * and the file read again when it changes, on a clock of the test's own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "broker/broker_int.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[64];

/* Writes text to a new temporary file; its name in path. */
static void write_file(const char *text) {
  snprintf(path, sizeof path, "/tmp/test_senders.XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  size_t n = strlen(text);
  assert_int_equal(write(fd, text, n), (ssize_t)n);
  close(fd);
}

/* broker__senders_load of text, which must fail with want in its message. */
static void refused(const char *text, const char *want) {
  char err[512] = "";
  write_file(text);
  broker_senders *s = broker__senders_load(path, err, sizeof err);
  unlink(path);
  if (s || !strstr(err, want))
    fail_msg("file %s: want a refusal with \"%s\", got %s \"%s\"", text, want,
             s ? "a load and" : "", err);
  broker__senders_free(s);
}

/* broker__senders_load of text, which must load. */
static broker_senders *loaded(const char *text) {
  char err[512] = "";
  write_file(text);
  broker_senders *s = broker__senders_load(path, err, sizeof err);
  unlink(path);
  if (!s) fail_msg("file %s: refused: %s", text, err);
  return s;
}

static void reads_a_file(void **state) {
  (void)state;
  broker_senders *s = loaded("# who may post\n"
                             "\n"
                             "detector  det-token-1  dev.outpost.\r\n"
                             "  shop\tshop.tok~en/+==  com.example.shop. com.example.cart.\n"
                             "admin adm1n"); /* no newline at the end */
  assert_int_equal(s->n, 3);
  assert_string_equal(s->v[0].name, "detector");
  assert_string_equal(s->v[0].token, "det-token-1");
  assert_int_equal(s->v[0].n_types, 1);
  assert_string_equal(s->v[0].types[0], "dev.outpost.");
  assert_string_equal(s->v[1].name, "shop");
  assert_string_equal(s->v[1].token, "shop.tok~en/+==");
  assert_int_equal(s->v[1].n_types, 2);
  assert_string_equal(s->v[1].types[1], "com.example.cart.");
  assert_string_equal(s->v[2].token, "adm1n");
  assert_int_equal(s->v[2].n_types, 0);
  broker__senders_free(s);
  broker__senders_free(NULL);
}

static void refuses_bad_files(void **state) {
  (void)state;
  refused("", "no senders");
  refused("# only a comment\n\n", "no senders");
  refused("a t\nShop tok\n", ":2: a sender's name is a DNS label");
  refused("-a tok\n", ":1: a sender's name is a DNS label");
  refused("a\n", ":1: want NAME TOKEN");
  refused("a to#ken\n", ":1: want NAME TOKEN");
  refused("a =abc\n", ":1: want NAME TOKEN");
  refused("a ab=c\n", ":1: want NAME TOKEN");
  refused("a t1\nb t2\na t3\n", ":3: a sender named twice");
  refused("a t1\nb t1\n", ":2: two senders with one token");
  refused("a t p1 p2 p3 p4 p5 p6 p7 p8 p9 p10 p11 p12 p13 p14 p15 p16 p17\n",
          ":1: at most 16 type prefixes");
  refused("a t dev.\xc3\xa9\n", ":1: a type prefix is 1-255 visible characters");
  refused("a t to=default\n", ":1: to= names a broker");
  refused("a t to=Default/b\n", ":1: to= names a broker");
  refused("a t to=ns/\n", ":1: to= names a broker");
  refused("a t to=ns/b/c\n", ":1: to= names a broker");
  refused("a t to=ns/**\n", ":1: to= names a broker");
  refused("a t to=a/1 to=a/2 to=a/3 to=a/4 to=a/5 to=a/6 to=a/7 to=a/8 to=a/9 to=a/10 to=a/11 "
          "to=a/12 to=a/13 to=a/14 to=a/15 to=a/16 to=a/17\n",
          ":1: at most 16 to= a sender");
  char big[300 * 20 + 1] = "";
  for (int i = 0; i <= 256; i++) snprintf(big + strlen(big), 20, "s%d t%d\n", i, i);
  refused(big, ":257: at most 256 senders");
  char err[256];
  assert_null(broker__senders_load("/nonexistent/senders", err, sizeof err));
  assert_string_equal(err, "/nonexistent/senders: No such file or directory");
}

static void finds_tokens(void **state) {
  (void)state;
  broker_senders *s = loaded("a alpha\nb beta dev.\nc alphabet\n");
  assert_ptr_equal(broker__sender_of(s, "alpha"), &s->v[0]);
  assert_ptr_equal(broker__sender_of(s, "beta"), &s->v[1]);
  assert_ptr_equal(broker__sender_of(s, "alphabet"), &s->v[2]);
  /* Nothing that is not a whole token: a part, more, another case, none. */
  const char * not [] = {"alph", "alphab", "alphabets", "Alpha", "beta ", "", "b"};
  for (size_t i = 0; i < sizeof not / sizeof *not ; i++)
    if (broker__sender_of(s, not [i])) fail_msg("\"%s\" taken for a token", not [i]);
  assert_null(broker__sender_of(s, NULL));
  broker__senders_free(s);
}

static void allows_types(void **state) {
  (void)state;
  broker_senders *s = loaded("shop t com.example.shop. com.example.cart.add\nany u\n");
  const broker_sender *shop = &s->v[0], *any = &s->v[1];
#define ALLOWS(who, t) broker__sender_allows(who, t, strlen(t))
  assert_true(ALLOWS(shop, "com.example.shop.order"));
  assert_true(ALLOWS(shop, "com.example.shop."));
  assert_true(ALLOWS(shop, "com.example.cart.add"));
  assert_true(ALLOWS(shop, "com.example.cart.added"));
  assert_false(ALLOWS(shop, "com.example.shop"));
  assert_false(ALLOWS(shop, "com.example.cart.remove"));
  assert_false(ALLOWS(shop, "dev.outpost.process.exec"));
  assert_false(ALLOWS(shop, ""));
  /* The length counts, not a NUL: a type cut short is not allowed. */
  assert_false(broker__sender_allows(shop, "com.example.shop.order", 10));
  assert_true(ALLOWS(any, "dev.outpost.process.exec"));
  assert_true(ALLOWS(any, ""));
#undef ALLOWS
  broker__senders_free(s);
}

static void sends_to_brokers(void **state) {
  (void)state;
  broker_senders *s = loaded("shop t com.example. to=shop/default to=team-b/*\nany u dev.\n");
  const broker_sender *shop = &s->v[0], *any = &s->v[1];
  /* to= words are not type prefixes. */
  assert_int_equal(shop->n_types, 1);
  assert_int_equal(shop->n_to, 2);
  assert_string_equal(shop->to[1], "team-b/*");
  assert_true(broker__sender_to(shop, "shop", "default"));
  assert_true(broker__sender_to(shop, "team-b", "default"));
  assert_true(broker__sender_to(shop, "team-b", "other"));
  assert_false(broker__sender_to(shop, "shop", "other"));
  assert_false(broker__sender_to(shop, "sho", "default"));
  assert_false(broker__sender_to(shop, "shop", "defaul"));
  assert_false(broker__sender_to(shop, "team", "default"));
  assert_false(broker__sender_to(shop, "default", "default"));
  assert_true(broker__sender_to(any, "default", "default"));
  assert_true(broker__sender_to(any, "x", "y"));
  broker__senders_free(s);
}

/* Replaces the file at path with text, as Kubernetes updates a mounted
 * Secret: a new file renamed over the old one. */
static void replace_file(const char *text) {
  char tmp[80];
  snprintf(tmp, sizeof tmp, "%s.new", path);
  FILE *f = fopen(tmp, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
  assert_int_equal(rename(tmp, path), 0);
}

static void reads_again_when_changed(void **state) {
  (void)state;
  const uint64_t s = UINT64_C(1000000000), t0 = 100 * s, look = BROKER_SENDERS_LOOK_MS * s / 1000;
  write_file("a old-a\nb tok-b\n");
  char err[512] = "";
  broker_senders_file *f = broker__senders_open(path, err, sizeof err);
  assert_non_null(f);
  broker_senders *first = broker__senders_current(f);
  atomic_store(broker__sender_of(first, "tok-b")->events, 7);
  broker__senders_check(f, t0); /* the first look: the file as read */
  assert_ptr_equal(broker__senders_current(f), first);
  replace_file("a new-a\nb tok-b\nc tok-c dev.\n");
  broker__senders_check(f, t0 + look / 2); /* not yet time to look */
  assert_ptr_equal(broker__senders_current(f), first);
  broker__senders_check(f, t0 + look);
  broker_senders *second = broker__senders_current(f);
  assert_ptr_not_equal(second, first);
  assert_null(broker__sender_of(second, "old-a"));
  assert_non_null(broker__sender_of(second, "new-a"));
  assert_non_null(broker__sender_of(second, "tok-c"));
  /* b's count goes on, one count for both tables (requests in flight may
   * hold the first one's b); its sender of the first table is still there. */
  assert_ptr_equal(broker__sender_of(second, "tok-b")->events,
                   broker__sender_of(first, "tok-b")->events);
  assert_int_equal(atomic_load(broker__sender_of(second, "tok-b")->events), 7);
  assert_ptr_equal(broker__sender_of(second, "tok-c")->events,
                   &broker__sender_of(second, "tok-c")->own);
  assert_string_equal(broker__sender_of(first, "old-a")->name, "a");
  /* A broken file, then none: the table in use stays. */
  replace_file("a\n");
  broker__senders_check(f, t0 + 2 * look);
  assert_ptr_equal(broker__senders_current(f), second);
  unlink(path);
  broker__senders_check(f, t0 + 3 * look);
  assert_ptr_equal(broker__senders_current(f), second);
  uint64_t ok, failed;
  broker__senders_reloads(f, &ok, &failed);
  assert_int_equal(ok, 1);
  assert_int_equal(failed, 1);
  /* Back, mended: read again. */
  replace_file("z tok-z\n");
  broker__senders_check(f, t0 + 4 * look);
  assert_non_null(broker__sender_of(broker__senders_current(f), "tok-z"));
  broker__senders_reloads(f, &ok, &failed);
  assert_int_equal(ok, 2);
  broker__senders_close(f);
  unlink(path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(reads_a_file),     cmocka_unit_test(refuses_bad_files),
      cmocka_unit_test(finds_tokens),     cmocka_unit_test(allows_types),
      cmocka_unit_test(sends_to_brokers), cmocka_unit_test(reads_again_when_changed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
