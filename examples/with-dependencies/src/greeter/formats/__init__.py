"""Output formats of the greeter."""
