/* InstructBLIP as transformers' InstructBlipForConditionalGeneration (4.44 semantics) with a
 * LLaMA/Vicuna language model: the vision encoder (models/blip_vision.h) reads the image, the
 * Q-Former (models/qformer.h) reads its features and the instruction through learned query
 * tokens, language_projection maps the query outputs to the LLM's width, and those Q
 * embeddings go before the text's (4.44 has no image token: the LLM sees [queries; text],
 * all queries attended). One config.json (model_type "instructblip"), one checkpoint, Hugging
 * Face's names. Everything but the LLM is frozen; LoRA goes on the LLM as PEFT names it
 * ("language_model.model.layers.N.self_attn.q_proj"). */
#ifndef ASPO_MODELS_INSTRUCTBLIP_H
#define ASPO_MODELS_INSTRUCTBLIP_H

#include <stdbool.h>
#include <stdint.h>

#include "models/blip_vision.h"
#include "models/image.h"
#include "models/llama.h"
#include "models/qformer.h"

typedef struct instructblip_config {
    blip_vision_config vision;
    qformer_config qformer;
    int64_t num_query_tokens; /* Q: 32 in the released models */
    /* The id of the Q positions before the text (see instructblip_forward_hidden):
     * config.json's image_token_index (checkpoints of transformers 4.47 and later), else the
     * text vocabulary's size, an id no text token has (4.44's layout has no image token). */
    int32_t image_token;
    /* preprocessor_config.json (BlipImageProcessor): resize to crop_size square, rescale,
     * normalize; without the file, the vision encoder's image_size and OpenAI CLIP's mean
     * and std, BlipImageProcessor's defaults. */
    clip_preprocess_config image;
} instructblip_config;

typedef struct instructblip_model {
    instructblip_config cfg;
    /* The language model, opened with llama_open_with under "language_model."; the vision
     * encoder, the Q-Former, query_tokens and language_projection live in lm.ps too (frozen),
     * so one allocation and one checkpoint read hold all of it. */
    llama_model lm;
    blip_vision vision;     /* vision_model.* */
    qformer qformer;        /* qformer.* */
    tensor *query_tokens;   /* (1,Q,Cq) */
    linear projection;      /* language_projection (Cq -> C) */
} instructblip_model;

/* Whether dir/config.json is an InstructBLIP's (model_type "instructblip"). Errors only for
 * an unreadable config. */
aspo_status instructblip_detect(const char *dir, bool *yes);

/* dir/config.json as instructblip_open reads it, without the checkpoint: the configs of the
 * three parts, and the language model's in *text (NULL: not wanted). */
aspo_status instructblip_config_load(const char *dir, instructblip_config *c, llama_config *text);

/* Reads config.json (vision_config, qformer_config and text_config with their families'
 * defaults for what save_pretrained leaves out; text_config must be a LLaMA) and opens the
 * checkpoint with the language model's options lm (dtypes, LoRA, adapter). On failure m is
 * left closed and the message names the file and field or tensor. */
aspo_status instructblip_open(const char *dir, const llama_options *lm, instructblip_model *m);
void instructblip_close(instructblip_model *m);

/* The model with its LLM's adapter folded into the weights, as a checkpoint of this layout in
 * out_dtype (every part written; config.json with torch_dtype set), with the tokenizers and
 * preprocessor_config.json copied: InstructBlipForConditionalGeneration.from_pretrained and
 * InstructBlipProcessor.from_pretrained load it. */
aspo_status instructblip_save_merged(const instructblip_model *m, const char *out_dir,
                                     dtype out_dtype);

/* pixels (B,3,S,S) f32 (BlipImageProcessor's), the instruction's Q-Former ids (B,L) i32
 * and mask (B,L) (NULL: all real) -> the LLM inputs the images become (B,Q,C) f32:
 * language_projection of the Q-Former's query outputs. No tape is needed (all frozen). */
tensor *instructblip_image_inputs(instructblip_model *m, tensor *pixels, tensor *qformer_ids,
                                  tensor *qformer_mask);

/* ids (B,T) i32, key_mask and positions as llama_forward_hidden, features (M,C) f32: the
 * rows of instructblip_image_inputs' (k,Q,C), feature_row host (B,T): the row that fills a
 * position, -1 for text (as image_merge_embeddings) -> the LLM's final hidden states (B,T,C).
 * Both of transformers' layouts give the LLM [Q query outputs; BOS; text] with the queries
 * attended: 4.44 concatenates them before the text's embeddings, later versions fill Q image
 * tokens that the processor puts before BOS. So an image row is Q image positions first. */
tensor *instructblip_forward_hidden(instructblip_model *m, tensor *ids, tensor *key_mask,
                                    const int32_t *positions, tensor *features,
                                    const int32_t *feature_row);

#endif
