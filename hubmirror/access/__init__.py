"""Who may read what from a mirror's server: tokens of people and services (tokens.py), what each may see
(policy.py), how a request shows who it is (gate.py), and the audit log of what they read (audit.py)."""
