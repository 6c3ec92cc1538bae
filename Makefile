# kmeans -- PostgreSQL extension (PGXS).  `make && make install`; `make installcheck` runs the
# regression suite against a running server; `make check-engine` tests the compute code alone.

EXTENSION  = kmeans
EXTVERSION = 0.1.0

MODULE_big = kmeans
SRC_OBJS    = src/gucs.o src/options.o src/reader.o src/engine.o src/fit.o src/elbow.o src/models.o
KERNEL_OBJS = kernels/km_util.o kernels/km_argmin.o kernels/km_gemm.o kernels/km_quality.o \
              kernels/km_cpu.o
OBJS = $(SRC_OBJS) $(KERNEL_OBJS)

DATA_built = sql/$(EXTENSION)--$(EXTVERSION).sql
DATA = $(wildcard sql/$(EXTENSION)--*--*.sql)
EXTRA_CLEAN = test/results test/regression.diffs test/regression.out test/engine/bin

REGRESS = $(patsubst test/sql/%.sql,%,$(sort $(wildcard test/sql/*.sql)))
REGRESS_OPTS = --inputdir=test --outputdir=test --load-extension=$(EXTENSION)

# Code generation for the machine that builds; set OPTFLAGS= (empty) for portable packages.
OPTFLAGS ?= -march=native
# Set WERROR=1 to turn warnings into errors (CI does).
WERROR ?= 0

PG_CPPFLAGS = -Ikernels -Isrc
PG_CFLAGS = $(OPTFLAGS) -pthread $(if $(filter 1,$(WERROR)),-Werror)
SHLIB_LINK = -pthread -lm

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# The compute kernels are worth the extra optimisation level.
$(KERNEL_OBJS): CFLAGS += -O3

# PGXS tracks no header dependencies: a changed interface must rebuild every object using it.
$(OBJS): kernels/km_kernels.h kernels/km_quality.h
$(SRC_OBJS): src/kmeans.h

sql/$(EXTENSION)--$(EXTVERSION).sql: sql/$(EXTENSION).sql
	cp $< $@

# Engine tests: the compute code on its own, no server needed.
ENGINE_CFLAGS = -O2 $(OPTFLAGS) -std=gnu11 -Wall -Wextra $(if $(filter 1,$(WERROR)),-Werror) -Ikernels -pthread
ENGINE_TESTS = $(patsubst test/engine/%.c,test/engine/bin/%,$(wildcard test/engine/test_*.c))

test/engine/bin/%: test/engine/%.c $(KERNEL_OBJS:.o=.c) kernels/km_kernels.h kernels/km_quality.h
	@mkdir -p $(dir $@)
	$(CC) $(ENGINE_CFLAGS) -o $@ $< $(KERNEL_OBJS:.o=.c) -lm

# test_quality includes km_quality.c itself, to reach its static paths.
test/engine/bin/test_quality: test/engine/test_quality.c kernels/km_quality.c kernels/km_quality.h kernels/km_util.c
	@mkdir -p $(dir $@)
	$(CC) $(ENGINE_CFLAGS) -o $@ $< kernels/km_util.c -lm

.PHONY: check-engine
check-engine: $(ENGINE_TESTS)
	@for t in $(ENGINE_TESTS); do echo "== $$t"; $$t || exit 1; done
