"""Custom checkov checks for tests/test_checkov.py (loaded with --external-checks-dir, never by pytest)."""
