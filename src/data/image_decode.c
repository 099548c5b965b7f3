/* JPEG and PNG decoding, resize and center crop: see image_decode.h. */
#include "ics_build_config.h"
#include "data/image_decode.h"
#include "data/augment.h"
#include "core/alloc.h"

#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

/* libjpeg reports errors through error_exit, which must not return: we
 * jump back to the decoder with the message. */
typedef struct jpeg_failure {
    struct jpeg_error_mgr mgr;
    jmp_buf back;
    char message[JMSG_LENGTH_MAX];
} jpeg_failure;

static void jpeg_error_exit(j_common_ptr info)
{
    jpeg_failure *f = (jpeg_failure *)info->err;
    info->err->format_message(info, f->message);
    longjmp(f->back, 1);
}

/* Warnings (e.g. "premature end of data") make the image suspect: treat
 * them as errors so a truncated file is refused, not half-grey. */
static void jpeg_emit(j_common_ptr info, int level)
{
    if (level < 0) jpeg_error_exit(info);
}

static ics_status decode_jpeg(const char *path, FILE *file, uint8_t **rgb, int *height, int *width, ics_error *err)
{
    struct jpeg_decompress_struct info;
    jpeg_failure failure;
    /* volatile: modified between setjmp and longjmp. */
    uint8_t *volatile pixels = NULL;
    info.err = jpeg_std_error(&failure.mgr);
    failure.mgr.error_exit = jpeg_error_exit;
    failure.mgr.emit_message = jpeg_emit;
    if (setjmp(failure.back)) {
        jpeg_destroy_decompress(&info);
        free(pixels);
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: damaged JPEG: %s", path, failure.message);
    }
    jpeg_create_decompress(&info);
    jpeg_stdio_src(&info, file);
    jpeg_read_header(&info, TRUE);
    info.out_color_space = JCS_RGB; /* grey and YCbCr both come out as RGB */
    jpeg_start_decompress(&info);
    if (info.output_components != 3 || info.output_width == 0 || info.output_height == 0 ||
        info.output_width > 20000 || info.output_height > 20000) {
        jpeg_destroy_decompress(&info);
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: unsupported JPEG (%ux%u, %d components)", path, info.output_width,
                        info.output_height, info.output_components);
    }
    size_t stride = (size_t)info.output_width * 3;
    pixels = ics_malloc(stride * info.output_height, "decoded image", err);
    if (!pixels) {
        jpeg_destroy_decompress(&info);
        return ICS_ERR_NOMEM;
    }
    while (info.output_scanline < info.output_height) {
        JSAMPROW row = pixels + stride * info.output_scanline;
        jpeg_read_scanlines(&info, &row, 1);
    }
    jpeg_finish_decompress(&info);
    *height = (int)info.output_height;
    *width = (int)info.output_width;
    jpeg_destroy_decompress(&info);
    *rgb = pixels;
    return ICS_OK;
}

static ics_status decode_png(const char *path, uint8_t **rgb, int *height, int *width, ics_error *err)
{
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&image, path))
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: damaged PNG: %s", path, image.message);
    /* Alpha is composited onto black by the simplified API. */
    image.format = PNG_FORMAT_RGB;
    if (image.width == 0 || image.height == 0 || image.width > 20000 || image.height > 20000) {
        png_image_free(&image);
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: unsupported PNG size %ux%u", path, image.width, image.height);
    }
    uint8_t *pixels = ics_malloc(PNG_IMAGE_SIZE(image), "decoded image", err);
    if (!pixels) {
        png_image_free(&image);
        return ICS_ERR_NOMEM;
    }
    if (!png_image_finish_read(&image, NULL, pixels, 0, NULL)) {
        free(pixels);
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: damaged PNG: %s", path, image.message);
    }
    *height = (int)image.height;
    *width = (int)image.width;
    *rgb = pixels;
    return ICS_OK;
}

ics_status ics_image_decode(const char *path, uint8_t **rgb, int *height, int *width, ics_error *err)
{
    *rgb = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return ICS_FAIL(err, ICS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char magic[8] = {0};
    size_t got = fread(magic, 1, sizeof magic, f);
    ics_status st;
    if (got >= 3 && magic[0] == 0xff && magic[1] == 0xd8 && magic[2] == 0xff) {
        rewind(f);
        st = decode_jpeg(path, f, rgb, height, width, err);
        fclose(f);
    } else if (got == 8 && memcmp(magic, "\x89PNG\r\n\x1a\n", 8) == 0) {
        fclose(f);
        st = decode_png(path, rgb, height, width, err);
    } else {
        fclose(f);
        st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: neither JPEG nor PNG", path);
    }
    return st;
}

ics_status ics_image_resize_center_crop(const uint8_t *rgb, int height, int width, int size, uint8_t *out,
                                        ics_error *err)
{
    ics_geometry g = ics_geometry_eval(height, width, size, size);
    /* Float in [0,1] through the loader's own transform, then back to
     * uint8 with rounding (torchvision rounds after a uint8 resize). */
    size_t n = (size_t)size * size * 3;
    float *buf = ics_malloc(n * sizeof *buf, "resized image", err);
    if (!buf) return ICS_ERR_NOMEM;
    ics_augment_apply(rgb, height, width, 3, &g, NULL, NULL, buf);
    for (size_t i = 0; i < n; i++) {
        float v = buf[i] * 255.0f + 0.5f;
        out[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
    free(buf);
    return ICS_OK;
}
