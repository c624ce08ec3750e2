// Plan files, the writing half (plan_reader.cc reads them back).
#include <cstring>
#include <fstream>
#include <unordered_map>

#include "backends/tactic.h"
#include "core/error.h"
#include "plan/plan_file.h"
#include "plan/plan_format.h"
#include "plan/plan_generated.h"
#include "plan/shapes.h"

namespace kiln::plan {
namespace {

namespace fbs = ::kiln::plan::fb;
using flatbuffers::Offset;

class Writer {
 public:
  flatbuffers::FlatBufferBuilder fbb{1 << 20};
  std::string weights;

  Offset<fbs::TensorData> tensor(const Tensor& t) {
    auto dims = fbb.CreateVector(t.dims());
    if (t.dtype() == DataType::kString) {
      std::vector<Offset<flatbuffers::String>> strs;
      for (const std::string& s : t.span<std::string>()) strs.push_back(fbb.CreateString(s));
      auto sv = fbb.CreateVector(strs);
      return fbs::CreateTensorData(fbb, static_cast<int32_t>(t.dtype()), dims, 0, 0, sv);
    }
    uint64_t offset = 0;
    const uint64_t nbytes = t.nbytes();
    if (nbytes > 0) {
      auto key = std::make_pair(t.raw_data(), nbytes);
      auto it = offsets_.find(key);
      if (it != offsets_.end()) {
        offset = it->second;
      } else {
        weights.resize(align_up(weights.size(), kWeightAlignment), '\0');
        offset = weights.size();
        weights.append(static_cast<const char*>(t.raw_data()), nbytes);
        offsets_.emplace(key, offset);
      }
    }
    return fbs::CreateTensorData(fbb, static_cast<int32_t>(t.dtype()), dims, offset, nbytes);
  }

  Offset<fbs::ValueType> type(const ir::ValueType& t) {
    Offset<fbs::ValueType> elem = t.elem ? type(*t.elem) : 0;
    std::vector<Offset<fbs::Dim>> dims;
    if (t.shape.rank_known()) {
      for (const Dim& d : t.shape.dims()) {
        auto sym = d.symbol.empty() ? 0 : fbb.CreateString(d.symbol);
        dims.push_back(fbs::CreateDim(fbb, d.value, sym));
      }
    }
    auto dv = fbb.CreateVector(dims);
    return fbs::CreateValueType(fbb, static_cast<int8_t>(t.kind), static_cast<int32_t>(t.dtype),
                                t.shape.rank_known(), dv, elem);
  }

  Offset<fbs::Attribute> attribute(const ir::Attribute& a) {
    auto name = fbb.CreateString(a.name);
    auto s = fbb.CreateVector(reinterpret_cast<const uint8_t*>(a.s.data()), a.s.size());
    Offset<fbs::TensorData> t = a.t.defined() ? tensor(a.t) : 0;
    Offset<fbs::Graph> g = a.g ? graph(*a.g, nullptr) : 0;
    auto floats = fbb.CreateVector(a.floats);
    auto ints = fbb.CreateVector(a.ints);
    auto strings = fbb.CreateVectorOfStrings(a.strings);
    std::vector<Offset<fbs::TensorData>> ts;
    for (const Tensor& x : a.tensors) ts.push_back(tensor(x));
    auto tensors = fbb.CreateVector(ts);
    std::vector<Offset<fbs::Graph>> gs;
    for (const auto& x : a.graphs) gs.push_back(graph(*x, nullptr));
    auto graphs = fbb.CreateVector(gs);
    std::vector<Offset<fbs::ValueType>> tys;
    for (const auto& x : a.types) tys.push_back(type(x));
    auto types = fbb.CreateVector(tys);
    return fbs::CreateAttribute(fbb, name, static_cast<int8_t>(a.kind), a.f, a.i, s, t, g, floats, ints, strings,
                                tensors, graphs, types);
  }

  // `layers`: the lowering of the nodes (top-level graph only).
  Offset<fbs::Graph> graph(const ir::Graph& g, const std::vector<Layer>* layers) {
    std::vector<ir::Value*> values = all_values(g);
    std::unordered_map<const ir::Value*, int32_t> index;
    std::vector<Offset<fbs::Value>> vs;
    for (const ir::Value* v : values) {
      index[v] = static_cast<int32_t>(vs.size());
      auto name = fbb.CreateString(v->name());
      auto ty = type(v->type());
      Offset<fbs::TensorData> c = v->is_constant() ? tensor(v->constant()) : 0;
      vs.push_back(fbs::CreateValue(fbb, name, ty, c, v->is_capture()));
    }
    auto indices = [&](const std::vector<ir::Value*>& list) {
      std::vector<int32_t> out;
      for (const ir::Value* v : list) out.push_back(v ? index.at(v) : -1);
      return fbb.CreateVector(out);
    };
    std::vector<Offset<fbs::Node>> nodes;
    size_t k = 0;
    for (const auto& n : g.nodes()) {
      std::vector<Offset<fbs::Attribute>> attrs;
      for (const auto& [name, a] : n->attributes()) attrs.push_back(attribute(a));
      auto av = fbb.CreateVector(attrs);
      auto ins = indices(n->inputs());
      auto outs = indices(n->outputs());
      const Layer* layer = layers && k < layers->size() ? &(*layers)[k] : nullptr;
      auto tactic = layer ? fbb.CreateString(layer->tactic) : 0;
      uint64_t state_offset = 0;
      const uint64_t state_nbytes = layer ? layer->state.size() : 0;
      if (state_nbytes > 0) {
        weights.resize(align_up(weights.size(), kWeightAlignment), '\0');
        state_offset = weights.size();
        weights.append(reinterpret_cast<const char*>(layer->state.data()), state_nbytes);
      }
      nodes.push_back(fbs::CreateNode(fbb, fbb.CreateString(n->name()), fbb.CreateString(n->op_type()),
                                      fbb.CreateString(n->domain()), n->opset(), ins, outs, av, tactic,
                                      /*kernel_state=*/0, layer ? layer->time_ms : -1.0,
                                      layer ? layer->candidates : 0, state_offset, state_nbytes));
      ++k;
    }
    auto name = fbb.CreateString(g.name());
    auto vv = fbb.CreateVector(vs);
    auto in = indices(g.inputs());
    auto out = indices(g.outputs());
    auto nv = fbb.CreateVector(nodes);
    return fbs::CreateGraph(fbb, name, vv, in, out, nv);
  }

