# aspo/inference: what runs the model without training it: `aspo score` (reference
# log-probs).
list(APPEND ASPO_SOURCES aspo/inference/score.c)
