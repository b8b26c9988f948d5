# eib: build, test, demo. `make deps` installs what a fresh Debian host needs.
SHELL := /bin/bash
GO ?= go
export GOFLAGS ?= -buildvcs=false

.PHONY: all build deps test vet unit e2e demo clean

all: build

build:
	$(GO) build -o eib ./cmd/eib

# Install the Debian packages listed in helpers/debian-packages.txt that are
# not installed yet (needs root; a no-op when everything is there).
deps:
	./helpers/install-deps

vet:
	$(GO) vet ./...

unit: build
	$(GO) test ./lib/... ./cmd/...

e2e: build
	$(GO) test -count=1 ./tests/...

test: deps build vet
	$(GO) test -count=1 -timeout 60m ./...

clean:
	rm -f eib
