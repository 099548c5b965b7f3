/* src/data image folders: JPEG and PNG decoding, resize + center crop
 * against PyTorch, the ImageFolder layout, and bad images. Fixtures are
 * written here with libjpeg and libpng. */
#include "ics_build_config.h"
#include "test_util.h"
#include "data/image_decode.h"
#include "data/raw.h"
#include "data/source.h"

#include <jpeglib.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *tmp;

/* A smooth image with a little texture (values 10..236): JPEG keeps it close. */
static uint8_t *make_image(int h, int w, int seed)
{
    uint8_t *p = malloc((size_t)h * w * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                p[((size_t)y * w + x) * 3 + c] = (uint8_t)(10 + x * 150 / w + y * 60 / h + c * 10 + seed % 7 + (x * y + seed) % 5);
    return p;
}

static void write_png(const char *path, const uint8_t *rgb, int h, int w)
{
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    image.width = (png_uint_32)w;
    image.height = (png_uint_32)h;
    image.format = PNG_FORMAT_RGB;
    CU_ASSERT(png_image_write_to_file(&image, path, 0, rgb, 0, NULL));
}

static void write_jpeg(const char *path, const uint8_t *rgb, int h, int w)
{
    struct jpeg_compress_struct info;
    struct jpeg_error_mgr jerr;
    info.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&info);
    FILE *f = fopen(path, "wb");
    jpeg_stdio_dest(&info, f);
    info.image_width = (JDIMENSION)w;
    info.image_height = (JDIMENSION)h;
    info.input_components = 3;
    info.in_color_space = JCS_RGB;
    jpeg_set_defaults(&info);
    jpeg_set_quality(&info, 95, TRUE);
    jpeg_start_compress(&info, TRUE);
    while (info.next_scanline < info.image_height) {
        JSAMPROW row = (JSAMPROW)(rgb + (size_t)info.next_scanline * w * 3);
        jpeg_write_scanlines(&info, &row, 1);
    }
    jpeg_finish_compress(&info);
    jpeg_destroy_compress(&info);
    fclose(f);
}

static void test_decode_png_and_jpeg(void)
{
    uint8_t *img = make_image(37, 53, 1);
    char png[512], jpg[512];
    snprintf(png, sizeof png, "%s/a.png", tmp);
    snprintf(jpg, sizeof jpg, "%s/a.jpg", tmp);
    write_png(png, img, 37, 53);
    write_jpeg(jpg, img, 37, 53);
    uint8_t *rgb;
    int h, w;
    ics_error err;
    CU_ASSERT_EQUAL_FATAL(ics_image_decode(png, &rgb, &h, &w, &err), ICS_OK);
    CU_ASSERT(h == 37 && w == 53);
    CU_ASSERT_EQUAL(memcmp(rgb, img, 37 * 53 * 3), 0); /* PNG is lossless */
    free(rgb);
    CU_ASSERT_EQUAL_FATAL(ics_image_decode(jpg, &rgb, &h, &w, &err), ICS_OK);
    CU_ASSERT(h == 37 && w == 53);
    double diff = 0;
    for (int i = 0; i < 37 * 53 * 3; i++) diff += abs((int)rgb[i] - (int)img[i]);
    CU_ASSERT(diff / (37 * 53 * 3) < 4.0); /* quality 95 */
    free(rgb);
    free(img);
}

static void expect_decode_error(const char *path, const char *message)
{
    uint8_t *rgb = NULL;
    int h, w;
    ics_error err;
    ics_error_clear(&err);
    CU_ASSERT_NOT_EQUAL(ics_image_decode(path, &rgb, &h, &w, &err), ICS_OK);
    CU_ASSERT_PTR_NULL(rgb);
    if (!strstr(err.message, message)) printf("\n  got '%s', want '%s'\n", err.message, message);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, message));
}

/* Writes the first `keep` bytes of src to dst. */
static void truncate_copy(const char *src, const char *dst, double keep)
{
    size_t len;
    char *bytes = ics_test_read_file(src, &len);
    FILE *f = fopen(dst, "wb");
    fwrite(bytes, 1, (size_t)(len * keep), f);
    fclose(f);
    free(bytes);
}

