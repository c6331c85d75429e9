/* models/image: decoding and CLIP preprocessing against Pillow + CLIPImageProcessor
 * outputs (tests/parity/make_image_fixtures.py), bad input refused with the file named, and
 * hostile input (issue 12) refused promptly: a FIFO, /dev/zero, a file over the size limit,
 * an image whose pad-to-square or resize would pass the pixel limit; preprocessor_config.json
 * read as CLIPImageProcessor and BlipImageProcessor.
 * Usage: test_image <fixtures/image dir> */
#define _GNU_SOURCE /* mkfifo, fork, setrlimit */
#include <math.h>
#include <png.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "models/image.h"
#include "models/image_processor_config.h"
#include "tensor/safetensors.h"
#include "test_support.h"

static const char *dir;
static st_model ref;

static const char *fixture(const char *name)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return buf;
}

static const st_entry *ref_entry(const char *file, const char *what)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", file, what);
    for (char *p = key; *p && p < key + strlen(file); p++)
        if (*p == '.') *p = '_';
    const st_entry *e = st_find(&ref, key);
    CHECK(e != NULL, "fixture tensor %s missing", key);
    return e;
}

static double worst; /* largest normalised difference seen, printed at the end */

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    worst = fmax(worst, m);
    return m;
}

/* Parity per image. Tolerances:
 * - pixels: exact. Both sides decode with Debian's libpng 1.6.39 / libjpeg-turbo 2.1.5
 *   (Pillow is linked against the same libraries, same IDCT and upsampling defaults), so
 *   every byte must agree. A different libjpeg build could differ by +-1 per pixel.
 * - clip24/pad24: exact (0). The resize is integer arithmetic on uint8 with weights from
 *   the same double formulas, rescale is float64 then rounded to float32, and
 *   normalisation is one float32 subtract and divide, as numpy does; nothing depends on
 *   summation order. We allow 1e-6 only for a compiler contracting (r-m)/s differently
 *   (ulp of values of size ~2 is 2.4e-7). */
static void check_image(const char *file, int has_clip, int has_pad)
{
    image_rgb8 img;
    aspo_status st = image_load(fixture(file), NULL, &img);
    CHECK(st == ASPO_OK, "%s: %s", file, aspo_error_message());
    if (st != ASPO_OK) {
        aspo_error_clear();
        return;
    }
    const st_entry *px = ref_entry(file, "pixels");
    if (px) {
        CHECK(px->shape[0] == img.height && px->shape[1] == img.width, "%s: %dx%d vs ref",
              file, img.width, img.height);
        if (px->shape[0] == img.height && px->shape[1] == img.width) {
            size_t n = (size_t)img.height * img.width * 3, bad = 0;
            int maxd = 0;
            const uint8_t *r = px->data;
            for (size_t i = 0; i < n; i++) {
                int d = abs((int)img.data[i] - r[i]);
                bad += d != 0;
                maxd = d > maxd ? d : maxd;
            }
            CHECK(bad == 0, "%s: %zu of %zu decoded bytes differ from Pillow (max %d)", file,
                  bad, n, maxd);
        }
    }
    clip_preprocess_config cfg = clip_config_default(24);
    float out[3 * 24 * 24];
    if (has_clip) {
        const st_entry *e = ref_entry(file, "clip24");
        st = clip_preprocess(&img, &cfg, out);
        CHECK(st == ASPO_OK, "%s: %s", file, aspo_error_message());
        if (e && st == ASPO_OK) {
            double d = max_abs_diff(out, e->data, 3 * 24 * 24);
            CHECK(d <= 1e-6, "%s clip24: max abs diff %g", file, d);
        }
    }
    if (has_pad) {
        const st_entry *e = ref_entry(file, "pad24");
        uint8_t mean[3];
        image_rgb8 sq;
        image_mean_u8(cfg.mean, mean);
        CHECK(mean[0] == 122 && mean[1] == 116 && mean[2] == 104, "LLaVA mean colour");
        st = image_pad_to_square(&img, mean, &sq);
        CHECK(st == ASPO_OK, "%s: pad: %s", file, aspo_error_message());
        if (st == ASPO_OK) {
            int s = img.width > img.height ? img.width : img.height;
            CHECK(sq.width == s && sq.height == s, "%s: pad size", file);
            st = clip_preprocess(&sq, &cfg, out);
            CHECK(st == ASPO_OK, "%s: %s", file, aspo_error_message());
            if (e && st == ASPO_OK) {
                double d = max_abs_diff(out, e->data, 3 * 24 * 24);
                CHECK(d <= 1e-6, "%s pad24: max abs diff %g", file, d);
            }
            image_free(&sq);
        }
    }
    image_free(&img);
    aspo_error_clear();
}

