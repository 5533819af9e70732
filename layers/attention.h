// Multi-head scaled dot-product attention and rotary position embeddings (CPU reference).
// q, k, v, out are rows x h with rows = b * s (batch-major) and head a in columns
// [a*d, (a+1)*d), d = h / heads. probs holds b x heads x s x s softmax probabilities.
#pragma once

#include <cstdint>

namespace pp::cpu {

struct AttentionShape {
  int64_t batch = 0, seq = 0, heads = 0, head_dim = 0;
  bool causal = false;
  int64_t hidden() const { return heads * head_dim; }
  int64_t rows() const { return batch * seq; }
};

// Rotates q (rows x h) in place by the rotary angles of each row's position (row mod s):
// pairs (i, i + d/2) of every head turn by pos / 10000^(2i/d); `inverse` turns back.
template <typename T>
void Rotary(const AttentionShape& shape, bool inverse, T* x);

// out = softmax(q k^T / sqrt(d), causal mask) v; keeps probs.
template <typename T>
void AttentionForward(const AttentionShape& shape, const T* q, const T* k, const T* v, T* probs,
                      T* out);

// From dout, the kept q, k, v and probs: dq, dk, dv (overwritten). work: s * s + s values.
template <typename T>
void AttentionBackward(const AttentionShape& shape, const T* q, const T* k, const T* v,
                       const T* probs, const T* dout, T* dq, T* dk, T* dv, T* work);

}  // namespace pp::cpu
