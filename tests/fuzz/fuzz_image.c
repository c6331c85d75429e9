/* Images: a PNG or JPEG file decoded under a small pixel limit (as --max-image-pixels sets
 * it), then LLaVA's pad-to-square and CLIP preprocessing (resize, crop, normalise) at sizes
 * taken from the decoded image, so different inputs reach different resize ratios. The same
 * bytes decoded from memory must succeed or fail alike and give the same pixels. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "models/image.h"

enum { MAX_INPUT = 1 << 18 };

static const image_limits limits = {.max_pixels = 1 << 16, .max_side = 4096};

static void preprocess(const image_rgb8 *img)
{
    clip_preprocess_config cfg = clip_config_default(8);
    cfg.shortest_edge = 1 + (img->width * 7 + img->height) % 24; /* 1..24 */
    cfg.crop_size = 1 + img->height % cfg.shortest_edge;        /* <= shortest_edge */
    float *out = malloc(3 * (size_t)cfg.crop_size * cfg.crop_size * sizeof *out);
    if (!out) fuzz_fail("out of memory");
    clip_preprocess(img, &cfg, out);
    fuzz_error_done();
    cfg.shortest_edge = 0; /* crop only: fails when the image is smaller than the crop */
    clip_preprocess(img, &cfg, out);
    fuzz_error_done();
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT) return 0;
    fuzz_reset();
    image_rgb8 img, again;
    aspo_status from_file = image_load(fuzz_write("image", data, size), &limits, &img);
    fuzz_error_done();
    aspo_status from_memory = image_decode(data, size, "fuzz", &limits, &again);
    fuzz_error_done();
    if ((from_file == ASPO_OK) != (from_memory == ASPO_OK) ||
        (from_file == ASPO_OK &&
         (again.width != img.width || again.height != img.height ||
          memcmp(again.data, img.data, (size_t)img.width * img.height * 3) != 0)))
        fuzz_fail("image_load (%s) and image_decode (%s) disagree", aspo_status_name(from_file),
                  aspo_status_name(from_memory));
    image_free(&again);
    if (from_file != ASPO_OK) return 0;
    if (img.width < 1 || img.height < 1 || (int64_t)img.width * img.height > limits.max_pixels)
        fuzz_fail("decoded %dx%d over the %lld-pixel limit", img.width, img.height,
                  (long long)limits.max_pixels);

    uint8_t mean[3];
    image_mean_u8(clip_config_default(8).mean, mean);
    image_rgb8 square;
    if (image_pad_to_square(&img, mean, &square) == ASPO_OK) {
        preprocess(&square);
        image_free(&square);
    }
    fuzz_error_done();
    preprocess(&img);
    image_free(&img);
    return 0;
}
