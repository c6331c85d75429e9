# aspo/cli: the command line. main.c, options.c and command.c are listed in CMakeLists.txt
# (tests link the option parser); the run flags go into the library, each command's
# entry point into the binary.
list(APPEND ASPO_SOURCES aspo/cli/train_flags.c)
list(APPEND ASPO_CLI_SOURCES aspo/cli/cmd_score.c aspo/cli/cmd_merge.c aspo/cli/cmd_bench.c)
