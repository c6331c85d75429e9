/* preprocessor_config.json as CLIPImageProcessor and BlipImageProcessor read it. */
#include <stdbool.h>

#include "models/image_processor_config.h"
#include "tensor/json_file.h"

/* An int or {"height": h, "width": w} with h == w, or (shortest) {"shortest_edge": n}. `why`
 * ends the message: what aspo's preprocessing needs instead. */
static aspo_status size_field(const json_t *obj, const char *path, const char *key,
                              bool shortest, const char *why, int *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return ASPO_OK;
    json_t *h = json_object_get(v, "height"), *w = json_object_get(v, "width");
    json_t *se = json_object_get(v, "shortest_edge");
    json_int_t n = -1;
    if (json_is_integer(v)) n = json_integer_value(v);
    else if (shortest && json_is_integer(se)) n = json_integer_value(se);
    else if (!shortest && json_is_integer(h) && json_is_integer(w) &&
             json_integer_value(h) == json_integer_value(w))
        n = json_integer_value(h);
    if (n < 1 || n > 65536)
        return aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: field \"%s\" must be %s; %s", path, key,
                         shortest ? "a positive integer or {\"shortest_edge\": n}"
                                  : "a positive integer or {\"height\": n, \"width\": n}",
                         why);
    *out = (int)n;
    return ASPO_OK;
}

/* image_mean / image_std: a list of 3 numbers or one number for every channel. */
static aspo_status channels_field(const json_t *obj, const char *path, const char *key,
                                  float out[3])
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return ASPO_OK;
    for (int c = 0; c < 3; c++) {
        json_t *e = json_is_array(v) ? json_array_get(v, (size_t)c) : v;
        if (!json_is_number(e) || (json_is_array(v) && json_array_size(v) != 3))
            return aspo_fail(ASPO_ERR_FORMAT, "%s: field \"%s\" must be a number or a list of 3",
                             path, key);
        out[c] = (float)json_number_value(e);
    }
    return ASPO_OK;
}

static bool flag(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return !json_is_false(v); /* both processors' do_* default to true */
}

/* CLIPImageProcessor: resize the short side to "size", then center crop "crop_size". */
static aspo_status clip_geometry(const json_t *root, const char *path,
                                 clip_preprocess_config *c)
{
    static const char why[] = "aspo's CLIP preprocessing resizes the short side and crops a "
                              "square";
    aspo_status s = size_field(root, path, "size", true, why, &c->shortest_edge);
    if (!s) s = size_field(root, path, "crop_size", false, why, &c->crop_size);
    if (!s && !flag(root, "do_center_crop"))
        s = aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: do_center_crop false is not supported (the "
                      "vision tower needs square images)", path);
    if (!s && !flag(root, "do_resize")) c->shortest_edge = 0;
    return s;
}

/* BlipImageProcessor: resize to "size" whatever the aspect ratio. It has no crop, so
 * "crop_size" and "do_center_crop" (left in some files) are not read. */
static aspo_status blip_geometry(const json_t *root, const char *path,
                                 clip_preprocess_config *c)
{
    aspo_status s = size_field(root, path, "size", false, "the vision model takes square "
                               "images", &c->crop_size);
    if (!s && !flag(root, "do_resize"))
        s = aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: do_resize false is not supported (the vision "
                      "encoder needs image_size x image_size images)", path);
    c->shortest_edge = 0; /* blip_preprocess does not read it */
    return s;
}

/* What both processors share: the resize filter, rescaling and normalisation. */
static aspo_status pixel_fields(const json_t *root, const char *path,
                                clip_preprocess_config *c)
{
    aspo_status s = channels_field(root, path, "image_mean", c->mean);
    if (!s) s = channels_field(root, path, "image_std", c->std);
    json_t *rf = json_object_get(root, "rescale_factor"), *rs = json_object_get(root, "resample");
    if (!s && rf && !json_is_null(rf)) {
        if (json_is_number(rf)) c->rescale = json_number_value(rf);
        else s = aspo_fail(ASPO_ERR_FORMAT, "%s: field \"rescale_factor\" must be a number", path);
    }
    if (!s && rs && !(json_is_integer(rs) && json_integer_value(rs) == 3))
        s = aspo_fail(ASPO_ERR_UNSUPPORTED, "%s: field \"resample\" must be 3 (bicubic, the one "
                      "aspo implements)", path);
    if (!s && !flag(root, "do_rescale")) c->rescale = 1.0;
    if (!s && !flag(root, "do_normalize"))
        for (int k = 0; k < 3; k++) c->mean[k] = 0.0f, c->std[k] = 1.0f;
    for (int k = 0; !s && k < 3; k++)
        if (!(c->std[k] != 0.0f))
            s = aspo_fail(ASPO_ERR_FORMAT, "%s: image_std[%d] is zero", path, k);
    return s;
}

aspo_status image_processor_config_read(const char *path, image_processor_kind kind,
                                        clip_preprocess_config *c)
{
    json_t *root = json_file_load(path, "image processor config");
    if (!root) return aspo_error_status();
    aspo_status s = json_is_object(root)
                        ? ASPO_OK
                        : aspo_fail(ASPO_ERR_FORMAT, "%s: not a JSON object", path);
    if (!s) s = kind == IMAGE_PROCESSOR_BLIP ? blip_geometry(root, path, c)
                                             : clip_geometry(root, path, c);
    if (!s) s = pixel_fields(root, path, c);
    json_decref(root);
    return s;
}
