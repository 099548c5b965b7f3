/*
 * src/export/export_internal.h: what the export files share: atomic file
 * writes (temporary name in the same directory, then rename) and the
 * output-path checks, so every format refuses and replaces files the same
 * way.
 */
#ifndef ICS_EXPORT_INTERNAL_H
#define ICS_EXPORT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <icsparse/status.h>

/* 1 if something exists at path. */
int ics_export_exists(const char *path);

/* Refuses an existing path unless force ("PATH exists (use --force to
 * replace it)"). */
ics_status ics_export_check_target(const char *path, int force, ics_error *err);

/* Creates dir and its missing parents (mode 0777 before umask). */
ics_status ics_export_mkdirs(const char *dir, ics_error *err);

/* Writes len bytes to "<path>.tmp-<pid>", flushes and renames it onto
 * path; on any failure the temporary file is removed and path is left as
 * it was. */
ics_status ics_export_write_atomic(const char *path, const void *bytes, size_t len, ics_error *err);

#endif
