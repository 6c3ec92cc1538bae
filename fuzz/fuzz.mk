# fuzz/fuzz.mk -- the fuzz build of the extension and the fuzz target (included by the Makefile,
# after PGXS).  scripts/fuzz.sh drives all of it; scripts/test.sh runs `make fuzz-replay`.
#
# FUZZ=1: src/ is compiled with GCC's -fsanitize-coverage=trace-pc and kmeans.so is linked with
# fuzz/cov_runtime.o, which counts into the file $KMEANS_FUZZ_COV names (fuzz/cov.h).  Linked
# as an extra object, like the CUDA one, so that PGXS wants no bitcode for it; the bitcode of
# src/ is built by clang without the flag, so JIT inlining sees plain code.  Run `make clean`
# when switching FUZZ on or off.
FUZZ ?= 0
ifeq ($(FUZZ),1)
$(SRC_OBJS): CFLAGS += -fsanitize-coverage=trace-pc
SHLIB_LINK += fuzz/cov_runtime.o
$(MODULE_big)$(DLSUFFIX): fuzz/cov_runtime.o
endif

fuzz/cov_runtime.o: fuzz/cov_runtime.c fuzz/cov.h
	$(CC) -O2 -fPIC -std=gnu11 -Wall -Wextra $(if $(filter 1,$(WERROR)),-Werror) -c $< -o $@

# The fuzz target, a libpq client: fuzz_sql under libFuzzer (clang), and fuzz_replay, the same
# code with a main() that runs the files it is given once each (any C compiler, no libFuzzer).
FUZZ_CLANG ?= $(or $(shell command -v clang 2>/dev/null),$(CLANG))
FUZZ_PQ = -I$(shell $(PG_CONFIG) --includedir) -L$(shell $(PG_CONFIG) --libdir) -lpq
FUZZ_WARN = -Wall -Wextra $(if $(filter 1,$(WERROR)),-Werror)

fuzz/bin/fuzz_sql: fuzz/fuzz_sql.c fuzz/cov.h
	@mkdir -p $(dir $@)
	$(FUZZ_CLANG) -g -O1 -fsanitize=fuzzer,address $(FUZZ_WARN) -o $@ $< $(FUZZ_PQ)

fuzz/bin/fuzz_replay: fuzz/fuzz_sql.c fuzz/cov.h
	@mkdir -p $(dir $@)
	$(CC) -g -O1 -std=gnu11 -DKMEANS_FUZZ_REPLAY $(FUZZ_WARN) -o $@ $< $(FUZZ_PQ)

# The cases the fuzzer found, replayed against the server the PG* variables name (installed
# extension, superuser): each must end with the session alive, no restart and no XX000.
FUZZ_PSQL ?= $(shell $(PG_CONFIG) --bindir)/psql
.PHONY: fuzz-replay
fuzz-replay: fuzz/bin/fuzz_replay
	$(FUZZ_PSQL) -X -q -v ON_ERROR_STOP=1 -d postgres -f fuzz/setup.sql >/dev/null
	fuzz/bin/fuzz_replay test/fuzz/cases/*

EXTRA_CLEAN += fuzz/cov_runtime.o fuzz/bin
