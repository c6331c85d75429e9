/* CLIP preprocessing as transformers' CLIPImageProcessor (4.44) does it on a PIL image:
 * Pillow bicubic resize of the short side, center crop, rescale, normalise. Also
 * LLaVA's expand2square. Facts taken from Pillow's libImaging/Resample.c and
 * transformers' image_transforms.py; the code is our own. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/image.h"

/* Pillow keeps filter weights as 22-bit fixed point for 8-bit images: 32 bits minus 8
 * for the pixel and 2 of headroom for the kernel's negative lobes. */
#define RESAMPLE_BITS 22

clip_preprocess_config clip_config_default(int size)
{
    clip_preprocess_config c = {
        .shortest_edge = size, .crop_size = size, .rescale = 1.0 / 255.0,
        .mean = {0.48145466f, 0.4578275f, 0.40821073f},
        .std = {0.26862954f, 0.26130258f, 0.27577711f},
    };
    return c;
}

void image_mean_u8(const float mean[3], uint8_t out[3])
{
    for (int c = 0; c < 3; c++) {
        double v = (double)mean[c] * 255.0;
        out[c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); /* int() truncates */
    }
}

/* Every buffer made from an image is held to the limits it was decoded under: padding to
 * a square or resizing can make far more pixels than the file holds. `what` says how the
 * w x h buffer comes about. */
static aspo_status check_made(const image_rgb8 *img, const char *what, int64_t w, int64_t h)
{
    image_limits lim = image_limits_resolve(&img->limits);
    if (w <= lim.max_side && h <= lim.max_side && w * h <= lim.max_pixels) return ASPO_OK;
    return aspo_fail(ASPO_ERR_FORMAT,
                     "%s: %s makes a %lldx%lld buffer (%lld pixels), over the limit (max side "
                     "%d, max %lld pixels; --max-image-pixels); crop or shrink the image, or "
                     "raise the limit if this is intended",
                     img->name ? img->name : "image", what, (long long)w, (long long)h,
                     (long long)(w * h), lim.max_side, (long long)lim.max_pixels);
}

/* out, made from img, keeps its limits and name for the checks of the next step. */
static aspo_status inherit(image_rgb8 *out, const image_rgb8 *img)
{
    out->limits = img->limits;
    if (!img->name) return ASPO_OK;
    out->name = strdup(img->name);
    if (out->name) return ASPO_OK;
    image_free(out);
    return aspo_fail(ASPO_ERR_OOM, "%s: out of memory", img->name);
}

static double bicubic(double x)
{
    const double a = -0.5; /* Pillow's (and Keys') choice */
    if (x < 0) x = -x;
    if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
    return 0;
}

/* Per output index: first input index, tap count, and ksize fixed-point weights. When
 * shrinking the kernel is stretched by the scale (antialiasing); weights are normalised
 * to sum 1 in double, then rounded half away from zero to RESAMPLE_BITS. */
typedef struct resample_coeffs {
    int ksize;
    int *first, *count;
    int32_t *w; /* (out, ksize) */
} resample_coeffs;

static void coeffs_free(resample_coeffs *c)
{
    free(c->first);
    free(c->count);
    free(c->w);
}

static aspo_status coeffs_make(int in, int out, resample_coeffs *c)
{
    double scale = (double)in / out, fscale = scale < 1 ? 1 : scale;
    double support = 2.0 * fscale;
    c->ksize = (int)ceil(support) * 2 + 1;
    c->first = malloc(sizeof(int) * out);
    c->count = malloc(sizeof(int) * out);
    c->w = calloc((size_t)out * c->ksize, sizeof(int32_t));
    double *k = malloc(sizeof(double) * c->ksize);
    if (!c->first || !c->count || !c->w || !k) {
        free(k);
        coeffs_free(c);
        return aspo_fail(ASPO_ERR_OOM, "image resize: cannot allocate %d x %d weights", out,
                         c->ksize);
    }
    for (int o = 0; o < out; o++) {
        double center = (o + 0.5) * scale, sum = 0;
        int lo = (int)(center - support + 0.5), hi = (int)(center + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in) hi = in;
        int n = hi - lo;
        for (int i = 0; i < n; i++) {
            k[i] = bicubic((i + lo - center + 0.5) / fscale);
            sum += k[i];
        }
        for (int i = 0; i < n; i++) {
            double v = sum != 0 ? k[i] / sum : k[i];
            v *= (double)(1 << RESAMPLE_BITS);
            c->w[(size_t)o * c->ksize + i] = (int32_t)(v < 0 ? v - 0.5 : v + 0.5);
        }
        c->first[o] = lo;
        c->count[o] = n;
    }
    free(k);
    return ASPO_OK;
}

