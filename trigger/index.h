/*
 * index.h — finds the triggers an event matches at a cost that grows with
 * the triggers it could match, not with all triggers: exact and prefix
 * filters are indexed (one hash probe per indexed attribute, one per prefix
 * length), and only those candidates, with the triggers that require no
 * exact or prefix condition, are evaluated in full (trigger_match).
 *
 * Thread rules: the index holds pointers to triggers it does not own (the
 * caller keeps each alive until it is removed). Adding and removing need
 * exclusive access; any number of threads may match at once.
 */
#ifndef OUTPOST_TRIGGER_INDEX_H
#define OUTPOST_TRIGGER_INDEX_H

#include "trigger/trigger.h"

typedef struct trigger_index trigger_index;

trigger_index *trigger_index_new(void);
/* Frees the index, not the triggers. trigger_index_free(NULL) does nothing. */
void trigger_index_free(trigger_index *ix);
/* Returns 0 or -ENOMEM. A trigger is added once. */
int trigger_index_add(trigger_index *ix, const trigger *tr);
/* Returns 0 or -ENOENT. */
int trigger_index_remove(trigger_index *ix, const trigger *tr);
size_t trigger_index_count(const trigger_index *ix);

typedef void (*trigger_index_fn)(void *opaque, const trigger *tr);

/* Calls fn (when not NULL) for each trigger ev matches, and returns how many
 * did. *evaluated (when not NULL) is how many triggers were evaluated in
 * full. The order of the calls is unspecified. */
size_t trigger_index_match(const trigger_index *ix, const ce_event *ev, trigger_index_fn fn,
                           void *opaque, size_t *evaluated);

#endif
