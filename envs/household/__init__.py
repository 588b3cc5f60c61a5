"""``rounds/Household-v0``: ALFWorld-style household tasks in procedurally generated homes."""
