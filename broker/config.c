/*
 * config.c — brokers declared in a configuration file: Knative Broker
 * resources (apiVersion eventing.knative.dev/v1, kind Broker) in YAML or
 * JSON, read with core/resources.h.
 */
#include "broker/broker.h"
#include "core/resources.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Knative's Kafka broker binds a broker to an existing topic with this. */
#define TOPIC_ANNOTATION "kafka.eventing.knative.dev/external.topic"

void broker_decls_cleanup(broker_decl *d, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(d[i].ns);
    free(d[i].name);
    free(d[i].topic);
  }
  free(d);
}

int broker_config_load(const char *path, broker_decl **out, size_t *n, char *errbuf,
                       size_t errlen) {
  *out = NULL;
  *n = 0;
  cJSON *docs = NULL;
  res_err rerr;
  int rc = res_load_file(path, 16u << 20, &docs, &rerr);
  if (rc) {
    snprintf(errbuf, errlen, "%s: %s", path, rerr.msg);
    return rc;
  }
  size_t count = (size_t)cJSON_GetArraySize(docs), k = 0;
  broker_decl *d = calloc(count ? count : 1, sizeof *d);
  if (!d) {
    cJSON_Delete(docs);
    snprintf(errbuf, errlen, "out of memory");
    return -ENOMEM;
  }
  for (size_t i = 0; i < count && rc == 0; i++) {
    const cJSON *r = cJSON_GetArrayItem(docs, (int)i);
    const char *kind = res_str(r, "kind");
    if (res_is(r, "eventing.knative.dev", "Trigger")) continue; /* the triggers' own */
    /* LabTemplate and NamespacePolicy: the posts', so that `outpost run`
     * can hand one file to every component. */
    const char *api = res_str(r, "apiVersion");
    if (api && strncmp(api, "outpost.dev/", 12) == 0) continue;
    if (!res_is(r, "eventing.knative.dev", "Broker")) {
      snprintf(errbuf, errlen,
               "%s: resource %zu: kind %s is not one Outpost knows (Broker and Trigger of "
               "eventing.knative.dev/v1; outpost.dev/v1 ones are the posts')",
               path, i + 1, kind ? kind : "(none)");
      rc = -EINVAL;
      break;
    }
    const char *name = res_str(r, "metadata.name"), *ns = res_str(r, "metadata.namespace");
    const cJSON *t = res_get_key(res_get(r, "metadata.annotations"), TOPIC_ANNOTATION);
    const char *topic = cJSON_IsString(t) ? t->valuestring : NULL;
    if (!name) {
      snprintf(errbuf, errlen, "%s: resource %zu: a Broker needs metadata.name", path, i + 1);
      rc = -EINVAL;
      break;
    }
    d[k].ns = strdup(ns ? ns : "default");
    d[k].name = strdup(name);
    d[k].topic = topic ? strdup(topic) : NULL;
    k++;
    if (!d[k - 1].ns || !d[k - 1].name || (topic && !d[k - 1].topic)) {
      snprintf(errbuf, errlen, "out of memory");
      rc = -ENOMEM;
    }
  }
  cJSON_Delete(docs);
  if (rc) {
    broker_decls_cleanup(d, k);
    return rc;
  }
  *out = d;
  *n = k;
  return 0;
}
