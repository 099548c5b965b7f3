/*
 * A pickle reader that is a data-only virtual machine: it understands the
 * opcodes of protocols 2 to 5 that carry data (see docs/FORMATS-PTH.md for
 * the list) and never imports or calls anything. A class reference (GLOBAL,
 * STACK_GLOBAL) becomes a value naming the class; calling it (REDUCE,
 * NEWOBJ, NEWOBJ_EX) asks the caller's hook, and when the hook does not
 * know the class the result is an opaque object holding the class name,
 * the arguments and any BUILD state.
 *
 * The reader refuses what it cannot read with one error naming the offset:
 * an unknown opcode (with its byte value), a truncated stream, stack
 * underflow, a memo index out of range, or input that exceeds the limits
 * (stack depth, marks, memo size) that stop hostile files.
 */
#ifndef ICS_IO_PICKLE_READER_H
#define ICS_IO_PICKLE_READER_H

#include <stddef.h>
#include <stdint.h>
#include "io/pickle_value.h"

typedef struct ics_pickle_hooks {
    void *ctx;
    /* BINPERSID: turns a persistent id into a value. NULL hook: refuse. */
    ics_pv *(*persistent_load)(void *ctx, ics_pv_arena *arena, ics_pv *pid, ics_error *err);
    /* REDUCE / NEWOBJ of the class or function `callable` (a GLOBAL value)
     * with the argument tuple args. Sets *result and returns ICS_OK when it
     * knows the callable; leaves *result NULL to let the reader make an
     * opaque object; returns an error to stop reading. */
    ics_status (*call)(void *ctx, ics_pv_arena *arena, const ics_pv *callable, ics_pv *args,
                       ics_pv **result, ics_error *err);
} ics_pickle_hooks;

typedef struct ics_pickle_limits {
    size_t max_stack; /* values on the stack, all marks together */
    size_t max_marks; /* open MARKs */
    size_t max_memo;  /* highest memo index + 1 */
} ics_pickle_limits;

/* Limits generous for any real checkpoint (millions of entries). */
extern const ics_pickle_limits ics_pickle_default_limits;

/* Reads one pickle from data[0..size) into values owned by arena; *root is
 * the value STOP returned. label names the stream in errors ("x.pth:
 * archive/data.pkl"). hooks and limits may be NULL (no persistent ids; the
 * default limits). Built in: collections.OrderedDict (a dict flagged
 * ordered), builtins.set / frozenset (a list). */
ics_status ics_pickle_load(const uint8_t *data, size_t size, const char *label, ics_pv_arena *arena,
                           const ics_pickle_hooks *hooks, const ics_pickle_limits *limits,
                           ics_pv **root, ics_error *err);

/* The same for a pickle inside a longer buffer (a sequence of pickles):
 * *consumed receives the offset just past its STOP. */
ics_status ics_pickle_load_prefix(const uint8_t *data, size_t size, const char *label,
                                  ics_pv_arena *arena, const ics_pickle_hooks *hooks,
                                  const ics_pickle_limits *limits, ics_pv **root, size_t *consumed,
                                  ics_error *err);

#endif
