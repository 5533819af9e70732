# pp-partition quick start: `make demo` and `make test` each install missing Debian
# packages (as root; otherwise they name them), configure, build and run. `make sanitize`
# runs the suite under AddressSanitizer and UndefinedBehaviorSanitizer (build-sanitize/);
# `make fuzz` runs each libFuzzer harness of fuzz/ for FUZZ_SECONDS (the same folder).
BUILD_DIR ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
DEBIAN_PACKAGES := cmake make g++ libcli11-dev nlohmann-json3-dev libgtest-dev libbenchmark-dev libopenblas-dev librsvg2-bin clang-14 libclang-rt-14-dev openmpi-bin libopenmpi-dev
BIN := $(BUILD_DIR)/tool/pp-partition

# The sanitizer and fuzzer build: CPU only, one process (no MPI: libmpi's own allocations
# would read as leaks), no benchmarks, one folder for both. clang compiles every library and
# test with AddressSanitizer, UndefinedBehaviorSanitizer and libFuzzer's coverage hooks
# (fuzzer-no-link: inert outside a fuzzer), so `make sanitize` runs the suite and `make fuzz`
# the harnesses of fuzz/ from the same objects. Warnings are held to -Werror by the regular
# build; this one exists to run the code. Line tables only: reports name file and line, and
# the build skips full debug information.
CLANGXX ?= clang++-14
SAN_DIR ?= build-sanitize
FUZZ_DIR ?= $(SAN_DIR)
FUZZ_SECONDS ?= 60
FUZZ_WORK ?= $(FUZZ_DIR)/work
SAN_FLAGS := -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
SAN_ENV := ASAN_OPTIONS=halt_on_error=1:detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
FUZZERS := model_fuzz profile_fuzz plan_fuzz hf_config_fuzz schedule_csv_fuzz device_file_fuzz

.PHONY: all deps configure build demo test bench sanitize fuzz clean

all: build

deps:
	@missing=""; \
	for p in $(DEBIAN_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "pp-partition: installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing >/dev/null; \
	  else \
	    echo "pp-partition needs these Debian packages:$$missing"; \
	    echo "install them with: sudo apt-get install$$missing"; exit 1; \
	  fi; \
	fi

$(BUILD_DIR)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release

configure: deps $(BUILD_DIR)/CMakeCache.txt

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

demo: build
	$(BIN) plan models/gpt2-xl.json --device h100 --stages 4 --schedule 1f1b --micro-batches 32

test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS)

bench: build
	$(BUILD_DIR)/bench/partitioner_bench

$(SAN_DIR)/CMakeCache.txt: | deps
	cmake -S . -B $(SAN_DIR) -DCMAKE_CXX_COMPILER=$(CLANGXX) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" -DCMAKE_CXX_FLAGS="$(SAN_FLAGS)" \
	  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
	  -DCMAKE_MODULE_LINKER_FLAGS="-fsanitize=address,undefined" \
	  -DPP_CUDA=OFF -DPP_MPI=OFF -DPP_BUILD_BENCH=OFF -DPP_BUILD_FUZZ=ON -DPP_WERROR=OFF

sanitize: $(SAN_DIR)/CMakeCache.txt
	cmake --build $(SAN_DIR) -j $(JOBS)
	$(SAN_ENV) ctest --test-dir $(SAN_DIR) --output-on-failure -j $(JOBS)

