"""A fourth task defined outside bench/ (see docs/adding_a_task.md): found through $BENCH_TASKS."""
