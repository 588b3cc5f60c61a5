"""Run the scripted expert on a few Household-v0 tasks with the plain Gymnasium API."""

import gymnasium as gym
import numpy as np

import rounds  # noqa: F401  (registers the rounds/ envs)

env = gym.make("rounds/Household-v0")
expert = env.unwrapped.scripted_policies()["expert"]
rng = np.random.default_rng(0)

for task_id in env.unwrapped.task_ids("test")[:6]:
    observation, info = env.reset(options={"task_id": task_id})
    print(f"=== {task_id}: {info['goal']}")
    terminated = truncated = False
    while not (terminated or truncated):
        action = expert(env.unwrapped, rng)
        observation, reward, terminated, truncated, info = env.step(action)
        print(f"> {action}\n  {observation.splitlines()[0]}")
    print(f"outcome {info['outcome']}, metrics {info['metrics']}\n")
