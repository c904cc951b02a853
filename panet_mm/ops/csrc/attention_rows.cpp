// Fused per-row steps of the chunked pyramid attention kernel on CPU (float32).
//
// Why this exists: after its matrix products, every chunk of the kernel makes several passes over its
// (images, rows, L') score block with torch's elementwise operations: the last stage of the shifted sums,
// the scaling by the key norms, the softmax and the denormal flush. The block does not fit the caches, so
// each pass reads and writes it from L3 or memory (about 0.2 ns per element and pass on 2 cores, against
// 0.05 ns for an add on an L2-sized block). Here the same steps run one query row at a time in two sweeps:
// the first, in blocks of the row that stay in L1, forms the shifted sums and the logits and takes exp
// against the running maximum of the row; the second rescales each block to the final maximum and sum.
// The shifted sums are formed per segment of keys on which the same terms apply, all of a segment's terms
// in one pass (and in the forward with the logits and their maximum in that pass), since with the row in
// cache the step's time is its arithmetic and its loads and stores, not memory traffic.
//
// The results equal the eager operations' within float32 rounding: the shifted sums are added in the same
// order (bit-identical raw scores), the scaling is a multiplication then an addition (no fused
// multiply-add: compiled with -ffp-contract=off), exp is a Cephes-style polynomial (about 1 ulp; its
// steps written as explicit fused multiply-adds, which is what bounds the first sweep: 0.42 -> 0.33 ns per
// element on 2 cores with AVX-512) that returns 0 below exp(-87), where float32's normal numbers end, and probabilities below the smallest normal
// number are written as 0 (torch's softmax would write denormals there, which slow every later operation
// that reads them: panet_mm/ops/chunks.py, flush_denormals).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

namespace {

// Keys per block of a row's first sweep: 8 KiB of float32, so that its passes stay in L1.
constexpr int64_t kBlock = 2048;

inline float bits_to_float(int32_t i) {
  float f;
  std::memcpy(&f, &i, sizeof(f));
  return f;
}

inline int32_t float_to_bits(float f) {
  int32_t i;
  std::memcpy(&i, &f, sizeof(i));
  return i;
}

// a * b + c, fused where the instruction set has it (x86-64-v3 and v4 builds); std::fma without it would be a
// slow library call.
inline float fmadd(float a, float b, float c) {
#ifdef __FMA__
  return std::fma(a, b, c);
#else
  return a * b + c;
#endif
}

// row[k] <- exp(row[k] - shift), 0 where the argument is below -87; returns the sum.
float exp_shifted(float* row, int64_t n, float shift) {
  float sum = 0.f;
#pragma omp simd reduction(+ : sum)
  for (int64_t k = 0; k < n; ++k) {
    const float t = row[k] - shift;
    const float x = t < -87.f ? -87.f : t;
    // x = n*ln2 + r, |r| <= ln2/2: n by rounding with the 1.5*2^23 constant, ln2 in two parts
    const float rounded = fmadd(x, 1.44269504088896341f, 12582912.f);
    const float fn = rounded - 12582912.f;
    const int32_t ni = float_to_bits(rounded) - 0x4B400000;
    const float r = fmadd(fn, 2.12194440e-4f, fmadd(fn, -0.693359375f, x));
    float p = 1.9875691500e-4f;
    p = fmadd(p, r, 1.3981999507e-3f);
    p = fmadd(p, r, 8.3334519073e-3f);
    p = fmadd(p, r, 4.1665795894e-2f);
    p = fmadd(p, r, 1.6666665459e-1f);
    p = fmadd(p, r, 5.0000001201e-1f);
    const float y = fmadd(p, r * r, r) + 1.f;
    const float e = y * bits_to_float((ni + 127) << 23);
    const float out = t < -87.f ? 0.f : e;
    row[k] = out;
    sum += out;
  }
  return sum;
}

// The source rows and key ranges a chunk of m rows reads: every one inside src.
void check_shifts(const char* op, const at::Tensor& src, int64_t lo, int64_t m, int64_t n, at::IntArrayRef row_offsets,
                  at::IntArrayRef range_counts, at::IntArrayRef starts, at::IntArrayRef ends,
                  at::IntArrayRef key_offsets) {
  TORCH_CHECK(src.device().is_cpu() && (src.scalar_type() == at::kFloat || src.scalar_type() == at::kBFloat16) &&
                  src.dim() == 3 && src.stride(2) == 1 && src.size(2) == n,
              op, ": src must be a CPU float32 or bfloat16 (B, rows, L') tensor with contiguous rows");
  const int64_t shifts = static_cast<int64_t>(row_offsets.size());
  TORCH_CHECK(static_cast<int64_t>(range_counts.size()) == shifts, op, ": one range count per shift");
  TORCH_CHECK(starts.size() == ends.size() && starts.size() == key_offsets.size(), op,
              ": starts, ends and key offsets must have one entry per range");
  int64_t total = 0;
  for (int64_t j = 0; j < shifts; ++j) total += range_counts[j];
  TORCH_CHECK(total == static_cast<int64_t>(starts.size()), op, ": range counts do not add up");
  TORCH_CHECK(lo >= 0 && lo + m <= src.size(1), op, ": the chunk's rows are outside src");
  for (int64_t j = 0, r = 0; j < shifts; ++j) {
    const int64_t row = lo + row_offsets[j];
    TORCH_CHECK(row >= 0 && row + m <= src.size(1), op, ": a shifted row is outside src");
    for (int64_t c = 0; c < range_counts[j]; ++c, ++r) {
      TORCH_CHECK(starts[r] >= 0 && starts[r] <= ends[r] && ends[r] <= n && starts[r] + key_offsets[r] >= 0 &&
                      ends[r] + key_offsets[r] <= n,
                  op, ": a key range is outside the rows");
    }
  }
}

void check_rows(const char* op, const char* name, const at::Tensor& t, int64_t batch, int64_t m, int64_t n) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat && t.dim() == 3 && t.size(0) == batch &&
                  t.size(1) == m && t.size(2) == n && t.stride(2) == 1,
              op, ": ", name, " must be a CPU float32 (B, m, L') tensor with contiguous rows");
}

