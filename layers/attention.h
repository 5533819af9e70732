// Multi-head scaled dot-product attention and rotary position embeddings (CPU reference).
// q and out are rows x (heads * d), k and v rows x (kv_heads * d), with rows = b * s
// (batch-major) and head a in columns [a*d, (a+1)*d). Query head a reads key/value head
// a / (heads / kv_heads) (grouped-query attention; kv_heads = heads is plain multi-head).
// probs holds b x heads x s x s softmax probabilities.
#pragma once

#include <cstdint>

namespace pp::cpu {

struct AttentionShape {
  int64_t batch = 0, seq = 0, heads = 0, head_dim = 0;
  bool causal = false;
  int64_t kv_heads = 0;  // 0: heads
  int64_t hidden() const { return heads * head_dim; }
  int64_t kv() const { return kv_heads > 0 ? kv_heads : heads; }
  int64_t kv_hidden() const { return kv() * head_dim; }
  int64_t rows() const { return batch * seq; }
  // The shape of the key/value tensors (for rotating k).
  AttentionShape KvShape() const {
    AttentionShape s = *this;
    s.heads = kv();
    s.kv_heads = 0;
    return s;
  }
};

// Rotates q (rows x h) in place by the rotary angles of each row's position (row mod s):
// pairs (i, i + d/2) of every head turn by pos / 10000^(2i/d); `inverse` turns back.
template <typename T>
void Rotary(const AttentionShape& shape, bool inverse, T* x);

// out = softmax(q k^T / sqrt(d), causal mask) v; keeps probs.
template <typename T>
void AttentionForward(const AttentionShape& shape, const T* q, const T* k, const T* v, T* probs,
                      T* out);

// From dout, the kept q, k, v and probs: dq, dk, dv (overwritten; the gradients of a shared
// key/value head are summed over its query heads). work: s * s + s values.
template <typename T>
void AttentionBackward(const AttentionShape& shape, const T* q, const T* k, const T* v,
                       const T* probs, const T* dout, T* dq, T* dk, T* dv, T* work);

}  // namespace pp::cpu