/* The 336 output at OpenAI CLIP-L/336 settings (an upscale), compared on the committed
 * every-193rd-element sample; same exactness argument as clip24. */
static void check_clip336(void)
{
    image_rgb8 img;
    if (image_load(fixture("photo.jpg"), NULL, &img) != ASPO_OK) {
        CHECK(0, "photo.jpg: %s", aspo_error_message());
        return;
    }
    clip_preprocess_config cfg = clip_config_default(336);
    size_t n = 3 * 336 * 336;
    float *out = malloc(n * sizeof(float));
    CHECK(clip_preprocess(&img, &cfg, out) == ASPO_OK, "336: %s", aspo_error_message());
    const st_entry *e = st_find(&ref, "photo_jpg.clip336_sample");
    CHECK(e != NULL, "clip336_sample missing");
    if (e) {
        const float *r = e->data;
        double d = 0;
        size_t k = 0;
        for (size_t i = 0; i < n; i += 193, k++) d = fmax(d, fabs((double)out[i] - r[k]));
        CHECK(k == (size_t)e->shape[0], "sample count %zu vs %lld", k, (long long)e->shape[0]);
        worst = fmax(worst, d);
        CHECK(d <= 1e-6, "clip336: max abs diff %g", d);
    }
    free(out);
    image_free(&img);
}

/* Each bad file fails with ASPO_ERR_FORMAT, a message naming the file and `word`. */
static void check_bad(const char *file, const image_limits *lim, const char *word)
{
    image_rgb8 img;
    aspo_error_clear();
    aspo_status st = image_load(fixture(file), lim, &img);
    const char *msg = aspo_error_message();
    CHECK(st == ASPO_ERR_FORMAT, "%s: status %s", file, aspo_status_name(st));
    CHECK(msg && strstr(msg, file) && strstr(msg, word), "%s: message '%s' lacks '%s'", file,
          msg ? msg : "(null)", word);
    CHECK(img.data == NULL && img.width == 0, "%s: output not zeroed", file);
    aspo_error_clear();
}

static void check_bad_inputs(void)
{
    check_bad("empty.png", NULL, "empty");
    check_bad("zero_width.png", NULL, "zero");
    check_bad("huge.png", NULL, "over the limit");
    check_bad("truncated.png", NULL, "truncated");
    check_bad("corrupt.png", NULL, "corrupt");
    check_bad("truncated.jpg", NULL, "truncated");
    check_bad("corrupt.jpg", NULL, "corrupt");
    check_bad("text.png", NULL, "not a PNG or JPEG");
    check_bad("text.jpg", NULL, "not a PNG or JPEG");
    /* A configurable limit: a 45x35 JPEG refused at 1000 pixels, a 120x9 PNG at side 100. */
    image_limits small = {.max_pixels = 1000};
    check_bad("photo.jpg", &small, "over the limit");
    image_limits narrow = {.max_side = 100};
    check_bad("wide.png", &narrow, "over the limit");
    image_rgb8 img;
    CHECK(image_load(fixture("no_such_file.png"), NULL, &img) == ASPO_ERR_IO, "missing file");
    CHECK(strstr(aspo_error_message(), "no_such_file.png") != NULL, "missing file named");
    aspo_error_clear();
}

