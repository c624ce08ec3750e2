// Plan files, the reading half. Every number read from the file is checked
// before use; see plan_file.h for the layout.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "core/error.h"
#include "plan/plan_file.h"
#include "plan/plan_format.h"
#include "plan/plan_generated.h"
#include "plan/target.h"

namespace kiln::plan {
namespace {

// A copy of a FlatBuffers vector of scalars. The verifier checks only that a
// vector's length field is 4-byte aligned, so a corrupt plan can place a
// vector of 8-byte scalars off their alignment; memcpy reads them safely.
template <class T>
std::vector<T> scalars_of(const flatbuffers::Vector<T>* v) {
  std::vector<T> out(v != nullptr ? v->size() : 0);
  if (!out.empty()) std::memcpy(out.data(), v->Data(), out.size() * sizeof(T));
  return out;
}

namespace fbs = ::kiln::plan::fb;

constexpr int kMaxDepth = 64;  // nesting of subgraphs and types

uint32_t get_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint64_t get_u64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

std::string str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }

class Reader {
 public:
  Reader(const uint8_t* weights, uint64_t size, std::shared_ptr<void> owner)
      : weights_(weights), size_(size), owner_(std::move(owner)) {}

  Result<Tensor> tensor(const fbs::TensorData* t, const std::string& what) {
    if (t == nullptr) return invalid_argument("{}: missing tensor", what);
    auto dtype = data_type_from_int(t->dtype());
    if (!dtype) return invalid_argument("{}: unknown element type {}", what, t->dtype());
    Dims dims = scalars_of(t->dims());
    auto numel = checked_numel(dims);
    if (!numel.is_ok()) return std::move(numel).status().with_context(what);
    if (*dtype == DataType::kString) {
      KILN_ASSIGN_OR_RETURN(Tensor out, Tensor::allocate(*dtype, dims));
      const auto* strs = t->strings();
      const int64_t have = strs ? static_cast<int64_t>(strs->size()) : 0;
      if (have != *numel) return invalid_argument("{}: {} strings for {} elements", what, have, *numel);
      for (int64_t i = 0; i < *numel; ++i) out.data<std::string>()[i] = strs->Get(static_cast<uint32_t>(i))->str();
      return out;
    }
    const uint64_t nbytes = static_cast<uint64_t>(*numel) * element_size(*dtype);
    if (t->nbytes() != nbytes) {
      return invalid_argument("{}: {} bytes recorded for {}{} ({} expected)", what, t->nbytes(),
                              data_type_name(*dtype), dims_to_string(dims), nbytes);
    }
    if (nbytes == 0) return Tensor::allocate(*dtype, dims);
    if (t->offset() % kWeightAlignment != 0 || t->offset() > size_ || nbytes > size_ - t->offset()) {
      return invalid_argument("{}: bytes [{}, {}) lie outside the weight section ({} bytes) or are misaligned", what,
                              t->offset(), t->offset() + nbytes, size_);
    }
    return Tensor::wrap(*dtype, std::move(dims), const_cast<uint8_t*>(weights_ + t->offset()), owner_);
  }

  Result<ir::ValueType> type(const fbs::ValueType* t, int depth) {
    ir::ValueType out;
    if (t == nullptr) return out;
    if (depth > kMaxDepth) return invalid_argument("types nested deeper than {}", kMaxDepth);
    if (t->kind() < 0 || t->kind() > static_cast<int8_t>(ir::ValueType::Kind::kSparseTensor)) {
      return invalid_argument("unknown value kind {}", t->kind());
    }
    out.kind = static_cast<ir::ValueType::Kind>(t->kind());
    if (t->dtype() != 0) {
      auto dt = data_type_from_int(t->dtype());
      if (!dt) return invalid_argument("unknown element type {}", t->dtype());
      out.dtype = *dt;
    }
    if (t->rank_known()) {
      std::vector<Dim> dims;
      if (t->dims()) {
        for (const fbs::Dim* d : *t->dims()) {
          Dim x;
          x.value = d->value() < 0 ? -1 : d->value();
          x.symbol = str(d->symbol());
          dims.push_back(std::move(x));
        }
      }
      out.shape = Shape(std::move(dims));
    }
    if (t->elem()) {
      KILN_ASSIGN_OR_RETURN(ir::ValueType elem, type(t->elem(), depth + 1));
      out.elem = std::make_shared<const ir::ValueType>(std::move(elem));
    }
    return out;
  }

