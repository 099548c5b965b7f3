/* Finding and decoding a dataset's raw source: see source.h. */
#include "ics_build_config.h"
#include "data/source.h"
#include "data/idx.h"
#include "data/tar.h"
#include "core/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>

/* Decoders implemented in their own files (cifar.c, folder.c). */
ics_status ics_cifar_load(const char *archive, int classes, ics_raw_dataset *raw, ics_error *err);
ics_status ics_folder_load(const char *dir, int image_size, ics_progress_fn progress, void *progress_ctx,
                           ics_raw_dataset *raw, ics_error *err);

ics_status ics_source_load(ics_source_format format, const char *path, const char *const *class_names,
                           int image_size, ics_raw_dataset *raw, ics_error *err)
{
    switch (format) {
    case ICS_SOURCE_IDX: return ics_idx_load_dir(path, class_names ? class_names : ics_mnist_classes, raw, err);
    case ICS_SOURCE_CIFAR10: return ics_cifar_load(path, 10, raw, err);
    case ICS_SOURCE_CIFAR100: return ics_cifar_load(path, 100, raw, err);
    case ICS_SOURCE_FOLDER: return ics_folder_load(path, image_size, NULL, NULL, raw, err);
    }
    return ICS_FAIL(err, ICS_ERR_INVALID, "unknown source format %d", (int)format);
}

static char *join(const char *a, const char *b, ics_error *err)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = ics_malloc(n, "path", err);
    if (p) snprintf(p, n, "%s/%s", a, b);
    return p;
}

/* 1 when dir holds every file of the entry (IDX also accepts them
 * uncompressed, name without .gz). */
static int complete(const ics_catalog_entry *entry, const char *dir)
{
    struct stat sb;
    char path[4096];
    for (int i = 0; i < entry->file_count; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, entry->files[i].name);
        if (stat(path, &sb) == 0) continue;
        size_t len = strlen(path);
        if (entry->format == ICS_SOURCE_IDX && len > 3 && strcmp(path + len - 3, ".gz") == 0) {
            path[len - 3] = '\0';
            if (stat(path, &sb) == 0) continue;
        }
        return 0;
    }
    return 1;
}

char *ics_source_download_dir(const ics_catalog_entry *entry, const char *data_dir, ics_error *err)
{
    size_t n = strlen(data_dir) + strlen(entry->name) + 16;
    char *p = ics_malloc(n, "path", err);
    if (p) snprintf(p, n, "%s/downloads/%s", data_dir, entry->name);
    return p;
}

ics_status ics_source_locate(const ics_catalog_entry *entry, const char *data_dir, char **path,
                             ics_error *err)
{
    *path = NULL;
    char looked[2048] = "";
    const char *found = NULL;
    for (int i = 0; i < 3 && entry->local_dirs[i] && !found; i++) {
        if (complete(entry, entry->local_dirs[i])) found = entry->local_dirs[i];
        else snprintf(looked + strlen(looked), sizeof looked - strlen(looked), "%s, ", entry->local_dirs[i]);
    }
    char *downloads = NULL;
    if (!found) {
        downloads = ics_source_download_dir(entry, data_dir, err);
        if (!downloads) return ICS_ERR_NOMEM;
        if (complete(entry, downloads)) found = downloads;
    }
    if (!found) {
        ics_status st = ICS_FAIL(err, ICS_ERR_IO,
                                 "%s: source not found (looked in %s%s); run with --download or give --source",
                                 entry->name, looked, downloads);
        free(downloads);
        return st;
    }
    /* Single-archive sources are named by the archive itself. */
    if (entry->format == ICS_SOURCE_CIFAR10 || entry->format == ICS_SOURCE_CIFAR100 ||
        entry->format == ICS_SOURCE_FOLDER)
        *path = join(found, entry->files[0].name, err);
    else
        *path = ics_strdup(found, err);
    free(downloads);
    return *path ? ICS_OK : ICS_ERR_NOMEM;
}

ics_status ics_source_prepare_and_load(ics_source_format format, const char *path,
                                       const ics_catalog_entry *entry, const char *data_dir,
                                       const char *const *class_names, int image_size,
                                       ics_progress_fn progress, void *progress_ctx, ics_raw_dataset *raw,
                                       ics_error *err)
{
    (void)data_dir;
    struct stat sb;
    if (format == ICS_SOURCE_FOLDER && stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return ics_folder_load(path, image_size, progress, progress_ctx, raw, err);
    if (format != ICS_SOURCE_FOLDER || stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
        return ics_source_load(format, path, class_names, image_size, raw, err);
    char *dest = ics_malloc(strlen(path) + 4, "path", err);
    if (!dest) return ICS_ERR_NOMEM;
    snprintf(dest, strlen(path) + 4, "%s.d", path);
    ics_status st = ics_tar_extract(path, dest, err);
    char *root = NULL;
    if (!st && entry && entry->folder_root) {
        root = join(dest, entry->folder_root, err);
    } else if (!st) {
        /* The archive's single top directory, if it has exactly one. */
        DIR *d = opendir(dest);
        struct dirent *de;
        int dirs = 0;
        char top[1024] = "";
        while (d && (de = readdir(d))) {
            if (de->d_name[0] == '.') continue;
            dirs++;
            snprintf(top, sizeof top, "%s", de->d_name);
        }
        if (d) closedir(d);
        root = dirs == 1 ? join(dest, top, err) : ics_strdup(dest, err);
    }
    if (!st && !root) st = ICS_ERR_NOMEM;
    if (!st) st = ics_folder_load(root, image_size, progress, progress_ctx, raw, err);
    free(root);
    free(dest);
    return st;
}
