"""Disk hygiene: find what can go (caches, old checkpoints, logs, damaged images), then act safely.

Three phases that never blur, as in huggingface_hub's cache manager:

- a scan per category (`pycache`, `hf_cache`, `checkpoints_retention`, `wandb_runs`,
  `quarantine`) returns frozen `CleanupItem`s with the bytes each would free, touching nothing;
- `plan.build_plan` gathers them into a `CleanupPlan` with the bytes it expects to free;
- `execute.execute` re-checks every item right before acting (still there, unchanged, still
  inside its root, not a symlink leading out, not locked) and reports what actually happened.

`roots` resolves and refuses roots (`/`, the home folder, a missing folder); `disk` reports
filesystem usage; `guard.DiskGuard` keeps training from starting a checkpoint it cannot finish.
"""
