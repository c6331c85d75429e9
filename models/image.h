/* Images for vision models: PNG/JPEG decoding to 8-bit RGB and CLIP preprocessing that
 * matches transformers' CLIPImageProcessor (Pillow bicubic resize of the short side,
 * center crop, rescale, normalise), LLaVA's pad-to-square, and BlipImageProcessor's
 * square resize. */
#ifndef ASPO_IMAGE_H
#define ASPO_IMAGE_H

#include <stdint.h>

#include "tensor/error.h"

/* Refuses images before any pixel buffer is allocated: the decoded image and every buffer
 * made from it (pad-to-square, resize). 0 in a field means its default. */
typedef struct image_limits {
    int64_t max_pixels; /* width*height; default IMAGE_DEFAULT_MAX_PIXELS (--max-image-pixels) */
    int max_side;       /* either side; default IMAGE_DEFAULT_MAX_SIDE */
} image_limits;

#define IMAGE_DEFAULT_MAX_PIXELS (64LL * 1024 * 1024) /* 8192x8192, 192 MB as RGB */
#define IMAGE_DEFAULT_MAX_SIDE 32768

/* lim's fields, the defaults where they are 0 (lim may be NULL). */
image_limits image_limits_resolve(const image_limits *lim);

/* (H,W,3) uint8, rows packed, owned by the struct: free with image_free. */
typedef struct image_rgb8 {
    int height, width;
    uint8_t *data;
    /* Where a decoded image came from, kept so that what is made from it later
     * (pad-to-square, resize) is held to the same limits and names the file. An image made
     * in memory leaves both zero: default limits, named "image". */
    image_limits limits;
    char *name; /* owned */
} image_rgb8;

/* A file is read only when it is a regular file (a FIFO would block, a device such as
 * /dev/zero never ends) of at most IMAGE_FILE_BYTES_PER_PIXEL bytes a pixel of the limit
 * plus IMAGE_FILE_METADATA_BYTES: 8 is what a 16-bit RGBA PNG stored without compression
 * takes, the widest either format has, so no file whose pixels fit is refused for its size
 * (real photos take under 1 byte a pixel); the metadata room is for ICC profiles, EXIF and
 * embedded previews. The default 64M pixels allow 528 MiB. */
#define IMAGE_FILE_BYTES_PER_PIXEL 8
#define IMAGE_FILE_METADATA_BYTES ((uint64_t)16 << 20)

/* Decodes a PNG or JPEG file (chosen by its magic bytes, never its name) into RGB, the
 * way Pillow's Image.open(path).convert("RGB") does:
 *   grey -> (g,g,g); grey+alpha and RGBA -> alpha dropped (not composited); palette ->
 *   palette colours (tRNS ignored); 16-bit PNG -> high byte of each sample (Pillow does
 *   this for RGB; for 16-bit grey Pillow clips to 255, which we do not copy);
 *   CMYK/YCCK JPEG -> Pillow's cmyk2rgb (Adobe-inverted files un-inverted first).
 * lim may be NULL (defaults). Corrupt, truncated, empty, zero-size and over-limit files
 * fail with ASPO_ERR_FORMAT (ASPO_ERR_IO if unreadable or not a regular file) and a
 * message naming the file. On failure *out is zeroed; on success it keeps lim and the
 * file's name. */
aspo_status image_load(const char *path, const image_limits *lim, image_rgb8 *out);
/* Decodes from memory; `name` only labels messages. */
aspo_status image_decode(const void *bytes, size_t n, const char *name,
                         const image_limits *lim, image_rgb8 *out);
void image_free(image_rgb8 *img);

/* LLaVA's expand2square: a max(H,W) square of colour `mean` with img pasted at
 * ((S-W)/2, (S-H)/2), integer division. A square input is copied. A square over img's
 * limits (30000x1 would make 30000x30000, 2.7 GB) is ASPO_ERR_FORMAT, before allocating. */
aspo_status image_pad_to_square(const image_rgb8 *img, const uint8_t mean[3],
                                image_rgb8 *out);
/* LLaVA's background colour: tuple(int(m * 255) for m in image_mean) (truncation). */
void image_mean_u8(const float mean[3], uint8_t out[3]);

typedef struct clip_preprocess_config {
    int shortest_edge;   /* resize the short side to this (0: no resize) */
    int crop_size;       /* square center crop; must be <= shortest_edge when resizing */
    double rescale;      /* usually 1/255; applied in double then rounded to float, as
                          * transformers does (float64 multiply, astype float32) */
    float mean[3], std[3];
} clip_preprocess_config;

/* OpenAI CLIP ViT-L/14-336 settings (shortest_edge = crop = 336). */
clip_preprocess_config clip_config_default(int size);

/* Pillow's Image.resize(..., BICUBIC) of an RGB8 image to (out_h, out_w): separable
 * bicubic (a = -0.5) with the kernel widened by the scale when shrinking, 22-bit fixed
 * point weights, horizontal pass first, each pass rounded and clipped to uint8. The
 * intermediate (out_w x H) and the output must fit img's limits (ASPO_ERR_FORMAT). */
aspo_status image_resize_bicubic(const image_rgb8 *img, int out_h, int out_w,
                                 image_rgb8 *out);

/* CLIPImageProcessor: resize short side (bicubic), center crop, x*rescale, (x-mean)/std,
 * float32 arithmetic as numpy does it. out: (3,crop,crop) CHW. */
aspo_status clip_preprocess(const image_rgb8 *img, const clip_preprocess_config *cfg,
                            float *out);

/* BlipImageProcessor (BLIP-2, InstructBLIP): bicubic resize to crop_size x crop_size
 * whatever the aspect ratio (no crop; shortest_edge is not read), then x*rescale and
 * (x-mean)/std as clip_preprocess. out: (3,crop,crop) CHW. */
aspo_status blip_preprocess(const image_rgb8 *img, const clip_preprocess_config *cfg,
                            float *out);

#endif
