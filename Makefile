# The project's two commands (see README "Quick start"):
#   make demo  — set up, build and run a scheduler, two executors and a demo job
#   make test  — set up, build and run every test
.PHONY: demo test build release clean

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

clean:
	rm -rf build .demo
