// The op registry: every OpDef, registered in one place (registry.cc).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "ops/op_def.h"

namespace kiln::ops {

class Registry {
 public:
  // The process-wide registry holding every op family.
  static const Registry& global();

  void add(const OpDef& def);
  // The definition of (domain, name) serving `opset`, or nullptr.
  const OpDef* find(std::string_view domain, std::string_view name, int64_t opset) const;
  // True if any opset of (domain, name) is registered.
  bool knows(std::string_view domain, std::string_view name) const;
  const std::vector<OpDef>& all() const { return defs_; }

 private:
  std::vector<OpDef> defs_;
};

// Normalizes "ai.onnx" to "".
std::string_view canonical_domain(std::string_view domain);

// Checks input/output counts against the schema; the error names the node.
Status check_arity(const OpDef& def, const ir::Node& node);

}  // namespace kiln::ops
