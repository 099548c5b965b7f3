/*
 * src/data/augment.h: per-image transforms from uint8 HWC to normalized
 * float HWC, matching torchvision's tensor transforms (bilinear without
 * antialiasing, half-pixel centres as F.interpolate(align_corners=False)):
 *   eval:     Resize(shorter side) + CenterCrop(size)
 *   training: RandomCrop(size, padding) with zero fill, RandomResizedCrop
 *             (scale 0.08-1, ratio 3/4-4/3, 10 tries then the centre
 *             fallback), RandomHorizontalFlip(0.5)
 *   then ToTensor + Normalize(mean, std): (pixel/255 - mean) / std.
 *
 * Every transform is one "geometry": a source box resized to a virtual
 * image, of which an output window is taken (pixels of the window outside
 * the virtual image are zero padding), optionally mirrored.
 */
#ifndef ICS_DATA_AUGMENT_H
#define ICS_DATA_AUGMENT_H

#include <stdint.h>
#include "data/rng.h"

typedef struct ics_geometry {
    int box_y, box_x, box_h, box_w; /* source region (inside the image) */
    int virt_h, virt_w;             /* the region resized to this */
    int win_y, win_x;               /* output window's top-left in the virtual image (may be < 0: padding) */
    int out_h, out_w;
    int flip;                       /* mirror the output horizontally */
} ics_geometry;

/* Applies a geometry and normalization to one image. mean/std per channel
 * (NULL: no normalization, values in [0,1]). */
void ics_augment_apply(const uint8_t *src, int h, int w, int c, const ics_geometry *g, const float *mean,
                       const float *std, float *out);

/* Identity geometry (as stored). */
ics_geometry ics_geometry_identity(int h, int w);
/* Eval: resize the shorter side to resize_to (aspect kept, sizes truncated
 * like torchvision), then center-crop size x size (offsets rounded). */
ics_geometry ics_geometry_eval(int h, int w, int resize_to, int size);
/* RandomCrop(size = h x w, padding = pad). */
ics_geometry ics_geometry_random_crop(int h, int w, int pad, ics_data_rng *rng);
/* RandomResizedCrop(size) with torchvision's default scale and ratio. */
ics_geometry ics_geometry_random_resized_crop(int h, int w, int size, ics_data_rng *rng);

#endif
