# Sources of InstructBLIP (issue 13): the vision encoder so far; the Q-Former and the whole
# model join it.
list(APPEND ASPO_SOURCES models/blip_vision.c)
