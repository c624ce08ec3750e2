// TfIdfVectorizer (opset 9): counts the pool's n-grams in each row of a
// string or integer input and weights the counts. Part of register_string.
//
// The pool lists n-grams grouped by length: ngram_counts[k] is where the
// (k+1)-grams start in pool_strings/pool_int64s. The j-th n-gram of the pool
// (numbered across all lengths) is counted in output column ngram_indexes[j].
// An n-gram of length n >= 2 is matched at every skip distance d in
// [1, max_skip_count + 1] (items start, start+d, ..., start+(n-1)d); a
// unigram is counted once per occurrence. Only lengths in
// [min_gram_length, max_gram_length] are counted.
#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"
#include "ops/op_util.h"
#include "ops/registry.h"
#include "ops/string_util.h"

namespace kiln::ops {
namespace {

enum class Weighting { kTf, kIdf, kTfIdf };

// The validated attributes of one node.
struct TfIdfConfig {
  Weighting mode = Weighting::kTf;
  int64_t min_n = 1;
  int64_t max_n = 1;
  int64_t max_skip = 0;
  bool string_pool = false;
  std::vector<std::string> pool_strings;
  std::vector<int64_t> pool_int64s;
  std::vector<int64_t> ngram_counts;
  std::vector<int64_t> ngram_indexes;
  std::vector<float> weights;
  int64_t output_size = 0;
};

Result<TfIdfConfig> read_config(const ir::Node& node) {
  TfIdfConfig c;
  const std::string where = node.describe();
  std::string mode = node.attr_string("mode", "");
  if (mode == "TF") {
    c.mode = Weighting::kTf;
  } else if (mode == "IDF") {
    c.mode = Weighting::kIdf;
  } else if (mode == "TFIDF") {
    c.mode = Weighting::kTfIdf;
  } else {
    return invalid_argument("{}: mode must be TF, IDF or TFIDF, got '{}'", where, mode);
  }
  for (const char* name : {"min_gram_length", "max_gram_length", "max_skip_count"}) {
    if (!node.has_attr(name)) return invalid_argument("{}: attribute '{}' is required", where, name);
  }
  c.min_n = node.attr_int("min_gram_length", 1);
  c.max_n = node.attr_int("max_gram_length", 1);
  c.max_skip = node.attr_int("max_skip_count", 0);
  if (c.min_n < 1 || c.max_n < c.min_n) {
    return invalid_argument("{}: need 1 <= min_gram_length <= max_gram_length, got {} and {}", where, c.min_n,
                            c.max_n);
  }
  if (c.max_skip < 0) return invalid_argument("{}: max_skip_count must be >= 0, got {}", where, c.max_skip);

  c.string_pool = node.has_attr("pool_strings");
  if (c.string_pool == node.has_attr("pool_int64s")) {
    return invalid_argument("{}: exactly one of pool_strings and pool_int64s must be set", where);
  }
  c.pool_strings = node.attr_strings("pool_strings");
  c.pool_int64s = node.attr_ints("pool_int64s");
  const auto pool_size = static_cast<int64_t>(c.string_pool ? c.pool_strings.size() : c.pool_int64s.size());

  c.ngram_counts = node.attr_ints("ngram_counts");
  c.ngram_indexes = node.attr_ints("ngram_indexes");
  int64_t num_ngrams = 0;
  for (size_t k = 0; k < c.ngram_counts.size(); ++k) {
    const int64_t start = c.ngram_counts[k];
    const int64_t end = k + 1 < c.ngram_counts.size() ? c.ngram_counts[k + 1] : pool_size;
    const auto n = static_cast<int64_t>(k) + 1;
    if (start < 0 || end < start || end > pool_size) {
      return invalid_argument("{}: ngram_counts {} does not split a pool of {} items", where,
                              dims_to_string(c.ngram_counts), pool_size);
    }
    if ((end - start) % n != 0) {
      return invalid_argument("{}: the {}-grams of the pool have {} items, not a multiple of {}", where, n,
                              end - start, n);
    }
    num_ngrams += (end - start) / n;
  }
  if (c.ngram_counts.empty() && pool_size > 0) {
    return invalid_argument("{}: ngram_counts is required with a non-empty pool", where);
  }
  if (static_cast<int64_t>(c.ngram_indexes.size()) < num_ngrams) {
    return invalid_argument("{}: ngram_indexes has {} entries but the pool has {} n-grams", where,
                            c.ngram_indexes.size(), num_ngrams);
  }
  if (c.ngram_indexes.empty()) return invalid_argument("{}: ngram_indexes must not be empty", where);
  for (int64_t idx : c.ngram_indexes) {
    if (idx < 0 || idx >= kMaxTensorElements) {
      return invalid_argument("{}: ngram_indexes has an invalid index {}", where, idx);
    }
    c.output_size = std::max(c.output_size, idx + 1);
  }
  c.weights = node.attr_floats("weights");
  if (!c.weights.empty() && static_cast<int64_t>(c.weights.size()) < c.output_size) {
    return invalid_argument("{}: weights has {} values but the output has {} columns", where, c.weights.size(),
                            c.output_size);
  }
  return c;
}

// The pool's n-grams (lengths in [min_n, max_n]) mapped to their output
// column; a repeated n-gram keeps its last position.
template <class K>
std::map<std::vector<K>, int64_t> pool_map(const TfIdfConfig& c, const std::vector<K>& pool) {
  std::map<std::vector<K>, int64_t> m;
  int64_t id = 0;
  for (size_t k = 0; k < c.ngram_counts.size(); ++k) {
    const int64_t n = static_cast<int64_t>(k) + 1;
    const int64_t end = k + 1 < c.ngram_counts.size() ? c.ngram_counts[k + 1] : static_cast<int64_t>(pool.size());
    for (int64_t p = c.ngram_counts[k]; p < end; p += n, ++id) {
      if (n < c.min_n || n > c.max_n) continue;
      m[std::vector<K>(pool.begin() + p, pool.begin() + p + n)] = c.ngram_indexes[static_cast<size_t>(id)];
    }
  }
  return m;
}

// Adds the n-gram counts of one row (`row`, `len` items) to `freq`.
template <class K>
void count_row(const TfIdfConfig& c, const std::map<std::vector<K>, int64_t>& pool, const K* row, int64_t len,
               int64_t* freq) {
  std::vector<K> key;
  // No pool n-gram is longer than ngram_counts.size() or the row; bounding n
  // and d this way also keeps (n - 1) * d from overflowing.
  const int64_t last_n = std::min({c.max_n, static_cast<int64_t>(c.ngram_counts.size()), len});
  for (int64_t n = c.min_n; n <= last_n; ++n) {
    const int64_t max_d = n == 1 ? 1 : std::min(c.max_skip + 1, (len - 1) / (n - 1));
    for (int64_t d = 1; d <= max_d; ++d) {
      for (int64_t s = 0; s + (n - 1) * d < len; ++s) {
        key.clear();
        for (int64_t k = 0; k < n; ++k) key.push_back(row[s + k * d]);
        auto it = pool.find(key);
        if (it != pool.end()) ++freq[it->second];
      }
    }
  }
}

Status tfidf_kernel(KernelContext& ctx) {
  auto config = read_config(ctx.node());
  if (!config.is_ok()) return config.status();
  const TfIdfConfig& c = *config;
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  const DataType t = x->dtype();
  if (c.string_pool ? t != DataType::kString : (t != DataType::kInt32 && t != DataType::kInt64)) {
    return ctx.error(invalid_argument("input X is {} but the pool is {}", data_type_name(t),
                                      c.string_pool ? "pool_strings (needs string)" : "pool_int64s (needs int32/int64)"));
  }
  if (x->rank() != 1 && x->rank() != 2) {
    return ctx.error(invalid_argument("input X must be 1-D [C] or 2-D [N, C], got {}", dims_to_string(x->dims())));
  }
  const int64_t rows = x->rank() == 1 ? 1 : x->dim(0);
  const int64_t len = x->dims().back();
  Dims out_dims = x->rank() == 1 ? Dims{c.output_size} : Dims{rows, c.output_size};
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0, DataType::kFloat32, out_dims));