inline float to_float(float x) { return x; }
inline float to_float(uint16_t bf16) {                  // bfloat16 bits: the upper half of a float32's
  return bits_to_float(static_cast<int32_t>(static_cast<uint32_t>(bf16) << 16));
}

// The source rows of the shifted sums: float32, or bfloat16 (the products' stream under autocast, summed here
// in float32; torch's operations round the first sum to bfloat16).
struct Source {
  const float* f32 = nullptr;
  const uint16_t* bf16 = nullptr;
  int64_t s0 = 0, s1 = 0;
  explicit Source(const at::Tensor& t) : s0(t.stride(0)), s1(t.stride(1)) {
    if (t.scalar_type() == at::kFloat) {
      f32 = t.data_ptr<float>();
    } else {
      bf16 = reinterpret_cast<const uint16_t*>(t.data_ptr<at::BFloat16>());
    }
  }
};

// Shifted sums of one block [k0, k1) of an output row: o[k] = centre[k] + the shifted rows' terms, added in
// the order of the eager stencil (chunks.stencil). The row is cut once into segments on which the same terms
// apply (a shift's ranges never overlap), so that each segment is one pass adding all its terms at once
// instead of one pass per shift.
struct Shifts {
  struct Segment {
    int64_t u, v;          // keys [u, v)
    size_t first, count;   // its terms: (row offset, key offset) pairs terms[first .. first+count)
  };
  std::vector<Segment> segments;
  std::vector<std::pair<int64_t, int64_t>> terms;

  Shifts(at::IntArrayRef row_offsets, at::IntArrayRef range_counts, at::IntArrayRef starts, at::IntArrayRef ends,
         at::IntArrayRef key_offsets, int64_t n) {
    std::vector<int64_t> cuts{0, n};
    for (size_t r = 0; r < starts.size(); ++r) {
      cuts.push_back(std::min(std::max<int64_t>(starts[r], 0), n));
      cuts.push_back(std::min(std::max<int64_t>(ends[r], 0), n));
    }
    std::sort(cuts.begin(), cuts.end());
    cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
    for (size_t c = 0; c + 1 < cuts.size(); ++c) {
      const int64_t u = cuts[c], v = cuts[c + 1];
      const size_t first = terms.size();
      for (size_t j = 0, r = 0; j < row_offsets.size(); ++j) {
        for (int64_t q = 0; q < range_counts[j]; ++q, ++r) {
          if (starts[r] <= u && v <= ends[r]) terms.emplace_back(row_offsets[j], key_offsets[r]);
        }
      }
      segments.push_back({u, v, first, terms.size() - first});
    }
  }

