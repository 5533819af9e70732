#include "executor/synthetic_data.h"

#include <algorithm>

namespace pp {

SyntheticData::SyntheticData(const ModelInput& input, int64_t vocab, int64_t target_width,
                             uint64_t seed)
    : input_(input), vocab_(vocab), target_width_(target_width), seed_(seed) {}

namespace {

// SplitMix64's output function of its state z + k x the golden-ratio increment.
uint64_t Mix(uint64_t z, uint64_t k) {
  z += k * 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

uint64_t SyntheticData::SampleSeed(int step, int micro_batch, int64_t sample) const {
  return Mix(seed_ ^ (static_cast<uint64_t>(step) << 40) ^
                 (static_cast<uint64_t>(micro_batch) << 20) ^ static_cast<uint64_t>(sample),
             1);
}

void SyntheticData::Tokens(int step, int micro_batch, int32_t* tokens, int32_t* labels) const {
  const int64_t seq = input_.seq_len > 0 ? input_.seq_len : 1;
  const uint64_t a = 5, c = 3;
  for (int64_t b = 0; b < input_.micro_batch_size; ++b) {
    uint64_t t = SampleSeed(step, micro_batch, b) % static_cast<uint64_t>(vocab_);
    for (int64_t s = 0; s < seq; ++s) {
      const uint64_t next = (a * t + c) % static_cast<uint64_t>(vocab_);
      tokens[b * seq + s] = static_cast<int32_t>(t);
      labels[b * seq + s] = static_cast<int32_t>(next);
      t = next;
    }
  }
}

void SyntheticData::Features(int step, int micro_batch, float* x, float* targets) const {
  // SplitMix64 of (sample seed + pair index) gives two values, each from 24 of its bits: a
  // uniform u in [0, 1) scaled to (u - 1/2) sqrt(12), mean 0 and variance 1. A few ns a value,
  // where a normal draw from a freshly seeded engine per sample took a third of a small
  // forward's time.
  const int64_t f = input_.features;
  constexpr float kScale = 3.4641016f / 16777216.0f;  // sqrt(12) / 2^24
  constexpr float kHalf = 8388608.0f;                  // 2^23
  for (int64_t r = 0; r < input_.micro_batch_size; ++r) {
    const uint64_t base = SampleSeed(step, micro_batch, r);
    float* row = x + r * f;
    for (int64_t i = 0; i < f; i += 2) {
      const uint64_t z = Mix(base, static_cast<uint64_t>(i / 2 + 1));
      row[i] = (static_cast<float>(z >> 40) - kHalf) * kScale;
      if (i + 1 < f) row[i + 1] = (static_cast<float>((z >> 8) & 0xFFFFFF) - kHalf) * kScale;
    }
    float* target = targets + r * target_width_;
    for (int64_t o = 0; o < target_width_; o += f) {  // column o reads x[o mod f]
      const int64_t n = std::min(f, target_width_ - o);
      for (int64_t i = 0; i < n; ++i) target[o + i] = 0.5f * row[i];
    }
  }
}

}  // namespace pp
