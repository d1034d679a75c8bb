# Thin wrappers: the scripts are the source of truth (see README.md).
.PHONY: setup test lint image bench clean

setup:
	./scripts/setup

test:
	./scripts/test

lint:
	./scripts/lint

image:
	python3 scripts/build_default_image.py

bench:
	./scripts/bench

clean:
	rm -rf images .pytest_cache .mypy_cache .ruff_cache
	find . -path ./.venv -prune -o -name __pycache__ -type d -exec rm -rf {} +
