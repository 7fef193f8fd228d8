"""Named RL recipes: which attempts a trajectory has, what it earns, which attempts the policy
gradient trains and how strongly each attempt is held to the reference.

- grpo: one attempt (or two: the reward of the last), policy gradient and KL on every attempt.
- score_stage1 (SCoRe stage I): reward r(y2); the gradient trains attempt 2 only, while a
  strong KL (beta2) keeps attempt 1 at the reference and a weak one (beta1) holds attempt 2.
- score_stage2 (SCoRe stage II): reward r(y1) + r(y2) + alpha * (r(y2) - r(y1)), which pays for
  fixing a wrong first answer and charges for breaking a right one; both attempts trained,
  weak KL on both (rl.score.stage2_t1_kl can keep attempt 1's strong). By default
  (rl.score.credit: attempt) attempt 1 learns from r(y1) and attempt 2 from its shaped reward;
  crediting both with the sum (trajectory) pays attempt 1 (1 - alpha) * r(y1) + (1 + alpha) *
  r(y2): alpha 1 pays it for the answer it leads to, and alpha > 1 teaches it to fail.
- score: the rl stages in order are stage I, then stage II.
"""

from __future__ import annotations

from dataclasses import dataclass

from vloom.config import RLConfig, StageConfig


@dataclass(frozen=True)
class Recipe:
    name: str
    attempts: int
    pg: tuple[bool, ...]  # per attempt: does the policy gradient train it
    kl: tuple[float, ...]  # per attempt: the KL coefficient
    alpha: float = 0.0  # stage II's shaping bonus
    per_attempt: bool = False  # stage II: each attempt learns from its own (shaped) reward

    def returns(self, r1: float | None, r2: float | None) -> float | None:
        """The trajectory's reward from its attempts' rewards; None when one it needs failed."""
        if self.attempts == 1:
            return r1
        if self.name == "score_stage2":
            if r1 is None or r2 is None:
                return None
            return r1 + r2 + self.alpha * (r2 - r1)
        return r2

    def credits(self, r1: float | None, r2: float | None) -> tuple[float | None, ...]:
        """What each attempt's tokens learn from: the trajectory's reward for all of them, or
        (stage II, per attempt) r(y1) for attempt 1 and the shaped r(y2) + alpha * (r(y2) -
        r(y1)) for attempt 2 (a wrong first answer then costs attempt 1, not pays it)."""
        if not self.per_attempt:
            return (self.returns(r1, r2),) * self.attempts
        shaped = None if r1 is None or r2 is None else r2 + self.alpha * (r2 - r1)
        return r1, shaped


def recipe_for(rl: RLConfig, stages: list[StageConfig], stage: int) -> Recipe:
    """The recipe train.stages[stage] (an rl stage) runs."""
    name = rl.recipe
    if name == "score":
        rl_stages = [i for i, s in enumerate(stages) if s.kind == "rl"]
        name = "score_stage1" if stage == rl_stages[0] else "score_stage2"
    sc = rl.score
    if name == "score_stage1":
        return Recipe(name, 2, (False, True), (sc.beta2, sc.beta1))
    if name == "score_stage2":
        per_attempt = sc.credit == "attempt"
        t1_kl = sc.beta1 if sc.stage2_t1_kl is None else sc.stage2_t1_kl
        return Recipe(name, 2, (True, True), (t1_kl, sc.beta1), sc.alpha, per_attempt)
    return Recipe("grpo", rl.attempts, (True,) * rl.attempts, (rl.kl_coef,) * rl.attempts)
