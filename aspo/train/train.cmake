# aspo/train: the trainer of `aspo run` (steps, checkpoints, outputs), the DPO/ASPO losses
# and CLIP similarities, the memory plan (--dry-run; the plan backend is
# backends/plan/plan.cmake), the benchmark and the demo.
list(APPEND ASPO_SOURCES aspo/train/trainer.c aspo/train/train_step.c aspo/train/checkpoint.c
                         aspo/train/run_output.c aspo/train/preference_loss.c
                         aspo/train/similarity.c aspo/train/dry_run.c aspo/train/bench.c
                         aspo/train/demo.c aspo/train/demo_task.c)
