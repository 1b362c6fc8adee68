"""Connecting to Ray (local, auto, ray://) and the configs that start real clusters."""