  Result<ir::Attribute> attribute(const fbs::Attribute* a, ir::Graph* owner, int depth) {
    ir::Attribute out;
    out.name = str(a->name());
    if (a->kind() < 0 || a->kind() > static_cast<int8_t>(ir::Attribute::Kind::kSparseTensor)) {
      return invalid_argument("attribute '{}': unknown kind {}", out.name, a->kind());
    }
    out.kind = static_cast<ir::Attribute::Kind>(a->kind());
    out.f = a->f();
    out.i = a->i();
    if (a->s()) out.s.assign(reinterpret_cast<const char*>(a->s()->data()), a->s()->size());
    const std::string what = "attribute '" + out.name + "'";
    if (a->t()) {
      KILN_ASSIGN_OR_RETURN(out.t, tensor(a->t(), what));
    }
    if (a->g()) {
      KILN_ASSIGN_OR_RETURN(out.g, graph(a->g(), owner, depth + 1));
    }
    if (a->floats()) out.floats.assign(a->floats()->begin(), a->floats()->end());
    if (a->ints()) out.ints = scalars_of(a->ints());
    if (a->strings()) {
      for (const auto* s : *a->strings()) out.strings.push_back(s->str());
    }
    if (a->tensors()) {
      for (const auto* t : *a->tensors()) {
        KILN_ASSIGN_OR_RETURN(Tensor x, tensor(t, what));
        out.tensors.push_back(std::move(x));
      }
    }
    if (a->graphs()) {
      for (const auto* g : *a->graphs()) {
        KILN_ASSIGN_OR_RETURN(auto x, graph(g, owner, depth + 1));
        out.graphs.push_back(std::move(x));
      }
    }
    if (a->types()) {
      for (const auto* t : *a->types()) {
        KILN_ASSIGN_OR_RETURN(auto x, type(t, depth + 1));
        out.types.push_back(std::move(x));
      }
    }
    return out;
  }

