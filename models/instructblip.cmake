# Sources of InstructBLIP (issue 13): the vision encoder, the Q-Former and the whole model.
list(APPEND ASPO_SOURCES models/blip_vision.c models/qformer.c models/instructblip.c)