  // fn(base) with base the first row of image b of src, typed as its dtype (float32 or bfloat16 bits)
  template <typename F>
  static auto with_source(const Source& src, int64_t b, const F& fn) {
    return src.f32 != nullptr ? fn(src.f32 + b * src.s0) : fn(src.bf16 + b * src.s0);
  }

  // image b, source row `row`
  void sum_block(float* o, const Source& src, int64_t b, int64_t row, int64_t k0, int64_t k1) const {
    with_source(src, b, [&](const auto* base) { sum_block_of(o, base, row, src.s1, k0, k1); });
  }

  // The forward's first pass over a block [k0, k1): o[q] <- (shifted sum) * inv[q] (+ bias[q], where bias is
  // given); raw[q] <- the sum (where raw is given); returns the block's largest logit. One pass where a segment
  // has at most two terms (float32 sources; zeros: kBlock zeros for the terms a segment lacks, x + 0 = x), else
  // the sums first.
  float logits_block(float* o, float* raw, const float* inv, const float* bias, const Source& src, int64_t b,
                     int64_t row, int64_t k0, int64_t k1, const float* zeros) const {
    return with_source(src, b, [&](const auto* base) {
      if (bias != nullptr) {
        return raw != nullptr ? logits_block_of<true, true>(o, raw, inv, bias, base, row, src.s1, k0, k1, zeros)
                              : logits_block_of<true, false>(o, raw, inv, bias, base, row, src.s1, k0, k1, zeros);
      }
      return raw != nullptr ? logits_block_of<false, true>(o, raw, inv, bias, base, row, src.s1, k0, k1, zeros)
                            : logits_block_of<false, false>(o, raw, inv, bias, base, row, src.s1, k0, k1, zeros);
    });
  }

  template <bool Bias, bool Raw, typename T>
  float logits_block_of(float* o, float* raw, const float* inv, const float* bias, const T* base, int64_t row,
                        int64_t stride, int64_t k0, int64_t k1, const float* zeros) const {
    float top = -std::numeric_limits<float>::infinity();
    for (const Segment& seg : segments) {
      const int64_t lo = std::max(seg.u, k0), hi = std::min(seg.v, k1);
      if (lo >= hi) continue;
      if constexpr (std::is_same<T, float>::value) {
        if (seg.count <= 2) {
          const float* c = base + row * stride + lo;
          const float* a = seg.count > 0 ? term(base, row, stride, seg.first) + lo : zeros;
          const float* d = seg.count > 1 ? term(base, row, stride, seg.first + 1) + lo : zeros;
          top = std::max(top, logits_of_sums<Bias, Raw>(o + lo, Raw ? raw + lo : nullptr, inv + lo,
                                                        Bias ? bias + lo : nullptr, c, a, d, hi - lo));
          continue;
        }
      }
      sum_block_of(o, base, row, stride, lo, hi);
      top = std::max(top, logits_of_sums<Bias, Raw>(o + lo, Raw ? raw + lo : nullptr, inv + lo,
                                                    Bias ? bias + lo : nullptr, o + lo, zeros, zeros, hi - lo));
    }
    return top;
  }