/* Hand-checked: pad geometry and a resize that keeps the size is a copy. */
static void check_small_cases(void)
{
    uint8_t px[2 * 3 * 3];
    for (int i = 0; i < 18; i++) px[i] = (uint8_t)(10 * i);
    image_rgb8 img = {.height = 2, .width = 3, .data = px}, sq, same;
    const uint8_t mean[3] = {1, 2, 3};
    CHECK(image_pad_to_square(&img, mean, &sq) == ASPO_OK, "pad");
    /* 3x3 square, the 2-row image at top (3-2)/2 = 0, bottom row the mean colour. */
    CHECK(memcmp(sq.data, px, 18) == 0 && sq.data[18] == 1 && sq.data[26] == 3, "pad layout");
    image_free(&sq);
    CHECK(image_resize_bicubic(&img, 2, 3, &same) == ASPO_OK, "resize same");
    CHECK(memcmp(same.data, px, 18) == 0, "same-size resize copies");
    image_free(&same);
    clip_preprocess_config cfg = clip_config_default(24);
    cfg.crop_size = 32;
    float out[1];
    CHECK(clip_preprocess(&img, &cfg, out) == ASPO_ERR_USAGE, "crop > shortest edge refused");
    aspo_error_clear();
}

/* ---- hostile files (issue 12) ---------------------------------------------------------- */

/* Caps the address space at what the process maps now plus `extra`, so a regression that
 * reads a device until memory runs out fails fast. Not under ASan, whose shadow mappings
 * would go over any cap. */
/* image_load in test_load_in_child: a FIFO or /dev/zero must be refused, not hang. */
static aspo_status load_image(const char *path)
{
    image_rgb8 img;
    aspo_status s = image_load(path, NULL, &img);
    if (!s) image_free(&img);
    return s;
}

/* A 30000x1 grey PNG: a few hundred bytes, 30000 pixels, but 30000x30000 once padded to a
 * square (2.7 GB of RGB). */
static bool write_thin_png(const char *path)
{
    static uint8_t row[30000];
    memset(row, 200, sizeof row);
    png_image im = {.version = PNG_IMAGE_VERSION, .width = 30000, .height = 1,
                    .format = PNG_FORMAT_GRAY};
    return png_image_write_to_file(&im, path, 0, row, 0, NULL) != 0;
}

