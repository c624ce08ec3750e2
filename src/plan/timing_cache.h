// The timing cache: measured tactic times keyed by everything that decides
// them, so that a rebuild (or another model with the same layers) re-uses them.
//
// A key is "<domain>::<op>:<opset>|<attributes>|<input dtypes and dims>|<arch>+<isa>|t<threads>|<tactic>".
// The file is text: a header line, then one "<ms>\t<key>" line per entry.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "ir/graph.h"
#include "kiln/status.h"
#include "plan/shapes.h"

namespace kiln::plan {

class TimingCache {
 public:
  // Reads `path`; a missing file is an empty cache. Malformed lines are
  // skipped with a warning (the cache only saves time; it is never trusted
  // for correctness).
  static Result<TimingCache> load(const std::string& path);
  Status save(const std::string& path) const;

  std::optional<double> find(const std::string& key) const;
  void put(const std::string& key, double ms) { entries_[key] = ms; }
  size_t size() const { return entries_.size(); }

  // The key of `tactic` on `node` with input dims from `dims` on this machine with `threads` threads.
  static std::string key(const ir::Node& node, const ValueDims& dims, int threads, const std::string& tactic);
  // The key of one reorder of a float32 value of `dims` between NCHW and `layout` on this
  // machine: "layout_change|<layout>|<dims>|<arch>+<isa>|t<threads>".
  static std::string layout_change_key(const std::string& layout, const Dims& dims, int threads);

 private:
  std::map<std::string, double> entries_;
};

}  // namespace kiln::plan
