/* Between llava_config.c (reading a LLaVA directory's configs) and llava.c (opening the
 * model they describe). Not for use outside models/llava*. */
#ifndef ASPO_MODELS_LLAVA_INTERNAL_H
#define ASPO_MODELS_LLAVA_INTERNAL_H

#include <jansson.h>

#include "models/llava.h"

typedef struct llava_parsed {
    json_t *text_config;   /* owned: the LLaMA config, LlamaConfig's defaults filled in */
    json_t *vision_config; /* owned: llava-hf's vision_config (LlavaConfig's default when
                            * absent); NULL for the original layout */
    clip_config tower;     /* the vision tower's config (original: its directory's) */
    char text_where[4200], vision_where[4200]; /* how messages name the two */
} llava_parsed;

/* dir/config.json (+ preprocessor_config.json) -> cfg and the parts llava_open needs. On
 * failure p holds nothing (llava_parsed_free is still safe) and the message names the
 * file and the field. */
aspo_status llava_config_parse(const char *dir, const llava_options *opt, llava_config *cfg,
                               llava_parsed *p);
void llava_parsed_free(llava_parsed *p);

#endif