  // o[q] <- ((c[q] + a[q]) + d[q]) * inv[q] (+ bias[q]), raw[q] <- the sum (Raw), for q < len; the largest o[q].
  template <bool Bias, bool Raw>
  static float logits_of_sums(float* o, float* raw, const float* inv, const float* bias, const float* c,
                              const float* a, const float* d, int64_t len) {
    float top = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : top)
    for (int64_t q = 0; q < len; ++q) {
      const float v = (c[q] + a[q]) + d[q];
      if (Raw) raw[q] = v;
      const float z = Bias ? v * inv[q] + bias[q] : v * inv[q];
      o[q] = z;
      top = z > top ? z : top;
    }
    return top;
  }

  // The source row of term t (row offset, key offset applied) for source row `row`.
  template <typename T>
  const T* term(const T* base, int64_t row, int64_t stride, size_t t) const {
    return base + (row + terms[t].first) * stride + terms[t].second;
  }

  template <typename T>
  void sum_block_of(float* o, const T* base, int64_t row, int64_t stride, int64_t k0, int64_t k1) const {
    const T* centre = base + row * stride;
    for (const Segment& seg : segments) {
      const int64_t lo = std::max(seg.u, k0), hi = std::min(seg.v, k1);
      if (lo >= hi) continue;
      const T* t[2] = {nullptr, nullptr};
      for (size_t j = 0; j < std::min<size_t>(seg.count, 2); ++j) t[j] = term(base, row, stride, seg.first + j);
      if (seg.count == 0) {
        for (int64_t q = lo; q < hi; ++q) o[q] = to_float(centre[q]);
      } else if (seg.count == 1) {
        const T* a = t[0];
        for (int64_t q = lo; q < hi; ++q) o[q] = to_float(centre[q]) + to_float(a[q]);
      } else {
        const T *a = t[0], *c = t[1];
        for (int64_t q = lo; q < hi; ++q) o[q] = (to_float(centre[q]) + to_float(a[q])) + to_float(c[q]);
      }
      for (size_t j = 2; j < seg.count; ++j) {    // larger patches: the further terms one pass each
        const T* a = term(base, row, stride, seg.first + j);
        for (int64_t q = lo; q < hi; ++q) o[q] += to_float(a[q]);
      }
    }
  }
};

// The rows of a (B, m, L') float32 tensor (none where an optional tensor is absent).
struct RowView {
  float* ptr = nullptr;
  int64_t s0 = 0, s1 = 0;
  RowView() = default;
  explicit RowView(const at::Tensor& t) : ptr(t.data_ptr<float>()), s0(t.stride(0)), s1(t.stride(1)) {}
  float* row(int64_t b, int64_t i) const { return ptr == nullptr ? nullptr : ptr + b * s0 + i * s1; }
};

// The checks the steps share: out (B, m, L'), src and its shifts, inv_scale (B, 1, L') (where defined) and
// raw (like out, optional). Returns {B, m, L'}.
std::array<int64_t, 3> check_step(const char* op, const at::Tensor& src, int64_t lo, at::IntArrayRef row_offsets,
                                  at::IntArrayRef range_counts, at::IntArrayRef starts, at::IntArrayRef ends,
                                  at::IntArrayRef key_offsets, const at::Tensor& out,
                                  const at::Tensor* inv_scale, const c10::optional<at::Tensor>& raw) {
  TORCH_CHECK(out.dim() == 3, op, ": the output must be (B, m, L')");
  const int64_t batch = out.size(0), m = out.size(1), n = out.size(2);
  check_rows(op, "the output", out, batch, m, n);
  TORCH_CHECK(src.dim() == 3 && src.size(0) == batch, op, ": src must be (B, rows, L') like the output");
  check_shifts(op, src, lo, m, n, row_offsets, range_counts, starts, ends, key_offsets);
  if (inv_scale != nullptr) {
    TORCH_CHECK(inv_scale->scalar_type() == at::kFloat && inv_scale->dim() == 3 && inv_scale->size(0) == batch &&
                    inv_scale->size(1) == 1 && inv_scale->size(2) == n && inv_scale->stride(2) == 1,
                op, ": inv_scale must be float32 (B, 1, L')");
  }
  if (raw.has_value()) check_rows(op, "raw", *raw, batch, m, n);
  return {batch, m, n};
}

// fn(b, i) for every row i of every image b of a (B, m, L') block, on torch's CPU threads (a few rows each:
// at least 32768 elements per thread, torch's own grain).
template <typename F>
void for_each_row(int64_t batch, int64_t m, int64_t n, const F& fn) {
  at::parallel_for(0, batch * m, std::max<int64_t>(1, 32768 / std::max<int64_t>(n, 1)), [&](int64_t begin, int64_t end) {
    for (int64_t idx = begin; idx < end; ++idx) fn(idx / m, idx % m);
  });
}

