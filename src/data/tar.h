/*
 * src/data/tar.h: a minimal reader for (gzip-compressed) tar archives, read
 * directly with zlib (no shelling out): ustar and GNU headers, GNU long
 * names ('L') and pax 'path' records, header checksums verified. Enough
 * for the CIFAR and Imagenette archives; also the safe extractor that
 * refuses any entry whose path could leave the target directory.
 */
#ifndef ICS_DATA_TAR_H
#define ICS_DATA_TAR_H

#include <stdint.h>
#include <icsparse/status.h>

typedef struct ics_tar ics_tar;

typedef struct ics_tar_entry {
    char name[4096];
    uint64_t size;
    char type; /* '0' regular file, '5' directory, '1'/'2' links, others as in the header */
} ics_tar_entry;

/* Opens an archive (gzip or plain tar). */
ics_status ics_tar_open(const char *path, ics_tar **out, ics_error *err);
void ics_tar_close(ics_tar *tar);
/* Moves to the next entry (skipping what was not read of the current
 * one). *done = 1 at the end of the archive. */
ics_status ics_tar_next(ics_tar *tar, ics_tar_entry *entry, int *done, ics_error *err);
/* Reads n bytes of the current entry's data (n <= what is left). */
ics_status ics_tar_read(ics_tar *tar, void *buf, uint64_t n, ics_error *err);

/* Extracts regular files and directories under dest_dir (created if
 * needed). Refuses absolute paths, '..' components and link entries,
 * before writing anything of that entry. */
ics_status ics_tar_extract(const char *archive, const char *dest_dir, ics_error *err);

#endif