static uint8_t fixed_to_u8(int32_t acc)
{
    acc >>= RESAMPLE_BITS; /* arithmetic shift: floor, then clip */
    return (uint8_t)(acc < 0 ? 0 : acc > 255 ? 255 : acc);
}

/* One separable pass along width (horiz) or height: src (h,w,3) -> dst. Each output
 * pixel is written by one thread; the sum order is fixed, so threads do not matter. */
static void resample_pass(const uint8_t *src, int h, int w, uint8_t *dst, int oh, int ow,
                          const resample_coeffs *c, int horiz)
{
    #pragma omp parallel for schedule(static)
    for (int y = 0; y < oh; y++) {
        for (int x = 0; x < ow; x++) {
            int o = horiz ? x : y;
            const int32_t *k = c->w + (size_t)o * c->ksize;
            int32_t acc[3] = {1 << (RESAMPLE_BITS - 1), 1 << (RESAMPLE_BITS - 1),
                              1 << (RESAMPLE_BITS - 1)};
            for (int i = 0; i < c->count[o]; i++) {
                int sy = horiz ? y : c->first[o] + i, sx = horiz ? c->first[o] + i : x;
                const uint8_t *p = src + ((size_t)sy * w + sx) * 3;
                for (int ch = 0; ch < 3; ch++) acc[ch] += (int32_t)p[ch] * k[i];
            }
            uint8_t *q = dst + ((size_t)y * ow + x) * 3;
            for (int ch = 0; ch < 3; ch++) q[ch] = fixed_to_u8(acc[ch]);
        }
    }
    (void)h;
}

aspo_status image_resize_bicubic(const image_rgb8 *img, int out_h, int out_w, image_rgb8 *out)
{
    memset(out, 0, sizeof *out);
    if (!img || !img->data || img->height <= 0 || img->width <= 0)
        return aspo_fail(ASPO_ERR_USAGE, "image resize: empty input image");
    if (out_h <= 0 || out_w <= 0)
        return aspo_fail(ASPO_ERR_USAGE, "image resize: output %dx%d is empty", out_w, out_h);
    int h = img->height, w = img->width;
    char what[96];
    snprintf(what, sizeof what, "resizing the %dx%d image to %dx%d", w, h, out_w, out_h);
    aspo_status st = check_made(img, what, out_w, out_h);
    if (!st && w != out_w && h != out_h) st = check_made(img, what, out_w, h); /* intermediate */
    if (st) return st;
    /* Horizontal pass first, then vertical; a pass whose size does not change is skipped,
     * as in Pillow. Each pass rounds to uint8. */
    const uint8_t *cur = img->data;
    uint8_t *tmp = NULL;
    out->data = malloc((size_t)out_h * out_w * 3);
    if (!out->data) return aspo_fail(ASPO_ERR_OOM, "image resize: cannot allocate output");
    out->height = out_h;
    out->width = out_w;
    if (w != out_w) {
        resample_coeffs c;
        if ((st = coeffs_make(w, out_w, &c)) != ASPO_OK) goto fail;
        uint8_t *dst = h == out_h ? out->data : (tmp = malloc((size_t)h * out_w * 3));
        if (!dst) {
            coeffs_free(&c);
            st = aspo_fail(ASPO_ERR_OOM, "image resize: cannot allocate temporary");
            goto fail;
        }
        resample_pass(cur, h, w, dst, h, out_w, &c, 1);
        coeffs_free(&c);
        cur = dst;
        w = out_w;
    }
    if (h != out_h) {
        resample_coeffs c;
        if ((st = coeffs_make(h, out_h, &c)) != ASPO_OK) goto fail;
        resample_pass(cur, h, w, out->data, out_h, w, &c, 0);
        coeffs_free(&c);
    } else if (cur == img->data) {
        memcpy(out->data, img->data, (size_t)h * w * 3); /* same size: Pillow copies */
    }
    free(tmp);
    return inherit(out, img);
fail:
    free(tmp);
    image_free(out);
    return st;
}

