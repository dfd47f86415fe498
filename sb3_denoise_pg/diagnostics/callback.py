"""
Watch gradient quality over training: a callback that runs the gradient-truth probe every so many steps of ``learn``,
logs its cosines under ``gradient_truth/`` (tensorboard and the other SB3 logger outputs but stdout) and appends its
rows to a CSV table.
"""

import csv
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback

from sb3_denoise_pg.diagnostics.gradient_truth import EnvSource, GradientTruthProbe, ProbeConfig, ProbeResult

TABLE_COLUMNS = (
    "run_id",
    "num_timesteps",
    "point",
    "scale",
    "signal",
    "level",
    "cosine",
    "low",
    "high",
    "median",
    "diff",
    "diff_low",
    "diff_high",
    "ceiling",
)


def logger_key(row: dict[str, Any]) -> str:
    """``gradient_truth/<signal>/<point>/s<scale>/<level>``: one key per cosine of a probe's table."""
    return f"gradient_truth/{row['signal']}/{row['point']}/s{row['scale']:g}/{row['level']}"


class GradientTruthCallback(BaseCallback):
    """
    Runs a :class:`GradientTruthProbe` on the model every ``probe_freq`` env-steps of ``learn`` (the first time once
    ``probe_freq`` steps are done). Each probe's cosines are recorded under :func:`logger_key` and dumped at once (as
    ``EvalCallback`` does), its rows appended to ``table_path`` and its result kept in ``results``.

    :param env: The env to probe in, a gymnasium id or a function that makes it (the model's training env, noise
        wrappers included)
    :param probe_freq: Env-steps between two probes
    :param config: The probe's settings (default: ``ProbeConfig()``)
    :param table_path: A CSV file the rows are appended to (columns ``TABLE_COLUMNS``), ``None`` for none. A file
        that exists must be empty or have these columns (checked here, before any training).
    :param run_id: The ``run_id`` column of this callback's rows, so that several runs can share one table; default:
        the UTC time of the callback's creation and a random suffix
    :param verbose: 1 prints one line per probe
    """

    def __init__(
        self,
        env: EnvSource,
        probe_freq: int,
        config: ProbeConfig | None = None,
        table_path: str | Path | None = None,
        run_id: str | None = None,
        verbose: int = 0,
    ):
        super().__init__(verbose)
        if not (isinstance(probe_freq, int) and probe_freq >= 1):
            raise ValueError(f"probe_freq must be an integer >= 1, got {probe_freq!r}")
        self.probe = GradientTruthProbe(env, config)
        self.probe_freq = probe_freq
        self.table_path = None if table_path is None else Path(table_path)
        if self.table_path is not None:
            check_table(self.table_path)
        self.run_id = run_id or f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"
        self.results: list[ProbeResult] = []
        self._next_probe = probe_freq

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next_probe:
            self._next_probe = (self.num_timesteps // self.probe_freq + 1) * self.probe_freq
            self.probe_now()
        return True

    def probe_now(self) -> ProbeResult:
        """Probe the model at its current step, log and record the result."""
        result = self.probe.run(self.model)
        self.results.append(result)
        for row in result.rows:
            self.logger.record(logger_key(row), row["cosine"], exclude="stdout")
        self.logger.record("gradient_truth/pairs", result.info["pairs"], exclude="stdout")
        self.logger.dump(self.num_timesteps)
        if self.table_path is not None:
            self._append(result)
        if self.verbose >= 1:
            print(f"Gradient truth at {self.num_timesteps} steps: {summary_line(result)}")
        return result

    def _append(self, result: ProbeResult) -> None:
        assert self.table_path is not None
        new = not self.table_path.is_file() or self.table_path.stat().st_size == 0
        self.table_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.table_path, "a", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=TABLE_COLUMNS, extrasaction="ignore")
            if new:
                writer.writeheader()
            for row in result.rows:
                writer.writerow({"run_id": self.run_id, "num_timesteps": result.info["num_timesteps"], **row})

    def _on_training_end(self) -> None:
        self.probe.close()


def check_table(path: Path) -> None:
    """
    Raise a ``ValueError`` unless rows can be appended to the CSV table ``path``: a new file, an empty one, or one
    whose header is ``TABLE_COLUMNS``.
    """
    if path.is_dir():
        raise ValueError(f"table_path {path} is a directory: give the path of a CSV file")
    if not path.is_file() or path.stat().st_size == 0:
        return
    with open(path, newline="") as file:
        header = next(csv.reader(file), [])
    if tuple(header) != TABLE_COLUMNS:
        raise ValueError(
            f"table_path {path} has other columns ({', '.join(header)}) than the probe's table "
            f"({', '.join(TABLE_COLUMNS)}): appending would make it unreadable. Give a new file."
        )


def summary_line(result: ProbeResult) -> str:
    """The reference signal's parameter-space cosine at the policy's action (or the first point) and the truth's
    precision there, at the largest scale."""
    point = "policy" if result.select(point="policy") else result.rows[0]["point"]
    scale = max(row["scale"] for row in result.rows)
    level = "parameter" if result.select(level="parameter") else "batch"
    critic = result.value("critic", point, scale, level)
    split = result.value("truth_split_half", point, scale, level)
    pairs = result.info["pairs"]
    return f"critic {level} cosine {critic:+.2f} at {point}, scale {scale:g} (truth split-half {split:+.2f}, {pairs} pairs)"
