# Sources of aspo/demo: `aspo demo`, the embedded preference task and its tokenizer.
list(APPEND ASPO_SOURCES aspo/demo.c aspo/demo_task.c)
