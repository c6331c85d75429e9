# Sources of models/llava: LLaVA-1.5 (both checkpoint layouts) over models/llama and
# models/clip, with image preprocessing from models/image.
list(APPEND ASPO_SOURCES models/llava_config.c models/llava.c)
