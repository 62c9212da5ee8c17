"""The provider contract suite: one class of behaviours, run once per provider."""
