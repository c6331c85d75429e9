# Test suites for the bench part (aspo_test + add_test). No timing asserts: they check what
# the benchmark counts and that it runs, never how fast.
# test_bench: the random LLaVA checkpoint, LLaVA and LLaMA benchmark runs at tiny sizes
# (counts of positions and parameters, temporary directory removed), size errors.
aspo_test(test_bench test_bench.c)
add_test(NAME bench COMMAND test_bench)
# `aspo bench --model-kind llava` end to end: one JSON line with both rates.
add_test(NAME bench_llava_cli COMMAND aspo bench --model-kind llava --threads 1 --layers 2
         --dim 32 --heads 4 --ffn 48 --vocab 64 --seq 16 --prompt 4 --rank 4 --steps 2
         --warmup 1 --vision-layers 2 --vision-dim 16 --vision-heads 2 --image-size 28
         --patch-size 14)
set_tests_properties(bench_llava_cli PROPERTIES
  PASS_REGULAR_EXPRESSION "^{\"src\": \"aspo\", \"model_kind\": \"llava\", .*\"image_positions\": 4, .*\"text_tokens_per_step\": 64, \"positions_per_step\": 80, .*\"text_tokens_per_s\": [0-9.]+, \"positions_per_s\": [0-9.]+, .*\"loss_last\": [0-9.e-]+}\n$"
  FAIL_REGULAR_EXPRESSION "error|ERROR|runtime error")
# `aspo bench --model-kind instructblip` end to end: 4 queries before BOS in each of the 4
# sequences of 16 text tokens (the image token becomes them: 80 positions).
add_test(NAME bench_instructblip_cli COMMAND aspo bench --model-kind instructblip --threads 1
         --layers 2 --dim 32 --heads 4 --ffn 48 --vocab 64 --seq 16 --prompt 4 --rank 4
         --steps 2 --warmup 1 --vision-layers 2 --vision-dim 16 --vision-heads 2
         --image-size 28 --patch-size 14 --qformer-layers 2 --queries 4)
set_tests_properties(bench_instructblip_cli PROPERTIES
  PASS_REGULAR_EXPRESSION "^{\"src\": \"aspo\", \"model_kind\": \"instructblip\", .*\"qformer_layers\": 2, \"qformer_dim\": 16, \"queries\": 4, \"image_positions\": 4, .*\"trainable\": 3968, .*\"text_tokens_per_step\": 64, \"positions_per_step\": 80, .*\"text_tokens_per_s\": [0-9.]+, \"positions_per_s\": [0-9.]+, .*\"loss_last\": [0-9.e-]+}\n$"
  FAIL_REGULAR_EXPRESSION "error|ERROR|runtime error")
