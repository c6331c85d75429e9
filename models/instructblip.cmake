# Sources of InstructBLIP (issue 13): the vision encoder and the Q-Former so far; the whole
# model joins them.
list(APPEND ASPO_SOURCES models/blip_vision.c models/qformer.c)
