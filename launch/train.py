r"""Train StarGAN v2, DaGAN or DaGAN's depth network.

  python -m launch.train --config configs/stargan_v2.py:tiny --workdir runs/sg_tiny
  python -m launch.train --config configs/stargan_v2.py:afhq --workdir runs/afhq --config.data_dir=/data/tfds
  python -m launch.train --config configs/stargan_v2.py:tiny --workdir runs/x --config.total_steps=50 --dry_run

Re-running with the same --workdir resumes from its last checkpoint (model, optimiser, EMA, RNG and data position).
Multi-host: start the same command on every host with --coordinator_address=HOST:PORT --num_processes=N
--process_id=i (jax.distributed); the mesh then spans every device of every host.
"""
from __future__ import annotations

import json
import os

from absl import app, flags, logging
from ml_collections import config_flags

from jaxreenact import compile_cache
from launch import cli

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config, e.g. configs/stargan_v2.py:tiny.",
                                 lock_config=True)
flags.DEFINE_string("workdir", None, "Run directory: config.json, checkpoints/, tensorboard/, samples/, metrics.jsonl.")
flags.DEFINE_bool("dry_run", False, "Print the resolved config and exit.")
flags.DEFINE_string("coordinator_address", None, "Multi-host: address of process 0 (jax.distributed).")
flags.DEFINE_integer("num_processes", None, "Multi-host: number of processes.")
flags.DEFINE_integer("process_id", None, "Multi-host: this process's index.")
flags.mark_flags_as_required(["config"])


def main(argv):
  del argv  # positional arguments are refused by cli.run
  config = FLAGS.config
  if FLAGS.dry_run:
    print(config.to_json_best_effort(indent=2))
    return
  compile_cache.setup_from_flags()  # persistent XLA cache (--nocompile_cache: off), before the first jit
  if not FLAGS.workdir:
    raise app.UsageError("--workdir is required")
  if FLAGS.coordinator_address:
    import jax
    jax.distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  from jaxreenact.train import loop, runners
  if config.model_name not in runners.TASKS:
    raise app.UsageError(f"config.model_name={config.model_name!r} has no trainer; known: {sorted(runners.TASKS)}")
  from jaxreenact.train import run_config
  config_json = config.to_json_best_effort(indent=2)
  try:  # a resume is checked against the stored config before anything in the workdir is written
    allowed = run_config.check_resume(FLAGS.workdir, config_json)
  except run_config.ConfigMismatchError as e:
    cli.error(str(e))
  for key, (old, new) in allowed.items():
    logging.warning("resume: %s changed from %s to %s", key, old, new)
  cli.require_writable_dir("workdir", FLAGS.workdir)
  try:  # data, checkpoints to start from, perceptual trunk: a missing or unusable one is named in one line
    task = runners.TASKS[config.model_name](config)
  except (FileNotFoundError, ValueError) as e:
    logging.debug("building the %s task failed", config.model_name, exc_info=True)  # --verbosity=1 shows it
    raise app.UsageError(str(e))
  except KeyboardInterrupt:  # Ctrl-C while the model, data and state are being built: nothing was written
    cli.error(f"interrupted before training started; nothing saved in {FLAGS.workdir}", 130)
  try:  # only now: a run that cannot start leaves no config.json to be refused on the next try
    os.makedirs(FLAGS.workdir, exist_ok=True)
    run_config.write(FLAGS.workdir, config_json)
  except OSError as e:
    raise app.UsageError(f"--workdir={FLAGS.workdir}: cannot write there: {e.strerror or e}")
  try:
    notes = getattr(task, "notes", None)
    if notes:  # what was actually used (e.g. the perceptual trunk) goes next to the config
      with open(os.path.join(FLAGS.workdir, "run_notes.json"), "w") as f:
        json.dump(notes, f, indent=2)
      for k, v in notes.items():
        if isinstance(v, str):
          logging.warning("%s: %s", k, v)
    summary = loop.run(task, workdir=FLAGS.workdir, total_steps=config.total_steps,
                       checkpoint_every=config.checkpoint_every, log_every=config.log_every,
                       sample_every=config.sample_every, keep_checkpoints=config.keep_checkpoints,
                       prefetch=config.get("prefetch", 2))
  except loop.NonFiniteLossError as e:
    logging.error("%s", e)
    raise SystemExit(f"stopped: {e}")
  except loop.Interrupted as e:  # SIGINT/SIGTERM: the state at the step reached is saved; one line, 130/143
    cli.error(str(e), e.exit_code)
  except KeyboardInterrupt:  # Ctrl-C before the loop took over the signal
    cli.error(f"interrupted before training started; nothing saved in {FLAGS.workdir}/checkpoints", 130)
  print(json.dumps(summary, indent=2))


if __name__ == "__main__":
  cli.run(main)
