/* PEFT adapter configs: adapter_config.json through peft_config_load, and a --lora-targets
 * string through peft_config_init, each then asked which of a LLaMA's and a LLaVA's modules
 * it adapts (target lists, regular expressions, layers_to_transform).
 *
 * Input, cut by a scissors line (fuzz_common.h): adapter_config.json, then optionally the
 * targets string. */
#include <stdlib.h>

#include "fuzz_common.h"
#include "models/peft_adapter.h"

enum { MAX_INPUT = 1 << 14 };

static volatile int sink;

static void match_modules(const peft_config *c)
{
    static const char *const modules[] = {
        "model.layers.0.self_attn.q_proj",
        "model.layers.0.self_attn.v_proj",
        "model.layers.12.mlp.down_proj",
        "lm_head",
        "language_model.model.layers.3.self_attn.k_proj",
        "language_model.lm_head",
        "multi_modal_projector.linear_1",
        "model.mm_projector.2",
    };
    for (size_t i = 0; i < sizeof modules / sizeof *modules; i++)
        sink += peft_targets_module(c, modules[i], i == 3 || i == 5);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT) return 0;
    const char *dir = fuzz_reset();
    fuzz_part part[2];
    int n = fuzz_split(data, size, part, 2);
    fuzz_write("adapter_config.json", part[0].data, part[0].size);
    peft_config c;
    if (peft_config_load(dir, &c) == ASPO_OK) {
        match_modules(&c);
        peft_config_free(&c);
    }
    fuzz_error_done();

    if (n > 1) {
        char *targets = fuzz_strndup(part[1].data, part[1].size);
        lora_config lora = {.r = 8, .alpha = 16};
        if (peft_config_init(&c, &lora, targets) == ASPO_OK) {
            match_modules(&c);
            peft_config_free(&c);
        }
        fuzz_error_done();
        free(targets);
    }
    return 0;
}
