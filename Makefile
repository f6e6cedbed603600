.PHONY: build test test-unit bench demo clean

build:
	npx tsc -p tsconfig.json

## Everything: installs what it needs (npm ci, apt packages), builds, runs all test tiers.
test:
	bash scripts/test-all.sh

test-unit:
	NODE_OPTIONS=--experimental-vm-modules npx jest --selectProjects unit

## Single-node benchmark against mosquitto, and memory per connection/subscription.
bench: build
	bash e2e/bench/single-node.sh
	bash e2e/bench/memory.sh

demo:
	bash scripts/setup.sh
	node dist/broker/src/cli/main.js broker

clean:
	rm -rf dist .cache
