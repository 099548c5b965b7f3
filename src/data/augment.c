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

/* Resampling tables for one axis: for output index o of the virtual
 * image, the two source indices and the weight of the second. */
#define TABLE_MAX 2048

static void axis_table(int box_start, int box_len, int virt_len, int win, int out_len, int *i0, int *i1, float *frac)
{
    float scale = (float)box_len / virt_len;
    for (int o = 0; o < out_len; o++) {
        int v = o + win;
        float f = (v + 0.5f) * scale - 0.5f;
        if (f < 0) f = 0;
        int a = (int)f;
        if (a > box_len - 1) a = box_len - 1;
        int b = a + 1 < box_len ? a + 1 : box_len - 1;
        i0[o] = box_start + a;
        i1[o] = box_start + b;
        frac[o] = f - a;
    }
}

void ics_augment_apply(const uint8_t *src, int h, int w, int c, const ics_geometry *g, const float *mean,
                       const float *std, float *out)
{
    (void)h;
    float scale[4], shift[4];
    for (int k = 0; k < c; k++) {
        /* (p/255 - mean)/std = p * scale + shift */
        float s = std ? std[k] : 1.0f;
        scale[k] = 1.0f / (255.0f * s);
        shift[k] = mean ? -mean[k] / s : 0.0f;
    }
    int same_size = g->box_h == g->virt_h && g->box_w == g->virt_w;
    /* F.interpolate(align_corners=False): src = (dst + 0.5) * in/out - 0.5,
     * clamped at 0 below, neighbours clamped to the box's last row/column.
     * Tables per axis keep the inner loop to loads and multiply-adds. */
    int x0[TABLE_MAX], x1[TABLE_MAX], y0[TABLE_MAX], y1[TABLE_MAX];
    float fx[TABLE_MAX], fy[TABLE_MAX];
    int tables = !same_size && g->out_w <= TABLE_MAX && g->out_h <= TABLE_MAX;
    if (tables) {
        axis_table(g->box_x, g->box_w, g->virt_w, g->win_x, g->out_w, x0, x1, fx);
        axis_table(g->box_y, g->box_h, g->virt_h, g->win_y, g->out_h, y0, y1, fy);
    }
    for (int oy = 0; oy < g->out_h; oy++) {
        int vy = oy + g->win_y;
        float *orow = out + (size_t)oy * g->out_w * c;
        for (int ox = 0; ox < g->out_w; ox++) {
            int oxs = g->flip ? g->out_w - 1 - ox : ox; /* which virtual column lands here */
            int vx = oxs + g->win_x;
            float *o = orow + (size_t)ox * c;
            if (vy < 0 || vy >= g->virt_h || vx < 0 || vx >= g->virt_w) {
                for (int k = 0; k < c; k++) o[k] = shift[k]; /* zero padding */
                continue;
            }
            if (same_size) {
                const uint8_t *p = src + ((size_t)(g->box_y + vy) * w + (g->box_x + vx)) * c;
                for (int k = 0; k < c; k++) o[k] = p[k] * scale[k] + shift[k];
                continue;
            }
            int ya, yb, xa, xb;
            float ly, lx;
            if (tables) {
                ya = y0[oy];
                yb = y1[oy];
                ly = fy[oy];
                xa = x0[oxs];
                xb = x1[oxs];
                lx = fx[oxs];
            } else {
                axis_table(g->box_y, g->box_h, g->virt_h, g->win_y + oy, 1, &ya, &yb, &ly);
                axis_table(g->box_x, g->box_w, g->virt_w, g->win_x + oxs, 1, &xa, &xb, &lx);
            }
            const uint8_t *r0 = src + (size_t)ya * w * c, *r1 = src + (size_t)yb * w * c;
            int c0 = xa * c, c1 = xb * c;
            for (int k = 0; k < c; k++) {
                float top = r0[c0 + k] + (r0[c1 + k] - r0[c0 + k]) * lx;
                float bottom = r1[c0 + k] + (r1[c1 + k] - r1[c0 + k]) * lx;
                o[k] = (top + (bottom - top) * ly) * scale[k] + shift[k];
            }
        }
    }
}