// The forward's step (panet_mm/ops/native.py, stencil_softmax): out <- softmax over the keys of
// (shifted sums of src) * inv_scale + bias, row by row; raw (optional) <- the shifted sums; the rows listed in
// zero_rows (optional; the padding query positions) get probability 0 and no softmax.
void stencil_softmax(const at::Tensor& src, int64_t lo, at::IntArrayRef row_offsets, at::IntArrayRef range_counts,
                     at::IntArrayRef starts, at::IntArrayRef ends, at::IntArrayRef key_offsets,
                     const at::Tensor& inv_scale, const c10::optional<at::Tensor>& bias, const at::Tensor& out,
                     const c10::optional<at::Tensor>& raw, const c10::optional<at::Tensor>& zero_rows) {
  const char* op = "stencil_softmax";
  const std::array<int64_t, 3> dims = check_step(op, src, lo, row_offsets, range_counts, starts, ends, key_offsets, out,
                                        &inv_scale, raw);
  const int64_t batch = dims[0], m = dims[1], n = dims[2];
  const float* bias_ptr = nullptr;
  if (bias.has_value()) {
    TORCH_CHECK(bias->scalar_type() == at::kFloat && bias->is_contiguous() && bias->numel() == n, op,
                ": bias must be a contiguous float32 (L',) tensor");
    bias_ptr = bias->data_ptr<float>();
  }
  std::vector<char> zero(m, 0);
  if (zero_rows.has_value()) {
    TORCH_CHECK(zero_rows->device().is_cpu() && zero_rows->scalar_type() == at::kLong && zero_rows->dim() == 1, op,
                ": zero_rows must be a CPU int64 (n,) tensor of row indices");
    const at::Tensor rows = zero_rows->contiguous();
    const int64_t* idx = rows.data_ptr<int64_t>();
    for (int64_t j = 0; j < rows.numel(); ++j) {
      TORCH_CHECK(idx[j] >= 0 && idx[j] < m, op, ": zero_rows holds row ", idx[j], ", outside the ", m, " rows");
      zero[idx[j]] = 1;
    }
  }
  const Shifts shifts(row_offsets, range_counts, starts, ends, key_offsets, n);
  const Source source(src);
  const RowView inv_rows(inv_scale), out_rows(out), raw_rows = raw ? RowView(*raw) : RowView();
  const float tiny = std::numeric_limits<float>::min(), minus_inf = -std::numeric_limits<float>::infinity();

  const int64_t blocks = (n + kBlock - 1) / kBlock;
  const std::vector<float> zeros(kBlock, 0.f);
  for_each_row(batch, m, n, [&](int64_t b, int64_t i) {
    float* o = out_rows.row(b, i);
    float* raw_row = raw_rows.row(b, i);
    if (zero[i]) {                        // a padding query position: no attention (its raw scores still kept)
      for (int64_t k0 = 0; raw_row != nullptr && k0 < n; k0 += kBlock) {
        shifts.sum_block(raw_row, source, b, lo + i, k0, std::min(n, k0 + kBlock));
      }
      std::fill(o, o + n, 0.f);
      return;
    }
    std::vector<float> block_max(blocks);
    const float* inv = inv_rows.row(b, 0);
    // first sweep, in blocks that stay in L1: shifted sums, logits, exp against the running maximum
    float top = minus_inf, sum = 0.f;
    for (int64_t k0 = 0, blk = 0; k0 < n; k0 += kBlock, ++blk) {
      const int64_t k1 = std::min(n, k0 + kBlock);
      const float block_top = shifts.logits_block(o, raw_row, inv, bias_ptr, source, b, lo + i, k0, k1, zeros.data());
      if (block_top > top) {
        if (sum > 0.f) sum *= std::exp(top - block_top);
        top = block_top;
      }
      block_max[blk] = top;
      if (top == minus_inf) {             // only padding keys so far
        std::fill(o + k0, o + k1, 0.f);
        continue;
      }
      sum += exp_shifted(o + k0, k1 - k0, top);
    }
    // second sweep: each block's exp was taken against the maximum known then; normalise, no denormals
    for (int64_t k0 = 0, blk = 0; k0 < n; k0 += kBlock, ++blk) {
      const int64_t k1 = std::min(n, k0 + kBlock);
      const float scale = (block_max[blk] == top ? 1.f : std::exp(block_max[blk] - top)) * (1.f / sum);
#pragma omp simd
      for (int64_t k = k0; k < k1; ++k) {
        const float p = o[k] * scale;
        o[k] = p <= tiny ? 0.f : p;
      }
    }
  });
}

