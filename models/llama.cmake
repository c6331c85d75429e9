# Sources of models/llama: append to ASPO_SOURCES (library), ASPO_LIBS, ASPO_CLI_SOURCES.
# LLaMA (config, declaration, forward), generic safetensors weight loading/writing, and
# PEFT LoRA adapters (save/load/merge). Uses jansson (already in ASPO_LIBS) and POSIX regex.
list(APPEND ASPO_SOURCES models/llama_config.c models/llama.c models/weights.c models/image_merge.c
                         models/llama_adapter.c
                         models/peft_adapter.c)
