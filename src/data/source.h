/*
 * src/data/source.h: finding and decoding a dataset's raw source. A named
 * dataset is looked for in its known local places first (Debian's
 * /usr/share/datasets/...), then in DATA_DIR/downloads/NAME; download.h
 * fetches it there when asked.
 */
#ifndef ICS_DATA_SOURCE_H
#define ICS_DATA_SOURCE_H

#include <icsparse/status.h>
#include "data/catalog.h"
#include "data/convert.h"
#include "data/raw.h"

/* Decodes the source at path (a directory for idx and folder, the
 * .tar.gz for cifar) into raw. IDX sources get class_names (NULL: "0".."9");
 * folder sources are resized to image_size (shorter side, then center
 * crop; must be > 0). */
ics_status ics_source_load(ics_source_format format, const char *path, const char *const *class_names,
                           int image_size, ics_raw_dataset *raw, ics_error *err);

/* Where a named dataset's source is: the first local directory holding all
 * its files, else DATA_DIR/downloads/NAME when complete there. Returns a
 * malloc'd path in *path (a directory; for single-archive datasets the
 * archive inside it), or an ICS_ERR_IO error that lists where it looked
 * and suggests --download. */
ics_status ics_source_locate(const ics_catalog_entry *entry, const char *data_dir, char **path,
                             ics_error *err);
/* DATA_DIR/downloads/NAME (malloc'd). */
char *ics_source_download_dir(const ics_catalog_entry *entry, const char *data_dir, ics_error *err);



/* ics_source_load, after unpacking when needed: a folder source given as
 * an archive (.tgz, .tar.gz, .tar) is extracted safely beside it (into
 * ARCHIVE.d/) and read from its single top directory, or from
 * entry->folder_root when the catalog names one. progress (may be NULL)
 * hears about folder decoding, class by class. */
ics_status ics_source_prepare_and_load(ics_source_format format, const char *path,
                                       const ics_catalog_entry *entry, const char *data_dir,
                                       const char *const *class_names, int image_size,
                                       ics_progress_fn progress, void *progress_ctx, ics_raw_dataset *raw,
                                       ics_error *err);
#endif
