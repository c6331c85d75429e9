# Sources of models/llava: LLaVA-1.5 (both checkpoint layouts) over models/llama and
# models/clip, with image preprocessing from models/image and its preprocessor_config.json
# read by image_processor_config.c (its BlipImageProcessor kind is for InstructBLIP).
list(APPEND ASPO_SOURCES models/llava_config.c models/image_processor_config.c models/llava.c)
