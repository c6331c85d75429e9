# Sources of aspo/data: append to ASPO_SOURCES (library), ASPO_LIBS, ASPO_CLI_SOURCES.
# Preference datasets (JSONL, jansson: already in ASPO_LIBS), chat templates and TRL-style
# tokenization of preference pairs (needs models/tokenizer).
list(APPEND ASPO_SOURCES aspo/dataset.c aspo/dataset_seva.c aspo/chat_template.c aspo/pair_tokens.c)
# The trainer of `aspo run` (model + data + method + optimizer).
list(APPEND ASPO_SOURCES aspo/policy.c aspo/policy_llama.c aspo/policy_llava.c aspo/policy_instructblip.c aspo/image_rows.c aspo/image_features.c aspo/vision_cache.c aspo/pair_batch.c aspo/train_flags.c aspo/train_data.c aspo/tiny_llama.c aspo/tiny_llava.c
     aspo/train_step.c aspo/checkpoint.c aspo/trainer.c aspo/run_output.c)
