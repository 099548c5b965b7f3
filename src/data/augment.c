/* Image transforms matching torchvision's tensor path: see augment.h. */
#include "ics_build_config.h"
#include "data/augment.h"

#include <math.h>
#include <stddef.h>

ics_geometry ics_geometry_identity(int h, int w)
{
    ics_geometry g = {0, 0, h, w, h, w, 0, 0, h, w, 0};
    return g;
}

ics_geometry ics_geometry_eval(int h, int w, int resize_to, int size)
{
    /* torchvision Resize(int): the shorter side becomes resize_to, the
     * longer int(resize_to * long / short) (truncated). */
    int vh = h, vw = w;
    if (resize_to > 0) {
        if (h <= w) {
            vh = resize_to;
            vw = (int)((long long)resize_to * w / h);
        } else {
            vw = resize_to;
            vh = (int)((long long)resize_to * h / w);
        }
    }
    /* CenterCrop: top = int(round((vh - size) / 2.0)). */
    ics_geometry g = {0, 0, h, w, vh, vw, (int)lround((vh - size) / 2.0), (int)lround((vw - size) / 2.0), size, size, 0};
    return g;
}

ics_geometry ics_geometry_random_crop(int h, int w, int pad, ics_data_rng *rng)
{
    /* Padded image is (h+2pad) x (w+2pad); the crop's top-left is uniform
     * over [0, 2pad]; in unpadded coordinates that is [-pad, pad]. */
    ics_geometry g = ics_geometry_identity(h, w);
    g.win_y = (int)ics_data_rng_below(rng, (uint64_t)(2 * pad + 1)) - pad;
    g.win_x = (int)ics_data_rng_below(rng, (uint64_t)(2 * pad + 1)) - pad;
    return g;
}

ics_geometry ics_geometry_random_resized_crop(int h, int w, int size, ics_data_rng *rng)
{
    /* torchvision RandomResizedCrop.get_params. */
    double area = (double)h * w;
    double log_lo = log(3.0 / 4.0), log_hi = log(4.0 / 3.0);
    for (int attempt = 0; attempt < 10; attempt++) {
        double target = area * (0.08 + (1.0 - 0.08) * ics_data_rng_uniform(rng));
        double aspect = exp(log_lo + (log_hi - log_lo) * ics_data_rng_uniform(rng));
        int cw = (int)lround(sqrt(target * aspect));
        int ch = (int)lround(sqrt(target / aspect));
        if (cw > 0 && cw <= w && ch > 0 && ch <= h) {
            int y = (int)ics_data_rng_below(rng, (uint64_t)(h - ch + 1));
            int x = (int)ics_data_rng_below(rng, (uint64_t)(w - cw + 1));
            ics_geometry g = {y, x, ch, cw, size, size, 0, 0, size, size, 0};
            return g;
        }
    }
    /* Fallback: the whole image, clamped to the ratio range, centred. */
    double ratio = (double)w / h;
    int cw = w, ch = h;
    if (ratio < 3.0 / 4.0) ch = (int)lround(w / (3.0 / 4.0));
    else if (ratio > 4.0 / 3.0) cw = (int)lround(h * (4.0 / 3.0));
    ics_geometry g = {(h - ch) / 2, (w - cw) / 2, ch, cw, size, size, 0, 0, size, size, 0};
    return g;
}

void ics_augment_apply(const uint8_t *src, int h, int w, int c, const ics_geometry *g, const float *mean,
                       const float *std, float *out)
{
    float scale[4], shift[4];
    for (int k = 0; k < c; k++) {
        /* (p/255 - mean)/std = p * scale + shift */
        float s = std ? std[k] : 1.0f;
        scale[k] = 1.0f / (255.0f * s);
        shift[k] = mean ? -mean[k] / s : 0.0f;
    }
    /* F.interpolate(align_corners=False): src = (dst + 0.5) * in/out - 0.5,
     * clamped at 0 below, neighbours clamped to the last row/column. */
    float sy = (float)g->box_h / g->virt_h, sx = (float)g->box_w / g->virt_w;
    int same_size = g->box_h == g->virt_h && g->box_w == g->virt_w;
    for (int oy = 0; oy < g->out_h; oy++) {
        int vy = oy + g->win_y;
        for (int ox = 0; ox < g->out_w; ox++) {
            int vx = (g->flip ? g->out_w - 1 - ox : ox) + g->win_x;
            float *o = out + ((size_t)oy * g->out_w + ox) * c;
            if (vy < 0 || vy >= g->virt_h || vx < 0 || vx >= g->virt_w) {
                for (int k = 0; k < c; k++) o[k] = shift[k]; /* zero padding */
                continue;
            }
            if (same_size) {
                const uint8_t *p = src + ((size_t)(g->box_y + vy) * w + (g->box_x + vx)) * c;
                for (int k = 0; k < c; k++) o[k] = p[k] * scale[k] + shift[k];
                continue;
            }
            float fy = (vy + 0.5f) * sy - 0.5f, fx = (vx + 0.5f) * sx - 0.5f;
            if (fy < 0) fy = 0;
            if (fx < 0) fx = 0;
            int y0 = (int)fy, x0 = (int)fx;
            int y1 = y0 + 1 < g->box_h ? y0 + 1 : g->box_h - 1;
            int x1 = x0 + 1 < g->box_w ? x0 + 1 : g->box_w - 1;
            if (y0 > g->box_h - 1) y0 = g->box_h - 1;
            if (x0 > g->box_w - 1) x0 = g->box_w - 1;
            float ly = fy - y0, lx = fx - x0;
            const uint8_t *r0 = src + (size_t)(g->box_y + y0) * w * c;
            const uint8_t *r1 = src + (size_t)(g->box_y + y1) * w * c;
            int c0 = (g->box_x + x0) * c, c1 = (g->box_x + x1) * c;
            for (int k = 0; k < c; k++) {
                float top = r0[c0 + k] + (r0[c1 + k] - r0[c0 + k]) * lx;
                float bottom = r1[c0 + k] + (r1[c1 + k] - r1[c0 + k]) * lx;
                o[k] = (top + (bottom - top) * ly) * scale[k] + shift[k];
            }
        }
    }
    (void)h;
}
