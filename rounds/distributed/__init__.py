"""Env workers beyond the chat loop's thread pool (extra ``[distributed]`` for Ray).

An env run elsewhere is seen locally as a :class:`~rounds.distributed.proxy.ProxyEnv`,
so ``run_episodes``, ``rounds eval`` and the trainer take it unchanged.
:mod:`rounds.distributed.workers` runs envs in worker processes (``process``) or Ray
actors (``ray``); Ray is imported only when the ``ray`` backend starts.
"""