aspo_status image_pad_to_square(const image_rgb8 *img, const uint8_t mean[3], image_rgb8 *out)
{
    memset(out, 0, sizeof *out);
    if (!img || !img->data || img->height <= 0 || img->width <= 0)
        return aspo_fail(ASPO_ERR_USAGE, "image_pad_to_square: empty input image");
    int h = img->height, w = img->width, s = h > w ? h : w;
    char what[80];
    snprintf(what, sizeof what, "padding the %dx%d image to a square", w, h);
    aspo_status st = check_made(img, what, s, s);
    if (st) return st;
    out->data = malloc((size_t)s * s * 3);
    if (!out->data) return aspo_fail(ASPO_ERR_OOM, "image_pad_to_square: %dx%d", s, s);
    out->height = out->width = s;
    for (size_t i = 0; i < (size_t)s * s; i++) memcpy(out->data + 3 * i, mean, 3);
    int top = (s - h) / 2, left = (s - w) / 2;
    for (int y = 0; y < h; y++)
        memcpy(out->data + ((size_t)(y + top) * s + left) * 3, img->data + (size_t)y * w * 3,
               (size_t)w * 3);
    return inherit(out, img);
}

aspo_status clip_preprocess(const image_rgb8 *img, const clip_preprocess_config *cfg,
                            float *out)
{
    if (!img || !img->data || img->height <= 0 || img->width <= 0)
        return aspo_fail(ASPO_ERR_USAGE, "clip_preprocess: empty input image");
    if (!cfg || cfg->crop_size <= 0 || cfg->shortest_edge < 0)
        return aspo_fail(ASPO_ERR_USAGE, "clip_preprocess: crop_size must be > 0");
    for (int c = 0; c < 3; c++)
        if (!(cfg->std[c] != 0))
            return aspo_fail(ASPO_ERR_USAGE, "clip_preprocess: std[%d] is zero", c);
    image_rgb8 resized = {0};
    const image_rgb8 *src = img;
    if (cfg->shortest_edge > 0) {
        if (cfg->crop_size > cfg->shortest_edge)
            return aspo_fail(ASPO_ERR_USAGE,
                             "clip_preprocess: crop_size %d > shortest_edge %d (padding the "
                             "crop is not supported)", cfg->crop_size, cfg->shortest_edge);
        /* transformers' get_resize_output_image_size: short side -> shortest_edge, long
         * side int(size * long / short) (truncated). */
        int h = img->height, w = img->width, size = cfg->shortest_edge;
        int shrt = w <= h ? w : h, lng = w <= h ? h : w;
        int64_t nl = (int64_t)((double)size * lng / shrt); /* below 2^62: both are ints */
        char what[96];
        snprintf(what, sizeof what, "resizing the %dx%d image to short side %d", w, h, size);
        aspo_status st = check_made(img, what, w <= h ? size : nl, w <= h ? nl : size);
        if (st) return st; /* and nl fits an int: the side limit is one */
        int oh = w <= h ? (int)nl : size, ow = w <= h ? size : (int)nl;
        st = image_resize_bicubic(img, oh, ow, &resized);
        if (st != ASPO_OK) return st;
        src = &resized;
    }
    int crop = cfg->crop_size;
    if (src->height < crop || src->width < crop) {
        image_free(&resized);
        return aspo_fail(ASPO_ERR_USAGE, "clip_preprocess: %dx%d image is smaller than the "
                         "%d crop", src->width, src->height, crop);
    }
    int top = (src->height - crop) / 2, left = (src->width - crop) / 2;
    /* numpy: x.astype(float64) * scale -> float32, then (x - mean) / std in float32. */
    for (int c = 0; c < 3; c++) {
        float mean = cfg->mean[c], std = cfg->std[c];
        for (int y = 0; y < crop; y++)
            for (int x = 0; x < crop; x++) {
                uint8_t v = src->data[((size_t)(y + top) * src->width + x + left) * 3 + c];
                float r = (float)((double)v * cfg->rescale);
                out[((size_t)c * crop + y) * crop + x] = (r - mean) / std;
            }
    }
    image_free(&resized);
    return ASPO_OK;
}

aspo_status blip_preprocess(const image_rgb8 *img, const clip_preprocess_config *cfg,
                            float *out)
{
    if (!img || !img->data || img->height <= 0 || img->width <= 0)
        return aspo_fail(ASPO_ERR_USAGE, "blip_preprocess: empty input image");
    if (!cfg || cfg->crop_size <= 0)
        return aspo_fail(ASPO_ERR_USAGE, "blip_preprocess: the size must be > 0");
    /* Pillow's resize to the image's own size is a copy; image_resize_bicubic's weights at
     * scale 1 are exactly 0 and 1, so it gives the same. */
    image_rgb8 square = {0};
    aspo_status st = image_resize_bicubic(img, cfg->crop_size, cfg->crop_size, &square);
    if (st) return st;
    clip_preprocess_config c = *cfg;
    c.shortest_edge = 0; /* the square is the crop */
    st = clip_preprocess(&square, &c, out);
    image_free(&square);
    return st;
}
