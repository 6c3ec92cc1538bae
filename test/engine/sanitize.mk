# test/engine/sanitize.mk -- the builds of the engine tests: native (make check-engine), under
# AddressSanitizer and UndefinedBehaviorSanitizer (make check-engine-sanitize) and under
# valgrind's memcheck (make check-engine-valgrind).
#
# Included by the Makefile after the engine tests' variables.  Each build has a folder of its
# own, so that none clobbers another; each target fails at the first failure or report.  Every
# test is a job of its own, printed whole when it ends: `make -j2 check-engine` (and -sanitize,
# -valgrind) runs two at a time, as scripts/test.sh does.

SAN_DIR = test/engine/bin-san
VG_DIR = test/engine/bin-vg
EXTRA_CLEAN += $(SAN_DIR) $(VG_DIR)

# Every report is fatal (-fno-sanitize-recover), with the frames to read it by.
SAN_FLAGS ?= -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g
SAN_CFLAGS = $(ENGINE_CFLAGS) $(SAN_FLAGS)
# Beyond ASan's defaults: uses of a stack frame after it returned, which works in the
# emulator's coroutines too because km_cuda_emu.h announces their switches; and a stack trace
# with each UBSan report.  Options already in the environment come last, so they win.
SAN_ENV = ASAN_OPTIONS=detect_stack_use_after_return=1:$$ASAN_OPTIONS \
          UBSAN_OPTIONS=print_stacktrace=1:$$UBSAN_OPTIONS

# valgrind knows no AVX-512, which -march=native emits where the CPU has it, so the valgrind
# build is for the architecture's baseline (set VG_OPTFLAGS to choose): it takes the portable
# paths of the kernels, the sanitizer build the native ones.
VG_OPTFLAGS ?=
VG_CFLAGS = $(filter-out $(OPTFLAGS),$(ENGINE_CFLAGS)) $(VG_OPTFLAGS) -g
VALGRIND ?= valgrind
# --track-origins=yes tells where an uninitialised value came from, at twice the time.
VALGRIND_FLAGS ?= -q --error-exitcode=1 --leak-check=full

ENGINE_HEADERS = kernels/km_kernels.h kernels/km_quality.h kernels/km_simd.h kernels/km_exact.h \
                 kernels/km_state.h kernels/km_bounds.h kernels/km_dtw.h \
                 kernels/km_crew.h kernels/km_softdtw.h kernels/km_lbfgs.h

# The rules of one build: kernel objects compiled once, then the tests linked against them as
# in the Makefile's own rules (test_quality includes km_quality.c; test_cuda_emu is km_cuda.cu
# compiled as C++ for the emulator).  $(1) is the folder, $(2) the C flags.
define ENGINE_BUILD
$(1)/obj/%.o: kernels/%.c $(ENGINE_HEADERS)
	@mkdir -p $$(dir $$@)
	$$(CC) $(2) -c $$< -o $$@

$(1)/obj/km_cuda_emu.o: $(CUDA_SRC) kernels/km_cuda_emu.h $(ENGINE_HEADERS)
	@mkdir -p $$(dir $$@)
	$$(CXX) $(filter-out -std=gnu11,$(2)) -std=c++17 -ffp-contract=off -DKM_CUDA_EMU -x c++ -c $$< -o $$@

$(1)/test_%: test/engine/test_%.c test/engine/test_util.h test/engine/test_backend.h $(patsubst kernels/%.c,$(1)/obj/%.o,$(KERNEL_C) kernels/km_nocuda.c)
	$$(CC) $(2) -o $$@ $$(filter %.c %.o,$$^) -lm

$(1)/test_quality: test/engine/test_quality.c test/engine/test_util.h kernels/km_quality.c kernels/km_quality.h $(1)/obj/km_util.o
	$$(CC) $(2) -o $$@ $$< $(1)/obj/km_util.o -lm

$(1)/obj/test_cuda_emu.o: test/engine/test_cuda.c test/engine/test_util.h test/engine/test_backend.h $(ENGINE_HEADERS)
	@mkdir -p $$(dir $$@)
	$$(CC) $(2) -DKM_CUDA_EMU -c $$< -o $$@