  Offset<flatbuffers::Vector<Offset<fbs::KeyValue>>> pairs(const std::map<std::string, std::string>& m) {
    std::vector<Offset<fbs::KeyValue>> out;
    for (const auto& [k, v] : m) out.push_back(fbs::CreateKeyValue(fbb, fbb.CreateString(k), fbb.CreateString(v)));
    return fbb.CreateVector(out);
  }

 private:
  struct PairHash {
    size_t operator()(const std::pair<const void*, uint64_t>& p) const {
      return std::hash<const void*>()(p.first) ^ (std::hash<uint64_t>()(p.second) << 1);
    }
  };
  std::unordered_map<std::pair<const void*, uint64_t>, uint64_t, PairHash> offsets_;
};

void put_u32(std::string& out, size_t at, uint32_t v) { std::memcpy(out.data() + at, &v, 4); }
void put_u64(std::string& out, size_t at, uint64_t v) { std::memcpy(out.data() + at, &v, 8); }

}  // namespace

Result<std::string> serialize_plan(const Plan& plan) {
  if (!plan.model.graph) return invalid_argument("plan has no graph");
  Writer w;
  auto& fbb = w.fbb;
  auto graph = w.graph(*plan.model.graph, &plan.layers);
  std::map<std::string, std::string> opsets;
  for (const auto& [domain, version] : plan.model.graph->opset_imports()) opsets[domain] = std::to_string(version);
  auto opset_v = w.pairs(opsets);
  auto libs = w.pairs(plan.libraries);
  auto meta = w.pairs(plan.model.metadata);
  std::vector<Offset<fbs::MemoryBlock>> blocks;
  for (const MemoryBlock& b : plan.memory.blocks) {
    blocks.push_back(fbs::CreateMemoryBlock(fbb, fbb.CreateString(b.value), b.offset, b.size,
                                            static_cast<int8_t>(b.kind)));
  }
  auto bv = fbb.CreateVector(blocks);
  std::vector<Offset<fbs::Profile>> profiles;
  for (const InputProfile& p : plan.profiles) {
    profiles.push_back(fbs::CreateProfile(fbb, fbb.CreateString(p.name), fbb.CreateVector(p.min),
                                          fbb.CreateVector(p.opt), fbb.CreateVector(p.max)));
  }
  auto pv = fbb.CreateVector(profiles);
  auto root = fbs::CreatePlan(
      fbb, fbb.CreateString(plan.kiln_version), fbb.CreateString(plan.target.arch),
      fbb.CreateVectorOfStrings(plan.target.isa), fbb.CreateVectorOfStrings(plan.target.required), libs,
      fbb.CreateString(plan.precision), plan.threads, plan.onnx_nodes, plan.model.ir_version,
      fbb.CreateString(plan.model.producer_name), fbb.CreateString(plan.model.producer_version), meta, opset_v, graph,
      plan.memory.arena_bytes, plan.memory.naive_bytes, bv, pv, plan.memory.in_place, plan.memory.views,
      plan.memory.concats);
  fbs::FinishPlanBuffer(fbb, root);

  const uint64_t meta_size = fbb.GetSize();
  const uint64_t weights_offset = align_up(kPlanHeaderSize + meta_size, kWeightAlignment);
  const uint64_t file_size = weights_offset + w.weights.size();
  std::string out(weights_offset, '\0');
  std::memcpy(out.data(), kPlanMagic, sizeof(kPlanMagic));
  put_u32(out, 8, kFormatVersion);
  put_u32(out, 12, static_cast<uint32_t>(kPlanHeaderSize));
  put_u64(out, 16, kPlanHeaderSize);
  put_u64(out, 24, meta_size);
  put_u64(out, 32, weights_offset);
  put_u64(out, 40, w.weights.size());
  put_u64(out, 48, file_size);
  put_u64(out, 56, fnv1a(fbb.GetBufferPointer(), meta_size));
  std::memcpy(out.data() + kPlanHeaderSize, fbb.GetBufferPointer(), meta_size);
  out += w.weights;
  return out;
}

Status save_plan(const Plan& plan, const std::string& path) {
  KILN_ASSIGN_OR_RETURN(std::string bytes, serialize_plan(plan));
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) return io_error("cannot write '{}'", tmp);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!f) return io_error("cannot write '{}' ({} bytes)", tmp, bytes.size());
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return io_error("cannot rename '{}' to '{}'", tmp, path);
  return Status::ok();
}

}  // namespace kiln::plan
