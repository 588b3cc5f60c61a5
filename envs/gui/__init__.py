"""``rounds/GUI-v0``: app screens with accessibility trees, screenshots and grounded actions."""