// The backward's step (panet_mm/ops/native.py, stencil_softmax_backward): with g the shifted sums of src
// (d loss / d probabilities) and d = attn * (g - sum_k attn * g) (softmax backward), dz <- d * inv_scale,
// denormals written as 0; raw (optional, the raw scores) <- raw * d.
void stencil_softmax_backward(const at::Tensor& src, int64_t lo, at::IntArrayRef row_offsets,
                              at::IntArrayRef range_counts, at::IntArrayRef starts, at::IntArrayRef ends,
                              at::IntArrayRef key_offsets, const at::Tensor& attn, const at::Tensor& inv_scale,
                              const at::Tensor& dz, const c10::optional<at::Tensor>& raw) {
  const char* op = "stencil_softmax_backward";
  const std::array<int64_t, 3> dims = check_step(op, src, lo, row_offsets, range_counts, starts, ends, key_offsets, dz,
                                        &inv_scale, raw);
  const int64_t batch = dims[0], m = dims[1], n = dims[2];
  check_rows(op, "attn", attn, batch, m, n);
  const Shifts shifts(row_offsets, range_counts, starts, ends, key_offsets, n);
  const Source source(src);
  const RowView attn_rows(attn), inv_rows(inv_scale), dz_rows(dz);
  const RowView raw_rows = raw ? RowView(*raw) : RowView();
  const float tiny = std::numeric_limits<float>::min();

  for_each_row(batch, m, n, [&](int64_t b, int64_t i) {
    const float* a = attn_rows.row(b, i);
    const float* inv = inv_rows.row(b, 0);
    float* o = dz_rows.row(b, i);
    float* raw_row = raw_rows.row(b, i);
    float dot = 0.f;
    for (int64_t k0 = 0; k0 < n; k0 += kBlock) {
      const int64_t k1 = std::min(n, k0 + kBlock);
      shifts.sum_block(o, source, b, lo + i, k0, k1);
#pragma omp simd reduction(+ : dot)
      for (int64_t k = k0; k < k1; ++k) dot += a[k] * o[k];
    }
    if (raw_row != nullptr) {
#pragma omp simd
      for (int64_t k = 0; k < n; ++k) {
        const float d = a[k] * (o[k] - dot);
        raw_row[k] *= d;
        const float g = d * inv[k];
        o[k] = (g <= tiny && g >= -tiny) ? 0.f : g;
      }
    } else {
#pragma omp simd
      for (int64_t k = 0; k < n; ++k) {
        const float g = a[k] * (o[k] - dot) * inv[k];
        o[k] = (g <= tiny && g >= -tiny) ? 0.f : g;
      }
    }
  });
}

// The shifted sums alone (panet_mm/ops/chunks.py, stencil): out <- src[lo + i] + the shifted rows' terms,
// one pass per row instead of torch's copy-and-add passes.
void stencil_rows(const at::Tensor& src, int64_t lo, at::IntArrayRef row_offsets, at::IntArrayRef range_counts,
                  at::IntArrayRef starts, at::IntArrayRef ends, at::IntArrayRef key_offsets, const at::Tensor& out) {
  const char* op = "stencil_rows";
  const std::array<int64_t, 3> dims = check_step(op, src, lo, row_offsets, range_counts, starts, ends, key_offsets, out,
                                        nullptr, c10::nullopt);
  const int64_t batch = dims[0], m = dims[1], n = dims[2];
  const Shifts shifts(row_offsets, range_counts, starts, ends, key_offsets, n);
  const Source source(src);
  const RowView out_rows(out);
  for_each_row(batch, m, n, [&](int64_t b, int64_t i) {
    float* o = out_rows.row(b, i);
    for (int64_t k0 = 0; k0 < n; k0 += kBlock) shifts.sum_block(o, source, b, lo + i, k0, std::min(n, k0 + kBlock));
  });
}

}  // namespace

TORCH_LIBRARY(panet_mm, m) {
  m.def("stencil_rows", &stencil_rows);
  m.def("stencil_softmax", &stencil_softmax);
  m.def("stencil_softmax_backward", &stencil_softmax_backward);
}
