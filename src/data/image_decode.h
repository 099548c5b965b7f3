/*
 * src/data/image_decode.h: decoding one image file to 8-bit RGB (JPEG
 * through libjpeg-turbo, PNG through libpng's simplified API), and the
 * resize-shorter-side + center-crop that brings every image of a folder
 * dataset to one size.
 */
#ifndef ICS_DATA_IMAGE_DECODE_H
#define ICS_DATA_IMAGE_DECODE_H

#include <stdint.h>
#include <icsparse/status.h>

/* Decodes path (by content: JPEG or PNG magic) into a malloc'd RGB HWC
 * buffer. A damaged or unsupported file is a format error naming it. */
ics_status ics_image_decode(const char *path, uint8_t **rgb, int *height, int *width, ics_error *err);

/* Resizes the shorter side to size (bilinear, like torchvision's tensor
 * Resize without antialiasing) and center-crops size x size into out
 * (size*size*3 bytes), rounding to uint8. */
ics_status ics_image_resize_center_crop(const uint8_t *rgb, int height, int width, int size, uint8_t *out,
                                        ics_error *err);

#endif
