# Sources of aspo/method: append to ASPO_SOURCES (library), ASPO_LIBS, ASPO_CLI_SOURCES.
# Sentence units and the DPO/ASPO losses: plain C on host arrays, no extra libraries.
list(APPEND ASPO_SOURCES aspo/sentences.c aspo/preference_loss.c)
