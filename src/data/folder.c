/*
 * Image-folder sources, the torchvision ImageFolder layout:
 *   DIR/train/CLASS/FILE and DIR/val/CLASS/FILE (or DIR/test/CLASS/FILE)
 * Classes are train's subfolder names in sorted order (ImageFolder's
 * rule); files are taken in sorted order, JPEG or PNG by content, those
 * with other extensions skipped as ImageFolder does. Each image is
 * resized (shorter side) and center-cropped to image_size x image_size,
 * RGB. The source's val/ (or test/) becomes the test split: icsparse
 * carves its own val from train.
 */
#include "ics_build_config.h"
#include "data/raw.h"
#include "data/convert.h"
#include "data/image_decode.h"
#include "data/sha256.h"
#include "core/alloc.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

ics_status ics_folder_load(const char *dir, int image_size, ics_progress_fn progress, void *progress_ctx,
                           ics_raw_dataset *raw, ics_error *err);

static int is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int visible_dir(const struct dirent *e)
{
    return e->d_name[0] != '.';
}

static int image_file(const struct dirent *e)
{
    const char *dot = strrchr(e->d_name, '.');
    return e->d_name[0] != '.' && dot &&
           (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0 || strcasecmp(dot, ".png") == 0);
}

static void free_list(struct dirent **list, int n)
{
    for (int i = 0; i < n; i++) free(list[i]);
    free(list);
}

/* Sorted subdirectories of dir (names malloc'd). */
static ics_status list_classes(const char *dir, char ***names, int *count, ics_error *err)
{
    struct dirent **list;
    int n = scandir(dir, &list, visible_dir, alphasort);
    if (n < 0) return ICS_FAIL(err, ICS_ERR_IO, "%s: cannot list", dir);
    char **out = ics_calloc((size_t)(n > 0 ? n : 1), sizeof *out, "class names", err);
    int k = 0;
    ics_status st = out ? ICS_OK : ICS_ERR_NOMEM;
    for (int i = 0; i < n && !st; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, list[i]->d_name);
        if (!is_dir(path)) continue;
        if (!(out[k] = ics_strdup(list[i]->d_name, err))) st = ICS_ERR_NOMEM;
        else k++;
    }
    free_list(list, n);
    if (!st && k == 0) st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: no class subfolders", dir);
    if (st) {
        for (int i = 0; out && i < k; i++) free(out[i]);
        free(out);
        return st;
    }
    *names = out;
    *count = k;
    return ICS_OK;
}

/* Decodes every image of split_dir/CLASS/ into split; digest covers the
 * file bytes in order. */
static ics_status load_split(const char *split_dir, char **classes, int num_classes, int size, ics_raw_split *split,
                             ics_sha256 *digest, ics_progress_fn progress, void *ctx, int64_t done_before,
                             ics_error *err)
{
    size_t image_bytes = (size_t)size * size * 3;
    int64_t cap = 0;
    ics_status st = ICS_OK;
    /* Class folders of this split must be classes of train. */
    char **here;
    int n_here;
    st = list_classes(split_dir, &here, &n_here, err);
    for (int i = 0; !st && i < n_here; i++) {
        int known = 0;
        for (int c = 0; c < num_classes && !known; c++) known = strcmp(here[i], classes[c]) == 0;
        if (!known) st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s/%s: class not present in train", split_dir, here[i]);
    }
    for (int i = 0; i < n_here; i++) free(here[i]);
    if (n_here) free(here);
    for (int c = 0; c < num_classes && !st; c++) {
        char class_dir[4096];
        snprintf(class_dir, sizeof class_dir, "%s/%s", split_dir, classes[c]);
        if (!is_dir(class_dir)) continue;
        struct dirent **files;
        int n = scandir(class_dir, &files, image_file, alphasort);
        if (n < 0) {
            st = ICS_FAIL(err, ICS_ERR_IO, "%s: cannot list", class_dir);
            break;
        }
        for (int i = 0; i < n && !st; i++) {
            char path[4096 + 256];
            snprintf(path, sizeof path, "%s/%s", class_dir, files[i]->d_name);
            if (split->count == cap) {
                cap = cap ? cap * 2 : 256;
                uint8_t *im = ics_realloc(split->images, (size_t)cap * image_bytes, "folder images", err);
                if (im) split->images = im;
                int32_t *lb = im ? ics_realloc(split->labels, (size_t)cap * sizeof *lb, "folder labels", err) : NULL;
                if (lb) split->labels = lb;
                if (!lb) {
                    st = ICS_ERR_NOMEM;
                    break;
                }
            }
            uint8_t *rgb;
            int h, w;
            st = ics_image_decode(path, &rgb, &h, &w, err);
            if (!st) st = ics_image_resize_center_crop(rgb, h, w, size, split->images + (size_t)split->count * image_bytes, err);
            if (!st) {
                split->labels[split->count++] = c;
                ics_sha256_update(digest, files[i]->d_name, strlen(files[i]->d_name));
                ics_sha256_update(digest, rgb, (size_t)h * w * 3);
            }
            free(rgb);
        }
        free_list(files, n);
        if (progress) progress(ctx, "decoding", done_before + c + 1, 2 * (int64_t)num_classes);
    }
    if (!st && split->count == 0) st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: no JPEG or PNG images", split_dir);
    return st;
}

ics_status ics_folder_load(const char *dir, int image_size, ics_progress_fn progress, void *progress_ctx,
                           ics_raw_dataset *raw, ics_error *err)
{
    memset(raw, 0, sizeof *raw);
    if (image_size <= 0)
        return ICS_FAIL(err, ICS_ERR_CONFIG, "%s: image folders need an image size (--image-size N)", dir);
    char train[4096], test[4096];
    snprintf(train, sizeof train, "%s/train", dir);
    snprintf(test, sizeof test, "%s/val", dir);
    if (!is_dir(test)) snprintf(test, sizeof test, "%s/test", dir);
    if (!is_dir(train) || !is_dir(test))
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: an image folder dataset needs train/ and val/ (or test/) subfolders", dir);
    char **classes;
    int num_classes;
    ics_status st = list_classes(train, &classes, &num_classes, err);
    if (st) return st;
    /* The digest covers decoded pixels and names: stable across re-encodes
     * of the archive, but any change of content shows. */
    ics_sha256 digest;
    ics_sha256_init(&digest);
    st = load_split(train, classes, num_classes, image_size, &raw->train, &digest, progress, progress_ctx, 0, err);
    if (!st)
        st = load_split(test, classes, num_classes, image_size, &raw->test, &digest, progress, progress_ctx,
                        num_classes, err);
    if (!st) st = ics_dataset_meta_set_classes(&raw->meta, (const char *const *)classes, num_classes, err);
    for (int i = 0; i < num_classes; i++) free(classes[i]);
    free(classes);
    if (!st) {
        uint8_t d[32];
        ics_sha256_final(&digest, d);
        ics_sha256_hex(d, raw->meta.source_sha256);
        raw->meta.height = raw->meta.width = image_size;
        raw->meta.channels = 3;
        if (!(raw->meta.source = ics_strdup(dir, err))) st = ICS_ERR_NOMEM;
    }
    if (st) ics_raw_dataset_clear(raw);
    return st;
}
