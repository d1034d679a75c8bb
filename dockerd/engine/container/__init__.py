"""Containers: one module per verb or concern (moby's daemon/), the backend the /containers routes serve from."""
