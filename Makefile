# kmeans -- PostgreSQL extension (PGXS).  `make && make install`; `make installcheck` runs the
# regression suite against a running server; `make check-engine` tests the compute code alone.

EXTENSION  = kmeans
EXTVERSION = 0.9.0

MODULE_big = kmeans
SRC_OBJS    = src/gucs.o src/options.o src/vector.o src/pgvector.o src/metric.o src/source.o src/budget.o src/reader.o src/session.o src/modelset.o src/fetch.o src/seed.o src/seed_parallel.o src/lloyd.o src/repair.o src/median.o src/minibatch.o src/progress.o src/runs.o src/match.o src/results.o src/steplog.o src/fit.o src/elbow.o src/models.o src/step.o src/sample.o src/strategy.o src/groupfit.o src/aggregate.o src/window.o src/dtw.o src/softdtw.o
KERNEL_C    = kernels/km_util.c kernels/km_argmin.c kernels/km_iou.c kernels/km_gemm.c kernels/km_screen.c \
              kernels/km_quality.c kernels/km_state.c kernels/km_bounds.c kernels/km_cpu.c kernels/km_exact.c kernels/km_rowwise.c \
              kernels/km_dtw.c kernels/km_crew.c kernels/km_softdtw.c kernels/km_lbfgs.c

# The CUDA backend is built when nvcc is found (on PATH or in /usr/local/cuda); USE_CUDA=0
# builds the CPU-only library, whose GPU entry points (km_nocuda.c) say so.
NVCC ?= $(or $(shell command -v nvcc 2>/dev/null),$(wildcard /usr/local/cuda/bin/nvcc))
USE_CUDA ?= $(if $(NVCC),1,0)
ifneq ($(filter 1 emu,$(USE_CUDA)),)
KERNEL_OBJS = $(KERNEL_C:.c=.o)
else
KERNEL_OBJS = $(KERNEL_C:.c=.o) kernels/km_nocuda.o
endif
OBJS = $(SRC_OBJS) $(KERNEL_OBJS)

DATA_built = sql/$(EXTENSION)--$(EXTVERSION).sql
DATA = $(wildcard sql/$(EXTENSION)--*--*.sql) sql/$(EXTENSION)--0.1.0.sql
EXTRA_CLEAN = test/results test/regression.diffs test/regression.out test/engine/bin kernels/km_cuda.o kernels/km_cuda_emu.o \
              kernels/km_nocuda.o

