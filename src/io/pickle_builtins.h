/*
 * The few Python classes and functions every pickle reader of ours
 * interprets, as data (nothing is imported or run): collections.OrderedDict
 * (a dict flagged ordered, also from a list of pairs), builtins.set and
 * frozenset (a list), and protocol 2's spelling of bytes:
 * _codecs.encode(text, 'latin1'), bytes(), bytes(b), bytearray(text,
 * 'latin-1').
 */
#ifndef ICS_IO_PICKLE_BUILTINS_H
#define ICS_IO_PICKLE_BUILTINS_H

#include "io/pickle_value.h"

/* Calls g(*args) when g is one of the classes above: sets *result and
 * returns ICS_OK. Leaves *result NULL for any other g. Returns an error
 * when g is known but its arguments are not what Python would accept. */
ics_status ics_pickle_builtin_call(ics_pv_arena *arena, const ics_pv *g, ics_pv *args,
                                   ics_pv **result, ics_error *err);

#endif
