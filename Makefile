.PHONY: load
# Load test: hookguard vs. the ceiling server, side by side (needs wrk; see docs/performance.md).
load:
	scripts/load.sh