# Seeds: models/, the HF configs of fuzz/seeds/, and a profile, plans (one with a layout and
# every software setting off its default, one recomputing modules, one of a model with
# multi-token prediction) and schedule CSVs that the regular build's tool
# writes. Corpora grow in $(FUZZ_WORK)/<harness>/; a crashing input is left in
# $(FUZZ_WORK)/crashes/ and fails the target.
fuzz: build $(SAN_DIR)/CMakeCache.txt
	cmake --build $(FUZZ_DIR) -j $(JOBS) --target $(FUZZERS) device_file_seeds
	rm -rf $(FUZZ_WORK)/seeds; mkdir -p $(FUZZ_WORK)/seeds $(FUZZ_WORK)/crashes
	$(BIN) profile models/gpt2-small.json --device h100 -o $(FUZZ_WORK)/seeds/profile.json >/dev/null
	$(BIN) plan models/gpt2-small.json --device h100 --stages 4 --schedule 1f1b \
	  --micro-batches 8 -o $(FUZZ_WORK)/seeds/plan.json >/dev/null
	$(BIN) plan models/gpt2-small.json --device h100 --stages 2 --schedule zbv \
	  --micro-batches 4 -o $(FUZZ_WORK)/seeds/plan-zbv.json >/dev/null
	$(BIN) plan models/gpt2-small.json --device h100 --stages 2 --micro-batches 4 \
	  --recompute all --recompute-unit selective --recompute-modules core_attn,mlp \
	  -o $(FUZZ_WORK)/seeds/plan-modules.json >/dev/null
	$(BIN) import fuzz/seeds/hf_config/deepseek_v3.json -o $(FUZZ_WORK)/mtp-model.json >/dev/null
	$(BIN) plan $(FUZZ_WORK)/mtp-model.json --device h100 --stages 2 --micro-batches 4 \
	  -o $(FUZZ_WORK)/seeds/plan-mtp.json >/dev/null
	$(BIN) plan models/gpt2-small.json --device h100 --stages 2 --tp 2 --gpus-total 8 \
	  --global-batch 32 --micro-batch-size 2 --sequence-parallel off --attention unfused \
	  --overlap-grad-reduce off --wgrad-accumulation separate --pipeline-scatter-gather on \
	  --overlap-tp-dgrad on --cross-entropy unfused --fp32-grad-copy on --ddp-bucket-copy on \
	  --step-budget 0.2 -o $(FUZZ_WORK)/seeds/plan-layout.json >/dev/null
	$(BIN) simulate $(FUZZ_WORK)/seeds/plan.json \
	  --dump-schedule-csv $(FUZZ_WORK)/seeds/schedule.csv >/dev/null
	$(BIN) simulate $(FUZZ_WORK)/seeds/plan-zbv.json \
	  --dump-schedule-csv $(FUZZ_WORK)/seeds/schedule-zbv.csv >/dev/null
	@for f in $(FUZZERS); do \
	  mkdir -p $(FUZZ_WORK)/$$f; \
	  case $$f in \
	    model_fuzz) cp models/*.json $(FUZZ_WORK)/$$f/ ;; \
	    profile_fuzz) cp $(FUZZ_WORK)/seeds/profile.json $(FUZZ_WORK)/$$f/ ;; \
	    plan_fuzz) cp $(FUZZ_WORK)/seeds/plan*.json $(FUZZ_WORK)/$$f/ ;; \
	    hf_config_fuzz) cp fuzz/seeds/hf_config/*.json $(FUZZ_WORK)/$$f/ ;; \
	    schedule_csv_fuzz) cp $(FUZZ_WORK)/seeds/schedule*.csv $(FUZZ_WORK)/$$f/ ;; \
	    device_file_fuzz) $(SAN_ENV) $(FUZZ_DIR)/fuzz/device_file_seeds $(FUZZ_WORK)/$$f ;; \
	  esac; \
	  echo "fuzz: $$f for $(FUZZ_SECONDS) s"; \
	  $(SAN_ENV) $(FUZZ_DIR)/fuzz/$$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -artifact_prefix=$(FUZZ_WORK)/crashes/$$f- $(FUZZ_WORK)/$$f \
	    > $(FUZZ_WORK)/$$f.log 2>&1 || { tail -n 60 $(FUZZ_WORK)/$$f.log; \
	    echo "fuzz: $$f failed; input left in $(FUZZ_WORK)/crashes/"; exit 1; }; \
	  grep -E "^Done|stat::number_of_executed_units" $(FUZZ_WORK)/$$f.log; \
	done

clean:
	rm -rf $(BUILD_DIR) $(SAN_DIR)