  Result<std::shared_ptr<ir::Graph>> graph(const fbs::Graph* fg, ir::Graph* parent, int depth) {
    if (depth > kMaxDepth) return invalid_argument("subgraphs nested deeper than {}", kMaxDepth);
    auto g = std::make_shared<ir::Graph>(str(fg->name()), parent);
    std::vector<ir::Value*> values;
    std::vector<bool> is_input;
    const size_t nvalues = fg->values() ? fg->values()->size() : 0;
    is_input.assign(nvalues, false);
    if (fg->inputs()) {
      for (int32_t i : *fg->inputs()) {
        if (i < 0 || static_cast<size_t>(i) >= nvalues) return invalid_argument("graph input index {} out of range", i);
        is_input[static_cast<size_t>(i)] = true;
      }
    }
    for (size_t i = 0; i < nvalues; ++i) {
      const fbs::Value* fv = fg->values()->Get(static_cast<uint32_t>(i));
      std::string name = str(fv->name());
      KILN_ASSIGN_OR_RETURN(ir::ValueType ty, type(fv->type(), 0));
      ir::Value* v = nullptr;
      if (fv->capture()) {
        KILN_ASSIGN_OR_RETURN(v, g->add_capture(name, ty));
      } else if (fv->constant() && !is_input[i]) {
        KILN_ASSIGN_OR_RETURN(Tensor t, tensor(fv->constant(), "constant '" + name + "'"));
        KILN_ASSIGN_OR_RETURN(v, g->add_constant(name, std::move(t)));
        v->set_type(std::move(ty));
      } else {
        KILN_ASSIGN_OR_RETURN(v, g->add_value(name, ty));
        if (fv->constant()) {
          KILN_ASSIGN_OR_RETURN(Tensor t, tensor(fv->constant(), "input '" + name + "'"));
          v->set_constant(std::move(t));
        }
      }
      values.push_back(v);
    }
    auto lookup = [&](int32_t i, bool allow_none) -> Result<ir::Value*> {
      if (i == -1 && allow_none) return static_cast<ir::Value*>(nullptr);
      if (i < 0 || static_cast<size_t>(i) >= values.size()) return invalid_argument("value index {} out of range", i);
      return values[static_cast<size_t>(i)];
    };
    if (fg->inputs()) {
      for (int32_t i : *fg->inputs()) g->add_input(values[static_cast<size_t>(i)]);
    }
    if (fg->nodes()) {
      for (const fbs::Node* fn : *fg->nodes()) {
        std::vector<ir::Value*> ins, outs;
        if (fn->inputs()) {
          for (int32_t i : *fn->inputs()) {
            KILN_ASSIGN_OR_RETURN(ir::Value * v, lookup(i, true));
            ins.push_back(v);
          }
        }
        const std::string name = str(fn->name());
        if (fn->outputs()) {
          for (int32_t i : *fn->outputs()) {
            KILN_ASSIGN_OR_RETURN(ir::Value * v, lookup(i, true));
            if (v != nullptr && (v->producer() != nullptr || v->is_graph_input() || v->is_constant() ||
                                 v->is_capture() || std::find(outs.begin(), outs.end(), v) != outs.end())) {
              return invalid_argument("node '{}': output '{}' is defined twice", name, v->name());
            }
            outs.push_back(v);
          }
        }
        ir::Node* n = g->add_node(str(fn->op_type()), std::move(ins), std::move(outs), name, str(fn->domain()));
        n->set_opset(fn->opset());
        if (fn->attributes()) {
          for (const fbs::Attribute* fa : *fn->attributes()) {
            KILN_ASSIGN_OR_RETURN(ir::Attribute a, attribute(fa, g.get(), depth));
            n->set_attr(std::move(a));
          }
        }
      }
    }
    std::vector<ir::Value*> outs;
    if (fg->outputs()) {
      for (int32_t i : *fg->outputs()) {
        KILN_ASSIGN_OR_RETURN(ir::Value * v, lookup(i, false));
        outs.push_back(v);
      }
    }
    g->set_outputs(std::move(outs));
    return g;
  }

