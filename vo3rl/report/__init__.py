"""`vo3rl report RUN_DIR`: PNG plots of a run's `metrics.jsonl` files and a Markdown page embedding
them, for users without W&B (`panels`: what is shown; `draw`: matplotlib; `page`: the files)."""
