"""Held-out evaluation of every task, and the judges that score generated media."""
