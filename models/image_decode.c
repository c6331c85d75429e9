/* PNG (libpng) and JPEG (libjpeg-turbo) decoding to 8-bit RGB, matching what Pillow's
 * Image.open(path).convert("RGB") gives (see models/image.h for each input kind). */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

#include "models/image.h"
#include "tensor/file_open.h"

static const uint8_t PNG_MAGIC[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

void image_free(image_rgb8 *img)
{
    if (!img) return;
    free(img->data);
    free(img->name);
    memset(img, 0, sizeof *img);
}

image_limits image_limits_resolve(const image_limits *lim)
{
    image_limits r = {.max_pixels = IMAGE_DEFAULT_MAX_PIXELS, .max_side = IMAGE_DEFAULT_MAX_SIDE};
    if (lim && lim->max_pixels > 0) r.max_pixels = lim->max_pixels;
    if (lim && lim->max_side > 0) r.max_side = lim->max_side;
    return r;
}

/* Checks the header's size against the limits before any pixel buffer exists. */
static aspo_status check_size(const char *name, int64_t w, int64_t h, const image_limits *lim)
{
    image_limits r = image_limits_resolve(lim);
    int64_t max_pixels = r.max_pixels, max_side = r.max_side;
    if (w <= 0 || h <= 0)
        return aspo_fail(ASPO_ERR_FORMAT, "%s: image has zero size (%lldx%lld)", name,
                         (long long)w, (long long)h);
    if (w > max_side || h > max_side || w * h > max_pixels)
        return aspo_fail(ASPO_ERR_FORMAT,
                         "%s: image is %lldx%lld pixels, over the limit (max side %lld, "
                         "max %lld pixels); raise image_limits if this is intended",
                         name, (long long)w, (long long)h, (long long)max_side,
                         (long long)max_pixels);
    return ASPO_OK;
}

static aspo_status alloc_rgb(const char *name, int w, int h, image_rgb8 *out)
{
    out->data = malloc((size_t)w * (size_t)h * 3);
    if (!out->data)
        return aspo_fail(ASPO_ERR_OOM, "%s: cannot allocate %dx%d RGB image", name, w, h);
    out->width = w;
    out->height = h;
    return ASPO_OK;
}

/* ---- PNG ---- */

typedef struct png_src {
    const uint8_t *p;
    size_t n, pos;
    const char *name;
    char msg[200];
    jmp_buf jb;
} png_src;

static void png_read_mem(png_structp png, png_bytep dst, size_t len)
{
    png_src *s = png_get_io_ptr(png);
    if (len > s->n - s->pos) png_error(png, "file is truncated");
    memcpy(dst, s->p + s->pos, len);
    s->pos += len;
}

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_src *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    longjmp(s->jb, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png; /* ancillary-chunk trouble (bad iCCP, ...): Pillow ignores it too */
    (void)msg;
}

static aspo_status decode_png(const uint8_t *bytes, size_t n, const char *name,
                              const image_limits *lim, image_rgb8 *out)
{
    /* IHDR must come first: refuse absurd sizes from it before libpng reads further. */
    if (n >= 24 && memcmp(bytes + 12, "IHDR", 4) == 0) {
        const uint8_t *d = bytes + 16;
        int64_t w = (int64_t)d[0] << 24 | d[1] << 16 | d[2] << 8 | d[3];
        int64_t h = (int64_t)d[4] << 24 | d[5] << 16 | d[6] << 8 | d[7];
        aspo_status st0 = check_size(name, w, h, lim);
        if (st0 != ASPO_OK) return st0;
    }
    png_src src = {.p = bytes, .n = n, .name = name};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error,
                                             png_on_warning);
    if (!png) return aspo_fail(ASPO_ERR_OOM, "%s: cannot create PNG reader", name);
    png_infop info = png_create_info_struct(png);
    png_bytep *volatile rows = NULL;
    volatile aspo_status st = ASPO_OK;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return aspo_fail(ASPO_ERR_OOM, "%s: cannot create PNG reader", name);
    }
    if (setjmp(src.jb)) {
        if (st == ASPO_OK)
            st = aspo_fail(ASPO_ERR_FORMAT, "%s: corrupt or truncated PNG: %s", name, src.msg);
        free(rows);
        image_free(out);
        png_destroy_read_struct(&png, &info, NULL);
        return st;
    }
    png_set_read_fn(png, &src, png_read_mem);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if ((st = check_size(name, w, h, lim)) != ASPO_OK) png_error(png, "size refused");
    int color = png_get_color_type(png, info);
    /* The transforms that turn every PNG into 8-bit RGB as Pillow's convert("RGB"). */
    png_set_strip_16(png);                                 /* high byte, as Pillow */
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png); /* tRNS ignored */
    if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) {
        png_set_expand_gray_1_2_4_to_8(png);
        png_set_gray_to_rgb(png);
    }
    if (color & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * 3)
        png_error(png, "unexpected row layout after conversion to RGB");
    if ((st = alloc_rgb(name, (int)w, (int)h, out)) != ASPO_OK) png_error(png, "oom");
    rows = malloc(sizeof(png_bytep) * h);
    if (!rows) {
        st = aspo_fail(ASPO_ERR_OOM, "%s: cannot allocate row table", name);
        png_error(png, "oom");
    }
    for (png_uint_32 y = 0; y < h; y++) rows[y] = out->data + (size_t)y * w * 3;
    png_read_image(png, rows);
    png_read_end(png, NULL); /* checks the CRCs and stream end after the last row */
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    return ASPO_OK;
}

