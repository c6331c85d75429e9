/* The images of preference rows: where they are (--image-root joined with the row's name),
 * checked before training starts, and loaded into model pixels batch by batch. Every error
 * names the dataset file and line (or SeVa entry) and the image file. */
#ifndef ASPO_IMAGE_ROWS_H
#define ASPO_IMAGE_ROWS_H

#include <stddef.h>

#include "aspo/data/dataset.h"
#include "models/image.h"
#include "models/llava.h"

/* root + "/" + row->image (row->image as it is when absolute or root is NULL/""). */
aspo_status image_row_path(const char *root, const preference_row *row, char *buf, size_t size);

/* Every image row's file exists and is readable; the first that is not is an error naming
 * its dataset line. Returns the number of image rows in *n_images (may be NULL). */
aspo_status image_rows_check(const char *root, const preference_dataset *ds, int64_t *n_images);

/* Decodes row's image (limits may be NULL) into *img; errors name the dataset line. */
aspo_status image_row_load(const char *root, const preference_row *row,
                           const image_limits *limits, image_rgb8 *img);

/* The images of rows[i] with slot[i] >= 0 into pixels + slot[i] * 3*S*S, S the LLaVA crop
 * size, preprocessed as LLaVA-1.5 does (llava_preprocess). */
aspo_status image_rows_pixels(const llava_model *m, const char *root,
                              const image_limits *limits, const preference_row *const *rows,
                              const int *slot, int n, float *pixels);

#endif
