# The project's two commands (see README "Quick start"):
#   make demo  — set up, build and run a scheduler, two executors and a demo job
#   make test  — set up, build and run every test
#   make bench — build the release preset and run the performance benchmark
#                (issue 8: table on stdout, figures in build/release/bench.json)
.PHONY: demo test build release clean bench

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh

build:
	bash scripts/install-deps.sh
	cmake --preset debug
	cmake --build --preset debug

release:
	bash scripts/install-deps.sh
	cmake --preset release
	cmake --build --preset release

bench: release
	build/release/tests/bench/perf_bench --json=build/release/bench.json $(BENCH_FLAGS)

clean:
	rm -rf build .demo
