.PHONY: build test test-unit bench bench-cluster bench-links demo clean crds image e2e-kind e2e

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

## Three regions on this machine (e2e/harness), live sample, Ctrl-C stops; DEMO_FLAGS e.g. --ports 11883,12883,13883.
demo:
	bash scripts/setup.sh --broker-only
	node dist/e2e/demo.js $(DEMO_FLAGS)

clean:
	rm -rf dist .cache

## Regenerate crds/*.yaml, the chart's CRDs and operator/CRD_REFERENCE.md from operator/src/api.
crds: build
	node dist/operator/src/api/generate-crds.js

## The container image (broker, link agent and operator in one); needs Docker.
image:
	docker build -t meridian:dev .

## Three kind clusters, the image, the chart per region, the example resources, a cross-region check; needs Docker and kind.
e2e-kind:
	bash e2e/k8s/kind-e2e.sh

## Regional-cluster benchmarks (figures into e2e/bench/CLUSTER.md).
bench-cluster: build
	SKIP_BUILD=1 bash e2e/bench/cluster.sh

## Cluster-link benchmarks (figures into e2e/bench/LINKS.md).
bench-links: build
	SKIP_BUILD=1 bash e2e/bench/links.sh

## Three regions end to end: the access-control scenario, the fault drills and the same workload over bridged
## mosquitto brokers; prints the summary table and writes it into e2e/bench/RESULTS.md (see e2e/scenario/README.md).
e2e:
	bash scripts/setup.sh --broker-only
	node dist/e2e/scenario/run.js