REGRESS = $(patsubst test/sql/%.sql,%,$(sort $(wildcard test/sql/*.sql)))
REGRESS_OPTS = --inputdir=test --outputdir=test --load-extension=$(EXTENSION)
# The device the regression suite runs on: `make installcheck REGRESS_DEVICE=gpu` on a GPU
# machine.  device.sql sets its own and has an expected output per build and machine.
REGRESS_DEVICE ?= cpu
installcheck: export PGOPTIONS = -c kmeans.device=$(REGRESS_DEVICE)

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
$(OBJS): kernels/km_kernels.h kernels/km_quality.h kernels/km_simd.h kernels/km_state.h kernels/km_exact.h kernels/km_bounds.h kernels/km_dtw.h \
         kernels/km_crew.h kernels/km_softdtw.h kernels/km_lbfgs.h
$(SRC_OBJS): src/kmeans.h src/lloyd.h src/dtw.h

sql/$(EXTENSION)--$(EXTVERSION).sql: sql/$(EXTENSION).sql
	cp $< $@

# The GPU backend is one translation unit, km_cuda.cu, that includes its pieces (km_cuda_*.cuh):
# every rule that compiles it depends on all of them.
CUDA_SRC = kernels/km_cuda.cu $(sort $(wildcard kernels/km_cuda_*.cuh))

# GPU generations to compile for (SASS each, plus PTX of the newest for later cards); those
# this nvcc no longer knows are left out with a warning.
CUDA_ARCH ?= 70 80 86 89 90
ifeq ($(USE_CUDA),1)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
CUDA_LIBDIR ?= $(CUDA_HOME)/lib64
NVCC_ARCHS := $(patsubst compute_%,%,$(shell $(NVCC) --list-gpu-arch 2>/dev/null))
CUDA_ARCH_OK := $(if $(NVCC_ARCHS),$(filter $(NVCC_ARCHS),$(CUDA_ARCH)),$(CUDA_ARCH))
ifneq ($(filter-out $(CUDA_ARCH_OK),$(CUDA_ARCH)),)
$(warning nvcc cannot build for sm_$(filter-out $(CUDA_ARCH_OK),$(CUDA_ARCH)); left out)
endif
ifeq ($(CUDA_ARCH_OK),)
$(error none of CUDA_ARCH=$(CUDA_ARCH) is supported by $(NVCC))
endif
CUDA_PTX := $(lastword $(CUDA_ARCH_OK))
GENCODE = $(foreach a,$(CUDA_ARCH_OK),-gencode=arch=compute_$(a),code=sm_$(a)) \
          -gencode=arch=compute_$(CUDA_PTX),code=compute_$(CUDA_PTX)
# --fmad=false: multiply-adds only where the code asks for them, as in the CPU twins
NVCCFLAGS = -O3 -std=c++17 --fmad=false $(GENCODE) -Ikernels \
            -Xcompiler -fPIC,-Wall,-Wextra$(if $(filter 1,$(WERROR)),$(comma)-Werror) \
            $(if $(filter 1,$(WERROR)),-Werror all-warnings)
comma := ,

# Linked as an extra object, not one of OBJS: PGXS would want LLVM bitcode for it.  The CUDA
# runtime is static (the server needs only the driver); cuBLAS is opened when first needed.
SHLIB_LINK += kernels/km_cuda.o -L$(CUDA_LIBDIR) -lcudart_static -ldl -lrt -lstdc++
$(MODULE_big)$(DLSUFFIX): kernels/km_cuda.o

kernels/km_cuda.o: $(CUDA_SRC) kernels/km_kernels.h kernels/km_quality.h kernels/km_state.h kernels/km_dtw.h
	$(NVCC) $(NVCCFLAGS) -c $< -o $@
endif

# The emulator builds below compile km_cuda.cu with -ffp-contract=off: no multiply-add is fused
# unless the code asks for one, as nvcc's --fmad=false does on the device, so that the device's
# float64 folds and the host's agree bit for bit there too.
#
# USE_CUDA=emu: the GPU backend compiled for the CPU emulator (km_cuda_emu.h), so that the whole
# SQL surface can run on "the GPU" where there is none (make installcheck REGRESS_DEVICE=gpu).
# Slow, and for testing only; run `make clean` when switching between USE_CUDA modes.
# Its own object name, so that a later plain build cannot link the emulator by mistake.
ifeq ($(USE_CUDA),emu)
SHLIB_LINK += kernels/km_cuda_emu.o -lstdc++
$(MODULE_big)$(DLSUFFIX): kernels/km_cuda_emu.o

kernels/km_cuda_emu.o: $(CUDA_SRC) kernels/km_cuda_emu.h kernels/km_kernels.h kernels/km_quality.h kernels/km_state.h kernels/km_dtw.h
	$(CXX) -O2 $(OPTFLAGS) -std=c++17 -ffp-contract=off -fPIC -Wall -Wextra $(if $(filter 1,$(WERROR)),-Werror) \
		-DKM_CUDA_EMU -Ikernels -x c++ -c $< -o $@
endif

# Engine tests: the compute code on its own, no server needed.
ENGINE_CFLAGS = -O2 $(OPTFLAGS) -std=gnu11 -Wall -Wextra $(if $(filter 1,$(WERROR)),-Werror) -Ikernels -pthread
# The emulated GPU's test first: the longest, so that `make -j2 check-engine` ends its two jobs together.
ENGINE_TESTS = test/engine/bin/test_cuda_emu \
               $(patsubst test/engine/%.c,test/engine/bin/%,$(filter-out test/engine/test_cuda.c,$(wildcard test/engine/test_*.c))) \
               $(if $(filter 1,$(USE_CUDA)),test/engine/bin/test_cuda)

# Their builds (test/engine/bin, and the sanitizer's and valgrind's) compile the kernels once
# into objects that every test links: test/engine/sanitize.mk, ENGINE_BUILD.
CXX ?= g++

# The same test on a real GPU, where nvcc built the backend; it skips without a usable device.
test/engine/bin/test_cuda: test/engine/test_cuda.c test/engine/test_util.h test/engine/test_backend.h kernels/km_cuda.o $(KERNEL_C) kernels/km_kernels.h kernels/km_quality.h kernels/km_dtw.h
	@mkdir -p $(dir $@)
	$(CC) $(ENGINE_CFLAGS) -o $@ $< kernels/km_cuda.o $(KERNEL_C) -L$(CUDA_LIBDIR) -lcudart_static -ldl -lrt -lstdc++ -lm

# The kernels' own speed on one thread (a table, not a test): make bench-engine
test/engine/bin/bench_gemm: test/engine/bench_gemm.c test/engine/test_util.h $(KERNEL_C) kernels/km_nocuda.c kernels/km_kernels.h kernels/km_simd.h
	@mkdir -p $(dir $@)
	$(CC) $(ENGINE_CFLAGS) -O3 -o $@ $< $(KERNEL_C) kernels/km_nocuda.c -lm

.PHONY: bench-engine
bench-engine: test/engine/bin/bench_gemm
	test/engine/bin/bench_gemm

# The engine tests under ASan and UBSan, and under valgrind: check-engine-sanitize, -valgrind
include test/engine/sanitize.mk

# The fuzz build (FUZZ=1) and the fuzz target: scripts/fuzz.sh.
include fuzz/fuzz.mk
