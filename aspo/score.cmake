# Sources of aspo/score: append to ASPO_SOURCES (library), ASPO_LIBS, ASPO_CLI_SOURCES.
# The scoring job of `aspo score` (reference log-probs, needs models/llama and aspo/data);
# the commands `aspo score` and `aspo merge` (aspo/commands.h) go into the binary.
list(APPEND ASPO_SOURCES aspo/score.c)
list(APPEND ASPO_CLI_SOURCES aspo/cmd_score.c aspo/cmd_merge.c)