static void test_bad_images(void)
{
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/a.jpg", tmp);
    snprintf(b, sizeof b, "%s/cut.jpg", tmp);
    truncate_copy(a, b, 0.5);
    expect_decode_error(b, "cut.jpg: damaged JPEG: ");
    snprintf(a, sizeof a, "%s/a.png", tmp);
    snprintf(b, sizeof b, "%s/cut.png", tmp);
    truncate_copy(a, b, 0.5);
    expect_decode_error(b, "cut.png: damaged PNG: ");
    free(ics_test_write_file(tmp, "text.png", "this is text\n"));
    snprintf(b, sizeof b, "%s/text.png", tmp);
    expect_decode_error(b, "text.png: neither JPEG nor PNG");
    snprintf(b, sizeof b, "%s/absent.jpg", tmp);
    expect_decode_error(b, "absent.jpg: cannot open");
}

static void test_resize_matches_torch(void)
{
    if (!ics_test_have_torch()) {
        printf("\n  skipped: no torch in $PYTHON_TORCH\n");
        return;
    }
    int shapes[3][3] = {{37, 53, 24}, {53, 37, 16}, {20, 30, 48}};
    char *dir = ics_test_tmpdir("resize");
    /* All cases through one PyTorch run (its start-up dominates). */
    for (int k = 0; k < 3; k++) {
        int h = shapes[k][0], w = shapes[k][1];
        uint8_t *img = make_image(h, w, k);
        float *f = malloc((size_t)h * w * 3 * sizeof *f);
        for (int i = 0; i < h * w * 3; i++) f[i] = img[i];
        int64_t shape[3] = {h, w, 3}, one[1] = {1};
        float size = (float)shapes[k][2];
        char name[32];
        snprintf(name, sizeof name, "rgb_%d", k);
        ics_test_npy_write_f32(dir, name, f, shape, 3);
        snprintf(name, sizeof name, "size_%d", k);
        ics_test_npy_write_f32(dir, name, &size, one, 1);
        free(f);
        free(img);
    }
    CU_ASSERT_EQUAL_FATAL(ics_test_run_torch("tests/tools/data_resize_ref.py", dir), 0);
    for (int k = 0; k < 3; k++) {
        int h = shapes[k][0], w = shapes[k][1], s = shapes[k][2];
        uint8_t *img = make_image(h, w, k);
        char name[32];
        snprintf(name, sizeof name, "want_%d", k);
        int64_t wshape[4];
        int ndim;
        float *want = ics_test_npy_read_f32(dir, name, wshape, &ndim);
        CU_ASSERT_PTR_NOT_NULL_FATAL(want);
        uint8_t *out = malloc((size_t)s * s * 3);
        ics_error err;
        CU_ASSERT_EQUAL(ics_image_resize_center_crop(img, h, w, s, out, &err), ICS_OK);
        float *got = malloc((size_t)s * s * 3 * sizeof *got);
        for (int i = 0; i < s * s * 3; i++) got[i] = out[i];
        /* Within one level: float32 rounding at exact .5 may differ. */
        ICS_ASSERT_CLOSE("resize + center crop", got, want, (size_t)s * s * 3, 1.0, 0);
        free(got);
        free(out);
        free(want);
        free(img);
    }
    ics_test_rmtree(dir);
    free(dir);
}

static void mkdirs(const char *a, const char *b, const char *c)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", tmp, a);
    mkdir(p, 0755);
    if (!b) return;
    snprintf(p, sizeof p, "%s/%s/%s", tmp, a, b);
    mkdir(p, 0755);
    if (!c) return;
    snprintf(p, sizeof p, "%s/%s/%s/%s", tmp, a, b, c);
    mkdir(p, 0755);
}

static void put(const char *rel, int h, int w, int seed, int jpeg)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", tmp, rel);
    uint8_t *img = make_image(h, w, seed);
    if (jpeg) write_jpeg(p, img, h, w);
    else write_png(p, img, h, w);
    free(img);
}

