# Sources of aspo/bench: the training-step benchmark (library) and `aspo bench` (CLI).
list(APPEND ASPO_SOURCES aspo/bench.c aspo/tiny_instructblip.c)
list(APPEND ASPO_CLI_SOURCES aspo/cmd_bench.c)
