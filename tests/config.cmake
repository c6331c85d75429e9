# Bad model, adapter and JSON files refused with the file, key and value (issue 12), and
# cpu_expf far outside exp's range.
aspo_test(test_config test_config.c)
add_test(NAME config COMMAND test_config)