static void check_hostile_files(void)
{
    const char *tmp = test_tmp_make("image");
    if (!tmp) {
        CHECK(0, "no scratch directory");
        return;
    }
    /* A FIFO with no writer: opening it for reading would wait forever. */
    const char *fifo = join(tmp, "pipe.png");
    CHECK(mkfifo(fifo, 0600) == 0, "mkfifo %s", fifo);
    int got = test_load_in_child("image_load", load_image, fifo, "FIFO");
    CHECK(got == ASPO_ERR_IO, "FIFO: child exit %d, want ASPO_ERR_IO (%d)", got, ASPO_ERR_IO);
    /* A character device that never ends. */
    got = test_load_in_child("image_load", load_image, "/dev/zero", "character device");
    CHECK(got == ASPO_ERR_IO, "/dev/zero: child exit %d, want ASPO_ERR_IO (%d)", got,
          ASPO_ERR_IO);
    /* A sparse 1 GiB file: over the default limit (8 bytes a pixel of 64M pixels plus 16
     * MiB), refused before a byte is read. */
    const char *sparse = join(tmp, "sparse.png");
    FILE *f = fopen(sparse, "wb");
    CHECK(f && ftruncate(fileno(f), (off_t)1 << 30) == 0, "sparse file %s", sparse);
    if (f) fclose(f);
    got = test_load_in_child("image_load", load_image, sparse, "over the limit");
    CHECK(got == ASPO_ERR_FORMAT, "1 GiB file: child exit %d, want ASPO_ERR_FORMAT (%d)", got,
          ASPO_ERR_FORMAT);

    /* 30000x1 passes the pixel limit; its pad-to-square must not (checked before the
     * 2.7 GB allocation, which took 26 s to fill). */
    const char *thin = join(tmp, "thin.png");
    CHECK(write_thin_png(thin), "write %s", thin);
    image_rgb8 img, sq;
    aspo_status st = image_load(thin, NULL, &img);
    CHECK(st == ASPO_OK && img.width == 30000 && img.height == 1, "thin PNG loads: %s",
          aspo_error_message());
    aspo_error_clear();
    if (st == ASPO_OK) {
        const uint8_t mean[3] = {122, 116, 104};
        expect_error(image_pad_to_square(&img, mean, &sq), ASPO_ERR_FORMAT, "pad 30000x1",
                     thin, "30000x1", "30000x30000", "67108864");
        CHECK(sq.data == NULL, "no square made");
        image_free(&sq);
    }
    image_free(&img);

    /* A limit the caller sets holds for what is made from the image too: wide.png (120x9,
     * 1080 pixels) loads under 2000, but neither its 120x120 square, nor its short-side
     * resize to 24 (320x24), nor the 240x9 intermediate of a resize to 240x8 (1920) fits. */
    image_limits lim = {.max_pixels = 2000};
    st = image_load(fixture("wide.png"), &lim, &img);
    CHECK(st == ASPO_OK, "wide.png under 2000 pixels: %s", aspo_error_message());
    aspo_error_clear();
    if (st == ASPO_OK) {
        const uint8_t mean[3] = {0, 0, 0};
        expect_error(image_pad_to_square(&img, mean, &sq), ASPO_ERR_FORMAT, "pad wide.png",
                     "wide.png", "120x120", "2000");
        image_free(&sq);
        clip_preprocess_config cfg = clip_config_default(24);
        float out[3 * 24 * 24];
        expect_error(clip_preprocess(&img, &cfg, out), ASPO_ERR_FORMAT, "resize wide.png",
                     "wide.png", "320x24", "2000");
        image_rgb8 small;
        expect_error(image_resize_bicubic(&img, 8, 240, &small), ASPO_ERR_FORMAT,
                     "resize intermediate", "wide.png", "240x9", "2000");
        CHECK(small.data == NULL, "no resize made");
        image_free(&small);
    }
    image_free(&img);
    test_tmp_remove();
}

/* tmp/name holding json, read as `kind` over CLIP-336's defaults. */
static aspo_status read_processor(const char *tmp, const char *name, const char *json,
                                  image_processor_kind kind, clip_preprocess_config *c)
{
    const char *path = join(tmp, name);
    CHECK(write_file_text(path, json), "write %s", path);
    *c = clip_config_default(336);
    return image_processor_config_read(path, kind, c);
}

