# Sources of aspo/similarity: ASPO's per-unit CLIP image similarities S_i (needs
# models/clip and models/clip_tokenizer).
list(APPEND ASPO_SOURCES aspo/similarity.c)
