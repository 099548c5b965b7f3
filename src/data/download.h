/*
 * src/data/download.h: fetching a named dataset's archives with libcurl:
 * resume of a partial download, retries with backoff, connect and
 * low-speed timeouts, progress, and SHA-256 verification before the file
 * takes its final name (a mismatch is refused and the file removed).
 */
#ifndef ICS_DATA_DOWNLOAD_H
#define ICS_DATA_DOWNLOAD_H

#include <icsparse/status.h>
#include "data/catalog.h"
#include "data/convert.h"

typedef struct ics_download_options {
    const char *sha256;      /* expected digest for a single-file entry without a pinned one, or NULL */
    ics_progress_fn progress;
    void *progress_ctx;
} ics_download_options;

/* Downloads url to dest (through dest.part, resumed if present), verifies
 * the SHA-256 (required: a NULL expected digest is refused), renames. */
ics_status ics_download_file(const char *url, const char *dest, const char *sha256,
                             const ics_download_options *options, ics_error *err);

/* Downloads every file of a catalog entry into DATA_DIR/downloads/NAME.
 * $ICSPARSE_DOWNLOAD_BASE, when set, replaces each URL's directory (a
 * mirror, or the tests' local server). */
ics_status ics_download_entry(const ics_catalog_entry *entry, const char *data_dir,
                              const ics_download_options *options, ics_error *err);

#endif
