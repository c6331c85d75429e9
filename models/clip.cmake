# Sources of models/clip: CLIP vision and text towers (config, declaration, forward).
list(APPEND ASPO_SOURCES models/clip_config.c models/clip.c)
