# fuzz/fuzz.mk -- the fuzz build of the extension (included by the Makefile, after PGXS).
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

EXTRA_CLEAN += fuzz/cov_runtime.o