 private:
  const uint8_t* weights_;
  uint64_t size_;
  std::shared_ptr<void> owner_;
};

// The lowering of every top-level node; kernel state inline (format 1) or
// in the weight section [weights, weights + w_size) (format 2).
Status read_layers(const fbs::Graph* fg, const uint8_t* weights, uint64_t w_size, Plan& plan) {
  if (!fg->nodes()) return Status::ok();
  for (const fbs::Node* fn : *fg->nodes()) {
    Layer layer;
    layer.tactic = str(fn->tactic());
    if (layer.tactic.empty()) return invalid_argument("node '{}' has no tactic", str(fn->name()));
    if (fn->kernel_state()) layer.state.assign(fn->kernel_state()->begin(), fn->kernel_state()->end());
    if (const uint64_t n = fn->state_nbytes(); n > 0) {
      const uint64_t off = fn->state_offset();
      if (off > w_size || n > w_size - off) {
        return invalid_argument("corrupt plan: the kernel state of node '{}' ({} bytes at offset {}) lies outside the "
                                "{}-byte weight section",
                                str(fn->name()), n, off, w_size);
      }
      layer.state.assign(weights + off, weights + off + n);
    }
    layer.time_ms = fn->time_ms();
    layer.candidates = fn->candidates();
    plan.layers.push_back(std::move(layer));
  }
  return Status::ok();
}

Result<Plan> read(const uint8_t* data, size_t size, std::shared_ptr<void> owner, const LoadOptions& options) {
  if (size < kPlanHeaderSize) {
    return invalid_argument("truncated plan: {} bytes, shorter than the {}-byte header", size, kPlanHeaderSize);
  }
  if (std::memcmp(data, kPlanMagic, sizeof(kPlanMagic)) != 0) return invalid_argument("not a Kiln plan (bad magic)");
  const uint32_t version = get_u32(data + 8);
  if (version > kFormatVersion) {
    return failed_precondition("plan format version {} is newer than this Kiln reads (up to {}); rebuild the plan "
                               "with this Kiln ({}) or upgrade Kiln",
                               version, kFormatVersion, kiln_version());
  }
  if (version == 0) return invalid_argument("corrupt plan: format version 0");
  const uint64_t meta_off = get_u64(data + 16), meta_size = get_u64(data + 24);
  const uint64_t w_off = get_u64(data + 32), w_size = get_u64(data + 40), file_size = get_u64(data + 48);
  if (file_size != size) {
    return invalid_argument("{} plan: the header says {} bytes, the file has {}",
                            size < file_size ? "truncated" : "corrupt", file_size, size);
  }
  if (get_u32(data + 12) != kPlanHeaderSize || meta_off != kPlanHeaderSize || meta_size > size - meta_off ||
      w_off < meta_off + meta_size || w_off > size || w_size != size - w_off || w_off % kWeightAlignment != 0) {
    return invalid_argument("corrupt plan: section offsets do not fit the file ({} bytes)", size);
  }
  const uint8_t* meta = data + meta_off;
  if (fnv1a(meta, meta_size) != get_u64(data + 56)) return invalid_argument("corrupt plan: metadata checksum mismatch");
  flatbuffers::Verifier verifier(meta, meta_size, kMaxDepth * 4, 50'000'000);
  if (!fbs::VerifyPlanBuffer(verifier)) return invalid_argument("corrupt plan: the metadata does not verify");
  const fbs::Plan* fp = fbs::GetPlan(meta);

  Plan plan;
  plan.kiln_version = str(fp->kiln_version());
  plan.target.arch = str(fp->arch());
  if (fp->isa()) {
    for (const auto* s : *fp->isa()) plan.target.isa.push_back(s->str());
  }
  if (fp->required_isa()) {
    for (const auto* s : *fp->required_isa()) plan.target.required.push_back(s->str());
  }
  if (options.check_target) {
    Status st = check_target(plan.target);
    if (!st.is_ok()) return std::move(st).with_context(fmt::format("plan built by Kiln {}", plan.kiln_version));
  }
  if (fp->libraries()) {
    for (const auto* kv : *fp->libraries()) plan.libraries[str(kv->key())] = str(kv->value());
  }
  plan.precision = str(fp->precision());
  plan.threads = fp->threads();
  plan.onnx_nodes = fp->onnx_nodes();
  plan.model.ir_version = fp->ir_version();
  plan.model.producer_name = str(fp->producer_name());
  plan.model.producer_version = str(fp->producer_version());
  if (fp->metadata()) {
    for (const auto* kv : *fp->metadata()) plan.model.metadata[str(kv->key())] = str(kv->value());
  }
  if (!fp->graph()) return invalid_argument("corrupt plan: no graph");
  Reader reader(data + w_off, w_size, owner);
  KILN_ASSIGN_OR_RETURN(plan.model.graph, reader.graph(fp->graph(), nullptr, 0));
  std::map<std::string, int64_t> opsets;
  if (fp->opsets()) {
    for (const auto* kv : *fp->opsets()) {
      try {
        opsets[str(kv->key())] = std::stoll(str(kv->value()));
      } catch (const std::exception&) {
        return invalid_argument("corrupt plan: opset '{}' of domain '{}'", str(kv->value()), str(kv->key()));
      }
    }
  }
  plan.model.graph->set_opset_imports(std::move(opsets));
  KILN_RETURN_IF_ERROR(plan.model.graph->verify().with_context("plan graph"));
  KILN_RETURN_IF_ERROR(read_layers(fp->graph(), data + w_off, w_size, plan));
  plan.memory.arena_bytes = fp->arena_bytes();
  plan.memory.naive_bytes = fp->naive_bytes();
  plan.memory.in_place = fp->in_place();
  plan.memory.views = fp->views();
  plan.memory.concats = fp->concats();
  if (fp->blocks()) {
    for (const auto* b : *fp->blocks()) {
      if (b->kind() < 0 || b->kind() > static_cast<int8_t>(BlockKind::kConcat) || b->offset() < 0 || b->size() < 0 ||
          b->offset() > plan.memory.arena_bytes || b->size() > plan.memory.arena_bytes - b->offset()) {
        return invalid_argument("corrupt plan: memory block of '{}' outside the {}-byte arena", str(b->value()),
                                plan.memory.arena_bytes);
      }
      plan.memory.blocks.push_back({str(b->value()), b->offset(), b->size(), static_cast<BlockKind>(b->kind())});
    }
  }
  if (fp->profiles()) {
    for (const auto* p : *fp->profiles()) {
      InputProfile prof{str(p->input()), scalars_of(p->min()), scalars_of(p->opt()), scalars_of(p->max())};
      bool ok = prof.min.size() == prof.opt.size() && prof.min.size() == prof.max.size();
      for (size_t i = 0; ok && i < prof.min.size(); ++i) {
        ok = prof.min[i] >= 0 && prof.min[i] <= prof.opt[i] && prof.opt[i] <= prof.max[i];
      }
      if (!ok) {
        return invalid_argument("corrupt plan: the shape profile of input '{}' is not min <= opt <= max of one rank",
                                prof.name);
      }
      plan.profiles.push_back(std::move(prof));
    }
  }
  plan.mapping = std::move(owner);
  return plan;
}

}  // namespace

