/* Reading an image processor's preprocessor_config.json (transformers' CLIPImageProcessor for
 * LLaVA, BlipImageProcessor for BLIP-2 and InstructBLIP) into the clip_preprocess_config that
 * clip_preprocess / blip_preprocess of models/image.h take. */
#ifndef ASPO_IMAGE_PROCESSOR_CONFIG_H
#define ASPO_IMAGE_PROCESSOR_CONFIG_H

#include "models/image.h"
#include "tensor/error.h"

typedef enum image_processor_kind {
    IMAGE_PROCESSOR_CLIP, /* CLIPImageProcessor: resize the short side ("size":
                           * {"shortest_edge": n} or n), center crop ("crop_size") */
    IMAGE_PROCESSOR_BLIP, /* BlipImageProcessor (BLIP-2, InstructBLIP): resize to "size"
                           * {"height": h, "width": w} (h == w) or n, no crop */
} image_processor_kind;

/* path's fields over the defaults already in *c (clip_config_default of models/image.h):
 * the sizes, do_resize, do_rescale / rescale_factor, do_normalize / image_mean / image_std
 * and resample, which must be 3 (bicubic). BLIP sets crop_size from "size" and shortest_edge
 * to 0. What aspo does not implement (a non-square crop, no crop, BLIP without resizing,
 * another resample filter) is ASPO_ERR_UNSUPPORTED, a malformed field ASPO_ERR_FORMAT; the
 * message names the file and the field. */
aspo_status image_processor_config_read(const char *path, image_processor_kind kind,
                                        clip_preprocess_config *c);

#endif
