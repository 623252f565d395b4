# The project's two commands (see README "Quick start"):
#   make demo  — set up, build and run a scheduler, two executors and a demo job
#   make test  — set up, build and run every test
#   make bench — build the release preset and run the performance benchmark
#                (issue 8: table on stdout, figures in build/release/bench.json)
#   make soak  — the soak benchmark (issue 19): RSS, database size and read
#                latencies while jobs retire; restart with 100,000 finished jobs
.PHONY: demo test build release clean bench soak

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

soak: release
	build/release/tests/bench/soak_bench $(SOAK_FLAGS)

clean:
	rm -rf build .demo
