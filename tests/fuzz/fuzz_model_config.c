/* config.json of every model family, read by each family's parser: LLaMA
 * (llama_config_from_json and llama_config_load), CLIP (the tower parsers and
 * clip_config_load), LLaVA (llava_detect and llava_config_parse, which reads
 * preprocessor_config.json too and, for the original layout, the CLIP tower's config.json
 * in the directory mm_vision_tower names) and InstructBLIP (its vision and Q-Former
 * parsers, instructblip_detect and instructblip_config_load).
 *
 * Input, cut by scissors lines (fuzz_common.h): config.json, then optionally
 * preprocessor_config.json and tower/config.json (the seeds name "tower" as mm_vision_tower);
 * an empty part is no file. */
#include <jansson.h>

#include "fuzz_common.h"
#include "models/blip_vision.h"
#include "models/clip.h"
#include "models/instructblip.h"
#include "models/llama.h"
#include "models/llava.h"
#include "models/llava_internal.h"
#include "models/qformer.h"

enum { MAX_INPUT = 1 << 16 };

/* One parsed object through the parsers LLaVA hands its text_config and vision_config. */
static void parse_object(const json_t *obj)
{
    llama_config lc;
    clip_tower_config tower;
    clip_config cc;
    llama_config_from_json(obj, "fuzz", &lc);
    fuzz_error_done();
    clip_tower_config_from_json(obj, "fuzz", true, &tower);
    fuzz_error_done();
    clip_tower_config_from_json(obj, "fuzz", false, &tower);
    fuzz_error_done();
    clip_vision_config_from_json(obj, "fuzz", &cc);
    fuzz_error_done();
    blip_vision_config bv;
    blip_vision_config_from_json(obj, "fuzz", &bv);
    fuzz_error_done();
    qformer_config qc;
    qformer_config_from_json(obj, "fuzz", 1408, &qc);
    fuzz_error_done();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT) return 0;
    const char *dir = fuzz_reset();
    fuzz_part part[3];
    fuzz_split(data, size, part, 3);

    json_t *root = json_loadb((const char *)part[0].data, part[0].size, JSON_REJECT_DUPLICATES,
                              NULL);
    if (root) {
        parse_object(root);
        parse_object(json_object_get(root, "text_config"));
        parse_object(json_object_get(root, "vision_config"));
        parse_object(json_object_get(root, "qformer_config"));
        json_decref(root);
    }

    fuzz_write("config.json", part[0].data, part[0].size);
    if (part[1].size) fuzz_write("preprocessor_config.json", part[1].data, part[1].size);
    if (part[2].size) fuzz_write("tower/config.json", part[2].data, part[2].size);
    llama_config lc;
    llama_config_load(fuzz_path("config.json"), &lc);
    fuzz_error_done();
    clip_config cc;
    clip_config_load(fuzz_path("config.json"), &cc);
    fuzz_error_done();
    bool is_llava;
    llava_detect(dir, &is_llava);
    fuzz_error_done();
    llava_options opt = llava_defaults();
    llava_config cfg;
    llava_parsed parsed;
    llava_config_parse(dir, &opt, &cfg, &parsed);
    fuzz_error_done();
    llava_parsed_free(&parsed);
    bool is_instructblip;
    instructblip_detect(dir, &is_instructblip);
    fuzz_error_done();
    instructblip_config ic;
    instructblip_config_load(dir, &ic, &lc);
    fuzz_error_done();
    return 0;
}
