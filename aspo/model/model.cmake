# aspo/model: the model being trained behind one interface (policy.h) and its families,
# the frozen image side's features and their disk cache, and the random checkpoints that
# tests, the demo and the benchmark write.
list(APPEND ASPO_SOURCES aspo/model/policy.c aspo/model/policy_llama.c aspo/model/policy_llava.c
                         aspo/model/policy_instructblip.c aspo/model/image_features.c
                         aspo/model/vision_cache.c aspo/model/tiny_llama.c aspo/model/tiny_llava.c
                         aspo/model/tiny_instructblip.c)