static void check_processor_configs(void)
{
    const char *tmp = test_tmp_make("image_config");
    if (!tmp) {
        CHECK(0, "no scratch directory");
        return;
    }
    clip_preprocess_config c;
    /* InstructBLIP's file; crop_size and do_center_crop are not BlipImageProcessor's and
     * must not be read. */
    aspo_status st = read_processor(
        tmp, "blip.json",
        "{\"image_processor_type\": \"BlipImageProcessor\", \"size\": {\"height\": 224, "
        "\"width\": 224}, \"image_mean\": [0.5, 0.25, 0.125], \"image_std\": [2, 4, 8], "
        "\"rescale_factor\": 0.5, \"resample\": 3, \"crop_size\": 100, "
        "\"do_center_crop\": false}",
        IMAGE_PROCESSOR_BLIP, &c);
    CHECK(st == ASPO_OK, "blip.json: %s", aspo_error_message());
    CHECK(c.crop_size == 224 && c.shortest_edge == 0, "blip.json: crop %d, shortest edge %d",
          c.crop_size, c.shortest_edge);
    CHECK(c.mean[0] == 0.5f && c.mean[1] == 0.25f && c.mean[2] == 0.125f, "blip.json: mean");
    CHECK(c.std[0] == 2.0f && c.std[1] == 4.0f && c.std[2] == 8.0f, "blip.json: std");
    CHECK(c.rescale == 0.5, "blip.json: rescale %g", c.rescale);
    st = read_processor(tmp, "blip_int.json", "{\"size\": 364}", IMAGE_PROCESSOR_BLIP, &c);
    CHECK(st == ASPO_OK && c.crop_size == 364, "size 364: crop %d (%s)", c.crop_size,
          aspo_error_message());
    st = read_processor(tmp, "blip_flat.json", "{\"do_normalize\": false}",
                        IMAGE_PROCESSOR_BLIP, &c);
    CHECK(st == ASPO_OK && c.mean[1] == 0.0f && c.std[1] == 1.0f && c.crop_size == 336,
          "do_normalize false: mean %g std %g crop %d", c.mean[1], c.std[1], c.crop_size);
    /* Refused, naming the file and the field: the vision encoder takes image_size x
     * image_size images made by the bicubic resize alone. `why` may be NULL (not checked). */
    static const struct {
        const char *file, *json, *field, *why;
        aspo_status want;
    } bad[] = {
        {"blip_wide.json", "{\"size\": {\"height\": 224, \"width\": 448}}", "\"size\"",
         "square", ASPO_ERR_UNSUPPORTED},
        {"blip_edge.json", "{\"size\": {\"shortest_edge\": 224}}", "\"size\"", NULL,
         ASPO_ERR_UNSUPPORTED},
        {"blip_bilinear.json", "{\"resample\": 2}", "\"resample\"", "bicubic",
         ASPO_ERR_UNSUPPORTED},
        {"blip_noresize.json", "{\"do_resize\": false}", "do_resize", NULL, ASPO_ERR_UNSUPPORTED},
        {"blip_std0.json", "{\"image_std\": [1, 0, 1]}", "image_std[1]", "zero", ASPO_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        expect_error(read_processor(tmp, bad[i].file, bad[i].json, IMAGE_PROCESSOR_BLIP, &c),
                     bad[i].want, bad[i].file, bad[i].file, bad[i].field, bad[i].why);
    /* LLaVA-1.5's CLIPImageProcessor file, read over CLIP-224's defaults. */
    const char *clip = join(tmp, "clip.json");
    CHECK(write_file_text(clip, "{\"size\": {\"shortest_edge\": 336}, \"crop_size\": "
                                "{\"height\": 336, \"width\": 336}, \"resample\": 3}"),
          "write %s", clip);
    c = clip_config_default(224);
    st = image_processor_config_read(clip, IMAGE_PROCESSOR_CLIP, &c);
    CHECK(st == ASPO_OK && c.shortest_edge == 336 && c.crop_size == 336 &&
          c.rescale == 1.0 / 255.0 && c.mean[0] == 0.48145466f, "clip.json: shortest edge %d, "
          "crop %d (%s)", c.shortest_edge, c.crop_size, aspo_error_message());
    test_tmp_remove();
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s <fixtures/image dir>\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    if (st_open(fixture("outputs.safetensors"), &ref) != ASPO_OK) {
        fprintf(stderr, "%s\n", aspo_error_message());
        return 1;
    }
    const char *both[] = {"rgb.png", "grey.png", "wide.png", "photo.jpg"};
    const char *clip_only[] = {"rgba.png", "palette.png", "rgb16.png", "big.jpg", "grey.jpg",
                               "cmyk.jpg"};
    for (size_t i = 0; i < sizeof both / sizeof *both; i++) check_image(both[i], 1, 1);
    for (size_t i = 0; i < sizeof clip_only / sizeof *clip_only; i++)
        check_image(clip_only[i], 1, 0);
    /* 16-bit grey: Pillow's convert("RGB") clips mode "I" values to 255; we keep the high
     * byte like every other 16-bit input, so only the pixels are compared (with the high
     * byte the script recorded). */
    check_image("grey16.png", 0, 0);
    check_clip336();
    check_bad_inputs();
    check_small_cases();
    check_hostile_files();
    check_processor_configs();
    st_close(&ref);
    printf("image: max abs difference to CLIPImageProcessor after normalisation: %g\n", worst);
    return check_summary("image");
}
