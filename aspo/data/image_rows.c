/* Images of preference rows: paths, an up-front check that each opens, and batch loading. */
#include "aspo/data/image_rows.h"

#include "tensor/file_open.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

aspo_status image_row_path(const char *root, const preference_row *row, char *buf, size_t size)
{
    if (!row->image)
        return aspo_fail(ASPO_ERR_USAGE, "%s: the row has no image",
                         preference_row_where(row));
    int n = row->image[0] == '/' || !root || !*root
                ? snprintf(buf, size, "%s", row->image)
                : snprintf(buf, size, "%s/%s", root, row->image);
    if (n < 0 || (size_t)n >= size)
        return aspo_fail(ASPO_ERR_USAGE, "%s: the image path %s is too long",
                         preference_row_where(row), row->image);
    return ASPO_OK;
}

aspo_status image_rows_check(const char *root, const preference_dataset *ds, int64_t *n_images)
{
    int64_t n = 0;
    char path[4096];
    for (int64_t i = 0; i < ds->n_rows; i++) {
        const preference_row *row = &ds->rows[i];
        if (!row->image) continue;
        n++;
        aspo_status s = image_row_path(root, row, path, sizeof path);
        if (s) return s;
        /* Opened, not just looked up: a FIFO or a device fails here, not at its batch. */
        FILE *f = file_open_regular(path, "file", 0, NULL);
        if (!f) {
            aspo_status failed = aspo_error_status();
            if (!root) {
                char cause[1024];
                snprintf(cause, sizeof cause, "%s", aspo_error_message());
                aspo_fail_replace(failed, "%s (relative image names are taken from "
                                  "--image-root)", cause);
            }
            return aspo_fail_prefix(failed, "%s: image %s: ", preference_row_where(row),
                                    row->image);
        }
        fclose(f);
    }
    if (n_images) *n_images = n;
    return ASPO_OK;
}

aspo_status image_row_load(const char *root, const preference_row *row,
                           const image_limits *limits, image_rgb8 *img)
{
    char path[4096];
    aspo_status s = image_row_path(root, row, path, sizeof path);
    if (!s && (s = image_load(path, limits, img)))
        aspo_fail_prefix(s, "%s: image %s: ", preference_row_where(row), row->image);
    return s;
}

aspo_status image_rows_pixels(const llava_model *m, const char *root,
                              const image_limits *limits, const preference_row *const *rows,
                              const int *slot, int n, float *pixels)
{
    size_t S = (size_t)m->cfg.image.crop_size, per_image = 3 * S * S;
    for (int i = 0; i < n; i++) {
        if (slot[i] < 0) continue;
        image_rgb8 img;
        aspo_status s = image_row_load(root, rows[i], limits, &img);
        if (s) return s;
        s = llava_preprocess(m, &img, pixels + (size_t)slot[i] * per_image);
        image_free(&img);
        if (s) {
                    return aspo_fail_prefix(s, "%s: image %s: ", preference_row_where(rows[i]),
                                    rows[i]->image);
        }
    }
    return ASPO_OK;
}
