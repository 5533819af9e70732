// The buffer layout the two transformer block implementations share (the CPU reference in
// transformer_block.cc and the CUDA one in transformer_block_cuda.cu): offsets of each
// parameter, kept activation and pending gradient in the layer's params, saved and pending
// buffers, so that both read and write the same elements. Each keeps its own workspace.
#pragma once

#include <cstdint>

namespace pp {

struct BlockShape {
  int64_t rows = 0;                  // batch x seq
  int64_t hidden = 0, ffn = 0;       // h, f
  int64_t batch = 0, heads = 0, seq = 0;
  bool rms = false, bias = false, swiglu = false;
  int64_t kv_heads = 0, head_dim = 0;  // key/value heads and head size
  bool qkv_bias = false;               // biases on q, k and v
  int64_t q() const { return heads * head_dim; }       // width of q (and of proj's input)
  int64_t kv() const { return kv_heads * head_dim; }   // width of k and of v
  int64_t qkv() const { return q() + 2 * kv(); }
};

struct BlockLayout {
  static constexpr int64_t kNone = -1;  // an absent buffer (no bias, no mean for RMS norm, ...)
  struct Params {
    int64_t g1, b1, wqkv, bqkv, wo, bo, g2, b2, w1, wu, b1f, buf, w2, b2f;
  } p{};
  struct Saved {
    int64_t x, ln1, mean1, rstd1, q, k, v, probs, attn, h1, ln2, mean2, rstd2, m1, m2, m3;
  } s{};
  struct Pending {
    int64_t dy, ln1, qkv, h1, ln2, m1, m2;
  } d{};
  int64_t params_size = 0, saved_size = 0, pending_size = 0;
};

inline BlockLayout LayOutBlock(const BlockShape& b) {
  const int64_t n = b.rows, h = b.hidden, f = b.ffn;
  const int64_t qw = b.q(), kvw = b.kv(), qkvw = b.qkv();
  BlockLayout l;
  int64_t at = 0;
  auto take = [&at](int64_t count) {
    const int64_t o = at;
    at += count;
    return o;
  };
  auto maybe = [&](bool present, int64_t count) {
    return present ? take(count) : BlockLayout::kNone;
  };
  l.p.g1 = take(h);
  l.p.b1 = maybe(!b.rms, h);
  l.p.wqkv = take(h * qkvw);
  l.p.bqkv = maybe(b.qkv_bias, qkvw);
  l.p.wo = take(qw * h);
  l.p.bo = maybe(b.bias, h);
  l.p.g2 = take(h);
  l.p.b2 = maybe(!b.rms, h);
  l.p.w1 = take(h * f);
  l.p.wu = maybe(b.swiglu, h * f);
  l.p.b1f = maybe(b.bias, f);
  l.p.buf = maybe(b.swiglu && b.bias, f);
  l.p.w2 = take(f * h);
  l.p.b2f = maybe(b.bias, h);
  l.params_size = at;

  at = 0;
  l.s.x = take(n * h);
  l.s.ln1 = take(n * h);
  l.s.mean1 = maybe(!b.rms, n);
  l.s.rstd1 = take(n);
  l.s.q = take(n * qw);
  l.s.k = take(n * kvw);
  l.s.v = take(n * kvw);
  l.s.probs = take(b.batch * b.heads * b.seq * b.seq);
  l.s.attn = take(n * qw);
  l.s.h1 = take(n * h);
  l.s.ln2 = take(n * h);
  l.s.mean2 = maybe(!b.rms, n);
  l.s.rstd2 = take(n);
  l.s.m1 = take(n * f);
  l.s.m2 = take(n * f);
  l.s.m3 = maybe(b.swiglu, n * f);
  l.saved_size = at;

  at = 0;
  l.d.dy = take(n * h);
  l.d.ln1 = take(n * h);
  l.d.qkv = take(n * qkvw);
  l.d.h1 = take(n * h);
  l.d.ln2 = take(n * h);
  l.d.m1 = take(n * f);
  l.d.m2 = maybe(b.swiglu, n * f);
  l.pending_size = at;
  return l;
}

}  // namespace pp
