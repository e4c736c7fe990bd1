"""What a coursework is: its rules (assignment.py and the shipped TOML files beside it), its held-out data
(heldout.py), its public test sets (datasets.py) and its official evaluation code (official.py)."""