static void test_image_folder(void)
{
    mkdirs("folder", "train", "zebra");
    mkdirs("folder", "train", "ant");
    mkdirs("folder", "val", "zebra");
    mkdirs("folder", "val", "ant");
    put("folder/train/zebra/1.JPEG", 40, 60, 1, 1);
    put("folder/train/zebra/2.png", 50, 30, 2, 0);
    put("folder/train/ant/b.jpg", 33, 33, 3, 1);
    put("folder/train/ant/a.png", 64, 48, 4, 0);
    put("folder/train/ant/c.jpeg", 20, 25, 5, 1);
    put("folder/val/ant/x.png", 30, 40, 6, 0);
    put("folder/val/zebra/y.jpg", 30, 40, 7, 1);
    free(ics_test_write_file(tmp, "folder/train/ant/notes.txt", "skipped like ImageFolder\n"));
    char dir[512];
    snprintf(dir, sizeof dir, "%s/folder", tmp);
    ics_raw_dataset raw;
    ics_error err;
    CU_ASSERT_EQUAL_FATAL(ics_source_load(ICS_SOURCE_FOLDER, dir, NULL, 16, &raw, &err), ICS_OK);
    CU_ASSERT_EQUAL(raw.meta.num_classes, 2);
    CU_ASSERT_STRING_EQUAL(raw.meta.class_names[0], "ant"); /* sorted */
    CU_ASSERT_STRING_EQUAL(raw.meta.class_names[1], "zebra");
    CU_ASSERT_EQUAL(raw.train.count, 5);
    CU_ASSERT_EQUAL(raw.test.count, 2);
    CU_ASSERT(raw.meta.height == 16 && raw.meta.width == 16 && raw.meta.channels == 3);
    int want_labels[5] = {0, 0, 0, 1, 1};
    for (int i = 0; i < 5; i++) CU_ASSERT_EQUAL(raw.train.labels[i], want_labels[i]);
    /* Row 0 is ant/a.png (sorted): equal to its own resize. */
    uint8_t *img = make_image(64, 48, 4), crop[16 * 16 * 3];
    CU_ASSERT_EQUAL(ics_image_resize_center_crop(img, 64, 48, 16, crop, &err), ICS_OK);
    CU_ASSERT_EQUAL(memcmp(raw.train.images, crop, sizeof crop), 0);
    free(img);
    ics_raw_dataset_clear(&raw);

    CU_ASSERT_EQUAL(ics_source_load(ICS_SOURCE_FOLDER, dir, NULL, 0, &raw, &err), ICS_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "image folders need an image size (--image-size N)"));
    mkdirs("folder", "val", "spider");
    put("folder/val/spider/s.png", 10, 10, 8, 0);
    CU_ASSERT_EQUAL(ics_source_load(ICS_SOURCE_FOLDER, dir, NULL, 16, &raw, &err), ICS_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "val/spider: class not present in train"));
    snprintf(dir, sizeof dir, "%s/folder/val/spider/s.png", tmp);
    remove(dir);
    snprintf(dir, sizeof dir, "%s/folder/val/spider", tmp);
    rmdir(dir);
    /* A damaged image inside the folder names the file. */
    char src[512], dst[512];
    snprintf(src, sizeof src, "%s/folder/train/zebra/1.JPEG", tmp);
    snprintf(dst, sizeof dst, "%s/folder/train/zebra/3.jpg", tmp);
    truncate_copy(src, dst, 0.4);
    snprintf(dir, sizeof dir, "%s/folder", tmp);
    CU_ASSERT_EQUAL(ics_source_load(ICS_SOURCE_FOLDER, dir, NULL, 16, &raw, &err), ICS_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "zebra/3.jpg: damaged JPEG"));
    remove(dst);
    snprintf(dir, sizeof dir, "%s/folder/train", tmp);
    CU_ASSERT_EQUAL(ics_source_load(ICS_SOURCE_FOLDER, dir, NULL, 16, &raw, &err), ICS_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "needs train/ and val/ (or test/) subfolders"));
}

int main(void)
{
    tmp = ics_test_tmpdir("images");
    static const ics_test_case cases[] = {
        {"decode PNG and JPEG", test_decode_png_and_jpeg},
        {"bad images", test_bad_images},
        {"resize + center crop matches PyTorch", test_resize_matches_torch},
        {"ImageFolder layout", test_image_folder},
        {NULL, NULL}};
    ics_test_add_suite("images", cases);
    int rc = ics_test_main("test_data_images");
    ics_test_rmtree(tmp);
    free(tmp);
    return rc;
}
