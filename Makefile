# The verbs a newcomer types. Each is a thin call to a script in scripts/.
PYTHON ?= python3
SCENARIO ?=
JOBS ?= 2

.PHONY: help test lint app-test molecule images docker lab lab-down bench clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

test:  ## Set everything up (venv, Docker engine, images) and run lint, app tests, every molecule scenario
	$(PYTHON) scripts/run_tests.py --jobs $(JOBS)

lint:  ## yamllint, ansible-lint (production profile), ruff
	$(PYTHON) scripts/run_tests.py --only lint

app-test:  ## The sample app's tests and check --deploy
	$(PYTHON) scripts/run_tests.py --only app

molecule:  ## molecule test for every scenario, or SCENARIO=redis (a role) / SCENARIO=stack
	$(PYTHON) scripts/run_tests.py --only molecule --jobs $(JOBS) $(foreach s,$(SCENARIO),--scenario $(s))

images:  ## Build (or reuse) the Debian test images
	$(PYTHON) scripts/docker_engine.py
	$(PYTHON) scripts/build_images.py

docker:  ## Start a Docker engine (install docker.io if needed)
	$(PYTHON) scripts/docker_engine.py

lab:  ## Bring up the local lab (containers as hosts) and deploy the whole stack with site.yml
	$(PYTHON) scripts/lab.py up

lab-down:  ## Remove the local lab's containers
	$(PYTHON) scripts/lab.py down

bench:  ## Benchmarks on the running lab (web tier, task pipeline, deployment) -> bench/RESULTS.md
	.venv/bin/python -m bench

clean:  ## Remove the venv, caches and logs (images stay; docker rmi baseline/debian:* removes them)
	rm -rf .venv .cache .pytest_cache .ruff_cache