# linked by the C++ driver, which brings the sanitizers' C++ runtime (clang's needs it)
$(1)/test_cuda_emu: $(1)/obj/test_cuda_emu.o $(1)/obj/km_cuda_emu.o $(patsubst kernels/%.c,$(1)/obj/%.o,$(KERNEL_C))
	$$(CXX) $(filter-out -std=gnu11,$(2)) -o $$@ $$^ -lm
endef

# test/engine/bin: what the Makefile's ENGINE_TESTS name (test_cuda, the real GPU's, has a rule
# of its own there)
$(eval $(call ENGINE_BUILD,test/engine/bin,$(ENGINE_CFLAGS)))
$(eval $(call ENGINE_BUILD,$(SAN_DIR),$(SAN_CFLAGS)))
$(eval $(call ENGINE_BUILD,$(VG_DIR),$(VG_CFLAGS)))

# Every engine test but bin/test_cuda, the real GPU's: its kernels are nvcc's, which no
# sanitizer instruments, and the driver is not ASan's to check; the emulator runs the same
# source instrumented.  The two slowest first, so that parallel jobs end close together.
SAN_FIRST = $(SAN_DIR)/test_screen $(SAN_DIR)/test_cuda_emu
SAN_TESTS = $(SAN_FIRST) $(filter-out $(SAN_FIRST),$(patsubst test/engine/bin/%,$(SAN_DIR)/%, \
            $(filter-out test/engine/bin/test_cuda,$(ENGINE_TESTS))))

# Under valgrind, 10 to 150 times slower here: the CPU backend whole (test_kernels) and the
# quick cases (KM_TEST_QUICK) of the GPU backend (test_cuda.c) and of the pruning bounds
# (test_bounds.c, which in this portable build also meets the kernels without FMA), DTW
# (test_dtw.c, under 1 minute: the only run of km_dtw.c's code for CPUs without AVX-512) and
# soft-DTW (test_softdtw.c, about 10 s: the same for km_softdtw.c's one-row path), and the
# elbow's passes (test_elbow.c, about a minute: the portable paths of km_cpu.c's narrow
# accumulation and k-means++ lanes, against plain loops).  The
# others would take minutes each (test_quality about four), and the sanitizer run reads them
# all for memory errors; test_screen would skip anyway, the baseline build having no
# AVX512-BF16.
VG_TESTS = $(VG_DIR)/test_cuda_emu $(VG_DIR)/test_kernels $(VG_DIR)/test_exact $(VG_DIR)/test_bounds \
           $(VG_DIR)/test_dtw $(VG_DIR)/test_softdtw $(VG_DIR)/test_elbow
$(VG_DIR)/test_cuda_emu.run $(VG_DIR)/test_bounds.run: VG_ENV = KM_TEST_QUICK=1

$(ENGINE_TESTS:%=%.run): %.run: %
	@$< > $<.log 2>&1; status=$$?; echo "== $<"; cat $<.log; exit $$status

# The emulated GPU's test takes every path in its quick cases (KM_TEST_QUICK), which the
# sanitizers check in two minutes less; the native build runs all its cases.
$(SAN_DIR)/test_cuda_emu.run: SAN_QUICK = KM_TEST_QUICK=1

$(SAN_TESTS:%=%.run): %.run: %
	@$(SAN_ENV) $(SAN_QUICK) $< > $<.log 2>&1; status=$$?; \
		echo "== $< (ASan, UBSan$(if $(SAN_QUICK),; $(SAN_QUICK)))"; cat $<.log; exit $$status

$(VG_TESTS:%=%.run): %.run: %
	@$(VG_ENV) $(VALGRIND) $(VALGRIND_FLAGS) $< > $<.log 2>&1; status=$$?; \
		echo "== $< (valgrind$(if $(VG_ENV),; $(VG_ENV)))"; cat $<.log; exit $$status

.PHONY: check-engine check-engine-sanitize check-engine-valgrind $(ENGINE_TESTS:%=%.run) \
        $(SAN_TESTS:%=%.run) $(VG_TESTS:%=%.run)
check-engine: $(ENGINE_TESTS:%=%.run)
check-engine-sanitize: $(SAN_TESTS:%=%.run)
check-engine-valgrind: $(VG_TESTS:%=%.run)
