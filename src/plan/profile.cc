#include "plan/profile.h"

#include <charconv>

#include "core/error.h"

namespace kiln::plan {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

Result<Dims> parse_dims(std::string_view text, std::string_view name) {
  Dims dims;
  text = trim(text);
  if (text.empty()) return dims;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t x = text.find_first_of("xX*", pos);
    std::string_view part = trim(text.substr(pos, x == std::string_view::npos ? std::string_view::npos : x - pos));
    int64_t v = 0;
    auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), v);
    if (part.empty() || ec != std::errc() || end != part.data() + part.size() || v < 0) {
      return invalid_argument("shape of '{}': '{}' is not a dimension (expected e.g. {}:8x3x224x224)", name, part,
                              name);
    }
    dims.push_back(v);
    if (x == std::string_view::npos) break;
    pos = x + 1;
  }
  return dims;
}

// The declared shape of `v` must admit `dims`.
Status check_declared(const ir::Value& v, const Dims& dims, const char* which) {
  const Shape& s = v.type().shape;
  if (!v.type().is_tensor()) return invalid_argument("input '{}' is not a tensor; it cannot have a shape profile", v.name());
  if (!s.rank_known()) return Status::ok();
  if (s.rank() != static_cast<int64_t>(dims.size())) {
    return invalid_argument("{} shape {} of input '{}' has rank {}, the model declares rank {} ({})", which,
                            format_dims(dims), v.name(), dims.size(), s.rank(), s.to_string());
  }
  for (int64_t i = 0; i < s.rank(); ++i) {
    if (s[i].known() && s[i].value != dims[static_cast<size_t>(i)]) {
      return invalid_argument("{} shape {} of input '{}': dim {} is {}, the model fixes it to {} ({})", which,
                              format_dims(dims), v.name(), i, dims[static_cast<size_t>(i)], s[i].value,
                              s.to_string());
    }
  }
  return Status::ok();
}

}  // namespace

std::string format_dims(const Dims& dims) {
  std::string out;
  for (size_t i = 0; i < dims.size(); ++i) out += (i ? "x" : "") + std::to_string(dims[i]);
  return out;
}

Result<ShapeSpec> parse_shape_spec(std::string_view text) {
  ShapeSpec spec;
  text = trim(text);
  if (text.empty()) return spec;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    std::string_view item = trim(text.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos));
    size_t colon = item.rfind(':');
    if (colon == std::string_view::npos || colon == 0) {
      return invalid_argument("'{}' is not name:dims (expected e.g. input:1x3x224x224)", item);
    }
    std::string name(trim(item.substr(0, colon)));
    KILN_ASSIGN_OR_RETURN(Dims dims, parse_dims(item.substr(colon + 1), name));
    if (!spec.emplace(name, std::move(dims)).second) return invalid_argument("input '{}' is given twice", name);
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return spec;
}

Result<std::vector<InputProfile>> make_profiles(const ir::Graph& graph, const ShapeSpec& shapes,
                                                const ShapeSpec& min, const ShapeSpec& opt, const ShapeSpec& max) {
  if (!shapes.empty() && (!min.empty() || !opt.empty() || !max.empty())) {
    return invalid_argument("give either --shapes or --min-shapes/--opt-shapes/--max-shapes, not both");
  }
  std::vector<InputProfile> out;
  for (const ShapeSpec* spec : {&shapes, &min, &opt, &max}) {
    for (const auto& [name, dims] : *spec) {
      const ir::Value* v = graph.find_value(name);
      if (v == nullptr || !v->is_graph_input()) {
        std::string known;
        for (const ir::Value* in : graph.inputs()) {
          if (!in->is_constant()) known += (known.empty() ? "'" : ", '") + in->name() + "'";
        }
        return invalid_argument("shape given for '{}', which is not an input of the model; its inputs are {}", name,
                                known);
      }
    }
  }
  for (const ir::Value* v : graph.inputs()) {
    if (v->is_constant()) continue;
    InputProfile p;
    p.name = v->name();
    auto get = [&](const ShapeSpec& s) -> const Dims* {
      auto it = s.find(v->name());
      return it == s.end() ? nullptr : &it->second;
    };
    if (const Dims* d = get(shapes)) {
      p.min = p.opt = p.max = *d;
    } else if (get(min) || get(opt) || get(max)) {
      const Dims* o = get(opt) ? get(opt) : get(max) ? get(max) : get(min);
      p.opt = *o;
      p.min = get(min) ? *get(min) : p.opt;
      p.max = get(max) ? *get(max) : p.opt;
    } else {
      auto fixed = v->type().is_tensor() ? v->type().shape.concrete() : std::nullopt;
      if (!fixed) continue;
      p.min = p.opt = p.max = *fixed;
    }
    KILN_RETURN_IF_ERROR(check_declared(*v, p.min, "min"));
    KILN_RETURN_IF_ERROR(check_declared(*v, p.opt, "opt"));
    KILN_RETURN_IF_ERROR(check_declared(*v, p.max, "max"));
    if (p.min.size() != p.opt.size() || p.opt.size() != p.max.size()) {
      return invalid_argument("input '{}': min {}, opt {} and max {} shapes have different ranks", p.name,
                              format_dims(p.min), format_dims(p.opt), format_dims(p.max));
    }
    for (size_t i = 0; i < p.opt.size(); ++i) {
      if (!(p.min[i] <= p.opt[i] && p.opt[i] <= p.max[i])) {
        return invalid_argument("input '{}' dim {}: need min <= opt <= max, got {} / {} / {}", p.name, i, p.min[i],
                                p.opt[i], p.max[i]);
      }
    }
    out.push_back(std::move(p));
  }
  return out;
}

Status check_profile(const InputProfile& profile, const Dims& dims) {
  if (dims.size() != profile.min.size()) {
    return invalid_argument("input '{}' has shape {} (rank {}); the plan's profile expects rank {} ({} to {})",
                            profile.name, dims_to_string(dims), dims.size(), profile.min.size(),
                            format_dims(profile.min), format_dims(profile.max));
  }
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] < profile.min[i] || dims[i] > profile.max[i]) {
      return invalid_argument(
          "input '{}' has shape {}: dim {} is {}, outside the plan's profile range [{}, {}] (profile {} to {}); "
          "rebuild with a wider --min-shapes/--max-shapes",
          profile.name, dims_to_string(dims), i, dims[i], profile.min[i], profile.max[i], format_dims(profile.min),
          format_dims(profile.max));
    }
  }
  return Status::ok();
}

}  // namespace kiln::plan
