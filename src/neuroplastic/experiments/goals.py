"""The held-out mean return at which a control task counts as solved, one rule for every
experiment's report."""
from __future__ import annotations

# The project's goals where they differ from gymnasium's reward_threshold: CartPole-v1 is
# judged at its episode cap (500, gymnasium says 475); LunarLander-v3's is gymnasium's own.
GOALS = {"CartPole-v1": 500.0, "LunarLander-v3": 200.0}


def goal_return(env_id: str, max_steps: int | None = None) -> float | None:
    """GOALS, else gymnasium's reward_threshold (e.g. Acrobot-v1 -100); None for an env that
    has none (e.g. Pendulum-v1) or that gymnasium does not know, and None when `max_steps`
    cuts episodes shorter than the env's own limit: a goal is set on whole episodes (Acrobot's
    -100 is met by an episode cut at 100 steps that never reached the line)."""
    import gymnasium

    from ..tasks.control import registered_id
    try:
        spec = gymnasium.spec(registered_id(env_id))
    except gymnasium.error.Error:
        return None
    if max_steps and spec.max_episode_steps is not None and max_steps < spec.max_episode_steps:
        return None
    if env_id in GOALS:
        return GOALS[env_id]
    return None if spec.reward_threshold is None else float(spec.reward_threshold)


def goals_text(env_ids, max_steps: int | None = None) -> str:
    """'CartPole-v1 500, Acrobot-v1 -100, Pendulum-v1 none' for a report's header."""
    def text(env_id):
        goal = goal_return(env_id, max_steps)
        return f"{env_id} {'none' if goal is None else f'{goal:g}'}"
    return ", ".join(text(e) for e in env_ids)