/* ---- JPEG ---- */

typedef struct jpg_err {
    struct jpeg_error_mgr mgr;
    char msg[JMSG_LENGTH_MAX];
    jmp_buf jb;
} jpg_err;

static void jpg_on_error(j_common_ptr cinfo)
{
    jpg_err *e = (jpg_err *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->jb, 1);
}

/* Warnings ("Premature end of JPEG file", "Corrupt JPEG data") mean libjpeg filled in
 * pixels it never read; Pillow refuses such files by default, so do we. */
static void jpg_on_message(j_common_ptr cinfo, int level)
{
    if (level < 0) jpg_on_error(cinfo);
}

/* Pillow's cmyk2rgb: channel = (255-K) - round(C*(255-K)/255), via its MULDIV255. */
static uint8_t cmyk_channel(int c, int k)
{
    int nk = 255 - k, t = c * nk + 128;
    int v = nk - (((t >> 8) + t) >> 8);
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

static aspo_status decode_jpeg(const uint8_t *bytes, size_t n, const char *name,
                               const image_limits *lim, image_rgb8 *out)
{
    struct jpeg_decompress_struct cinfo;
    jpg_err err;
    uint8_t *volatile row = NULL;
    volatile aspo_status st = ASPO_OK;
    cinfo.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = jpg_on_error;
    err.mgr.emit_message = jpg_on_message;
    if (setjmp(err.jb)) {
        if (st == ASPO_OK)
            st = aspo_fail(ASPO_ERR_FORMAT, "%s: corrupt or truncated JPEG: %s", name, err.msg);
        free(row);
        image_free(out);
        jpeg_destroy_decompress(&cinfo);
        return st;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, bytes, (unsigned long)n);
    jpeg_read_header(&cinfo, TRUE);
    if ((st = check_size(name, cinfo.image_width, cinfo.image_height, lim)) != ASPO_OK)
        longjmp(err.jb, 1);
    int comps = cinfo.num_components;
    if (comps == 1) cinfo.out_color_space = JCS_GRAYSCALE;
    else if (comps == 3) cinfo.out_color_space = JCS_RGB;
    else if (comps == 4) cinfo.out_color_space = JCS_CMYK; /* libjpeg turns YCCK into CMYK */
    else {
        st = aspo_fail(ASPO_ERR_FORMAT, "%s: JPEG with %d components is not supported", name,
                       comps);
        longjmp(err.jb, 1);
    }
    jpeg_start_decompress(&cinfo);
    int w = (int)cinfo.output_width, h = (int)cinfo.output_height, oc = cinfo.output_components;
    if ((st = alloc_rgb(name, w, h, out)) != ASPO_OK) longjmp(err.jb, 1);
    row = malloc((size_t)w * (size_t)oc);
    if (!row) {
        st = aspo_fail(ASPO_ERR_OOM, "%s: cannot allocate a row", name);
        longjmp(err.jb, 1);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        uint8_t *dst = out->data + (size_t)cinfo.output_scanline * w * 3;
        JSAMPROW rp = row;
        jpeg_read_scanlines(&cinfo, &rp, 1);
        for (int x = 0; x < w; x++) {
            const uint8_t *s = row + (size_t)x * oc;
            if (oc == 1) {
                dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = s[0];
            } else if (oc == 3) {
                memcpy(dst + 3 * x, s, 3);
            } else { /* Pillow reads 4-component JPEGs as Adobe-inverted CMYK ("CMYK;I") */
                for (int c = 0; c < 3; c++) dst[3 * x + c] = cmyk_channel(255 - s[c], 255 - s[3]);
            }
        }
    }
    jpeg_finish_decompress(&cinfo);
    free(row);
    jpeg_destroy_decompress(&cinfo);
    return ASPO_OK;
}

aspo_status image_decode(const void *bytes, size_t n, const char *name,
                         const image_limits *lim, image_rgb8 *out)
{
    const uint8_t *b = bytes;
    memset(out, 0, sizeof *out);
    aspo_status st;
    if (n == 0) return aspo_fail(ASPO_ERR_FORMAT, "%s: empty file, not an image", name);
    if (n >= 8 && memcmp(b, PNG_MAGIC, 8) == 0)
        st = decode_png(b, n, name, lim, out);
    else if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF)
        st = decode_jpeg(b, n, name, lim, out);
    else
        return aspo_fail(ASPO_ERR_FORMAT,
                         "%s: not a PNG or JPEG image (unknown leading bytes %02x %02x %02x %02x)",
                         name, b[0], n > 1 ? b[1] : 0, n > 2 ? b[2] : 0, n > 3 ? b[3] : 0);
    if (st != ASPO_OK) return st;
    out->limits = image_limits_resolve(lim);
    out->name = strdup(name);
    if (!out->name) {
        image_free(out);
        return aspo_fail(ASPO_ERR_OOM, "%s: out of memory", name);
    }
    return ASPO_OK;
}

