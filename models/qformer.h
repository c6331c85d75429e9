/* InstructBLIP's Q-Former as transformers' InstructBlipQFormerModel: a BERT-style
 * post-LayerNorm encoder over [learned queries; instruction tokens]. Self-attention spans
 * both (padding masked); cross-attention to the image features runs for the query
 * positions only, on the layers cross_attention_frequency selects; queries and text have
 * separate feed-forward weights. The instruction's word + position embeddings (positions
 * from 0) and the queries are layer-normed together first. Frozen in InstructBLIP's ASPO
 * runs (LoRA is on the language model); the ops are differentiable. */
#ifndef ASPO_MODELS_QFORMER_H
#define ASPO_MODELS_QFORMER_H

#include <stdbool.h>
#include <stdint.h>

#include "models/clip.h"
#include "nn/linear.h"
#include "nn/modules.h"

struct json_t;

/* InstructBlipQFormerConfig, with its defaults for what save_pretrained leaves out: BERT-base
 * (30522 tokens, 768 wide, 12 layers, 12 heads, 3072), gelu, 512 positions, eps 1e-12, pad
 * 0, cross-attention every 2nd layer. encoder_hidden_size is the vision width (InstructBLIP
 * sets it so whatever the file says). */
typedef struct qformer_config {
    int64_t vocab_size, hidden_size, intermediate_size, num_layers, num_heads, head_dim;
    int64_t max_position_embeddings, cross_attention_frequency, encoder_hidden_size;
    int64_t pad_token_id;
    double layer_norm_eps;
    clip_act act;
} qformer_config;

void qformer_defaults(qformer_config *c);
/* Reads a qformer_config object; encoder_hidden_size is the vision tower's width. Every
 * size is checked (positive, bounded, heads dividing the width); a position_embedding_type
 * other than "absolute" or a hidden_act aspo lacks is ASPO_ERR_UNSUPPORTED. */
aspo_status qformer_config_from_json(const struct json_t *obj, const char *where,
                                     int64_t encoder_hidden_size, qformer_config *c);

typedef struct qformer_attention {
    linear query, key, value; /* attention.{query,key,value} */
    linear dense;             /* output.dense */
    layernorm ln;             /* output.LayerNorm: after the residual add */
} qformer_attention;

typedef struct qformer_ffn {
    linear up, down; /* intermediate(_query).dense, output(_query).dense */
    layernorm ln;    /* output(_query).LayerNorm */
} qformer_ffn;

typedef struct qformer_layer {
    qformer_attention self, cross; /* cross: on layers i % frequency == 0 */
    bool has_cross;
    qformer_ffn text, query; /* intermediate/output, intermediate_query/output_query */
} qformer_layer;

typedef struct qformer {
    qformer_config cfg;
    embedding words, positions; /* embeddings.word_embeddings, embeddings.position_embeddings */
    layernorm embed_ln;         /* embeddings.layernorm */
    qformer_layer *layers;
} qformer;

/* Declares the Q-Former's parameters in ps (frozen, dtype dt) under prefix ("qformer"),
 * with Hugging Face's names. Call before param_store_allocate. */
aspo_status qformer_declare(qformer *q, param_store *ps, const char *prefix,
                            const qformer_config *c, dtype dt);
void qformer_free(qformer *q);

/* queries (1,Q,C) (InstructBLIP's query_tokens), ids (B,L) i32 the instruction's Q-Former
 * tokens (L = 0: none, ids NULL), mask (B,L) nonzero = real token (NULL: all real), image
 * (B,N,Cv) the vision encoder's last_hidden_state -> last_hidden_state (B,Q+L,C), queries
 * first. An instruction longer than max_position_embeddings is an error saying so. */
/* mask (B,L) nonzero = real (f32 or i32) -> (B,Q+L) f32 with Q always-attended positions in
 * front: the key mask over [queries; text], in the Q-Former and in InstructBLIP's LLM. */
tensor *qformer_mask_with_queries(tensor *mask, int64_t Q);

tensor *qformer_forward(const qformer *q, tensor *queries, tensor *ids, tensor *mask,
                        tensor *image);

#endif
