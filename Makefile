# The two commands of the README. Both install what is missing first (scripts/bootstrap.sh).
.PHONY: run test

# The whole pipeline on the embedded local default: local engines up, data through every stage, a report.
run:
	@./scripts/bootstrap.sh .venv/bin/ray-app demo

# The test suite; it starts its own stack on free ports in a scratch state dir and stops it at the end.
test:
	@./scripts/bootstrap.sh .venv/bin/pytest $(PYTEST_ARGS)