/* The largest file an image within lim can need (see IMAGE_FILE_BYTES_PER_PIXEL). */
static uint64_t file_max_bytes(const image_limits *lim)
{
    image_limits r = image_limits_resolve(lim);
    uint64_t pixels = (uint64_t)r.max_pixels, side = (uint64_t)r.max_side;
    if (side * side < pixels) pixels = side * side;
    if (pixels > (UINT64_MAX - IMAGE_FILE_METADATA_BYTES) / IMAGE_FILE_BYTES_PER_PIXEL)
        return UINT64_MAX;
    return pixels * IMAGE_FILE_BYTES_PER_PIXEL + IMAGE_FILE_METADATA_BYTES;
}

aspo_status image_load(const char *path, const image_limits *lim, image_rgb8 *out)
{
    memset(out, 0, sizeof *out);
    uint64_t size = 0, max_bytes = file_max_bytes(lim);
    /* No limit passed: the size is checked below, with a message about where it comes from. */
    FILE *f = file_open_regular(path, "image", 0, &size);
    if (!f) return aspo_error_status();
    if (size > max_bytes) {
        fclose(f);
        image_limits r = image_limits_resolve(lim);
        return aspo_fail(ASPO_ERR_FORMAT,
                         "image %s: %llu bytes, over the limit of %llu for an image of at most "
                         "%lld pixels (%d bytes a pixel plus %llu MiB of metadata); is it an "
                         "image? Raise --max-image-pixels if it is",
                         path, (unsigned long long)size, (unsigned long long)max_bytes,
                         (long long)r.max_pixels, IMAGE_FILE_BYTES_PER_PIXEL,
                         (unsigned long long)(IMAGE_FILE_METADATA_BYTES >> 20));
    }
    uint8_t *buf = malloc(size ? (size_t)size : 1);
    if (!buf) {
        fclose(f);
        return aspo_fail(ASPO_ERR_OOM, "image %s: cannot buffer its %llu bytes", path,
                         (unsigned long long)size);
    }
    size_t n = fread(buf, 1, (size_t)size, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || n != size) {
        free(buf);
        return aspo_fail(ASPO_ERR_IO, "image %s: read %zu of its %llu bytes%s", path, n,
                         (unsigned long long)size, bad ? " (read error)" : " (it shrank)");
    }
    aspo_status st = image_decode(buf, n, path, lim, out);
    free(buf);
    return st;
}
