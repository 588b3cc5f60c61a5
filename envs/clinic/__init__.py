"""``rounds/DiagGym-v0``: a virtual clinic where an agent orders exams and commits to a diagnosis."""
