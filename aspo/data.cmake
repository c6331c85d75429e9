# Sources of aspo/data: append to ASPO_SOURCES (library), ASPO_LIBS, ASPO_CLI_SOURCES.