  std::vector<int64_t> freq(static_cast<size_t>(rows * c.output_size), 0);
  if (c.string_pool) {
    auto pool = pool_map(c, c.pool_strings);
    for (int64_t r = 0; r < rows; ++r) {
      count_row(c, pool, x->data<std::string>() + r * len, len, freq.data() + r * c.output_size);
    }
  } else {
    auto pool = pool_map(c, c.pool_int64s);
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> values, to_int64_vector(*x));
    for (int64_t r = 0; r < rows; ++r) count_row(c, pool, values.data() + r * len, len, freq.data() + r * c.output_size);
  }

  float* py = y->data<float>();
  for (int64_t i = 0; i < y->numel(); ++i) {
    const auto f = static_cast<float>(freq[static_cast<size_t>(i)]);
    const float w = c.weights.empty() ? 1.0f : c.weights[static_cast<size_t>(i % c.output_size)];
    switch (c.mode) {
      case Weighting::kTf: py[i] = f; break;
      case Weighting::kIdf: py[i] = f > 0 ? w : 0.0f; break;
      case Weighting::kTfIdf: py[i] = w * f; break;
    }
  }
  return Status::ok();
}

Status tfidf_infer(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(TfIdfConfig c, read_config(ctx.node()));
  const ir::ValueType& x = ctx.input_type(0);
  Shape out;
  if (x.is_tensor() && x.shape.rank_known()) {
    if (x.shape.rank() == 1) {
      out = Shape::of({c.output_size});
    } else if (x.shape.rank() == 2) {
      out = Shape({x.shape[0], Dim(c.output_size)});
    } else {
      return invalid_argument("{}: input X must be 1-D or 2-D, got rank {}", ctx.node().describe(), x.shape.rank());
    }
  }
  ctx.set_output_type(0, ir::ValueType::tensor(DataType::kFloat32, out));
  return Status::ok();
}

}  // namespace

void register_tfidf_vectorizer(Registry& r) {
  r.add({.name = "TfIdfVectorizer", .domain = "", .since_version = 9, .min_inputs = 1, .max_inputs = 1,
         .kernel = tfidf_kernel, .infer = tfidf_infer});
}

}  // namespace kiln::ops
