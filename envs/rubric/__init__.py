"""HealthBench-format rubrics, shared by the clinic envs (``PatientSim-v0`` and ``DiagGym-v0``).

- :mod:`.grader`: the rubric model, the score, and the two graders (rules with
  negation handling, and an LLM judge in HealthBench's grader prompt shape).
- :mod:`.chat`: the chat backends the LLM judge and the LLM patient use.
- :mod:`.clinical`: rubrics built from the clinic's knowledge base.
"""