bool has_plan_magic(std::string_view bytes) {
  return bytes.size() >= sizeof(kPlanMagic) && std::memcmp(bytes.data(), kPlanMagic, sizeof(kPlanMagic)) == 0;
}

bool is_plan_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  char head[sizeof(kPlanMagic)] = {};
  if (!f.read(head, sizeof(head))) return false;
  return has_plan_magic(std::string_view(head, sizeof(head)));
}

Result<Plan> load_plan_bytes(const uint8_t* data, size_t size, std::shared_ptr<void> owner, const std::string& name,
                             const LoadOptions& options) {
  auto plan = read(data, size, std::move(owner), options);
  if (!plan.is_ok()) return std::move(plan).status().with_context(name);
  plan->model.source_path = name;
  return plan;
}

Result<Plan> load_plan(const std::string& path, const LoadOptions& options) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return not_found("cannot open plan '{}': {}", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return invalid_argument("'{}' is not a regular file", path);
  }
  const size_t size = static_cast<size_t>(st.st_size);
  if (size < kPlanHeaderSize) {
    ::close(fd);
    return invalid_argument("{}: truncated plan: {} bytes, shorter than the {}-byte header", path, size,
                            kPlanHeaderSize);
  }
  // Private and writable: pages are shared with the page cache until written
  // (no kernel writes its inputs, but a stray write must not fault).
  void* map = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return io_error("cannot map plan '{}': {}", path, std::strerror(errno));
  std::shared_ptr<void> owner(map, [size](void* p) { ::munmap(p, size); });
  return load_plan_bytes(static_cast<const uint8_t*>(map), size, std::move(owner), path, options);
}

}  // namespace kiln::plan
