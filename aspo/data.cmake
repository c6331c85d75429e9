# Sources of aspo/data: append to ASPO_SOURCES (library), ASPO_LIBS, ASPO_CLI_SOURCES.
# Preference datasets (JSONL, jansson: already in ASPO_LIBS), chat templates and TRL-style
# tokenization of preference pairs (needs models/tokenizer).
list(APPEND ASPO_SOURCES aspo/dataset.c aspo/chat_template.c aspo/pair_tokens.c)
