"""Sandboxes for envs that run untrusted code (docker containers, processes).

None ships in this release; the first arrives with the repository-repair env.
The package exists so the distribution's layout (``rounds.sandboxes``) is stable.
"""
