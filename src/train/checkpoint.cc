#include "train/checkpoint.h"

#include <cstring>
#include <fstream>
#include <iterator>

#include "core/error.h"

namespace kiln::train {

namespace {

constexpr char kMagic[8] = {'K', 'I', 'L', 'N', 'C', 'K', 'P', 'T'};
constexpr uint32_t kVersion = 1;

template <class T>
void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

class Reader {
 public:
  explicit Reader(const std::string& data) : data_(data) {}
  template <class T>
  Result<T> get(const char* what) {
    if (data_.size() - pos_ < sizeof(T)) return invalid_argument("checkpoint truncated reading {}", what);
    T v;
    std::memcpy(&v, data_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  Result<std::string> bytes(uint64_t n, const char* what) {
    if (data_.size() - pos_ < n) return invalid_argument("checkpoint truncated reading {}", what);
    std::string s = data_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  bool done() const { return pos_ == data_.size(); }

 private:
  const std::string& data_;
  size_t pos_ = 0;
};

}  // namespace

Status save_tensors(const std::string& path, const TensorMap& tensors) {
  std::string out(kMagic, sizeof(kMagic));
  put<uint32_t>(out, kVersion);
  put<uint64_t>(out, tensors.size());
  for (const auto& [name, t] : tensors) {
    if (t.dtype() == DataType::kString) return invalid_argument("checkpoint entry '{}': string tensors not supported", name);
    put<uint32_t>(out, static_cast<uint32_t>(name.size()));
    out += name;
    put<int32_t>(out, static_cast<int32_t>(t.dtype()));
    put<uint32_t>(out, static_cast<uint32_t>(t.rank()));
    for (int64_t d : t.dims()) put<int64_t>(out, d);
    put<uint64_t>(out, t.nbytes());
    out.append(static_cast<const char*>(t.raw_data()), t.nbytes());
  }
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) return io_error("cannot write checkpoint '{}'", tmp);
    f.write(out.data(), static_cast<std::streamsize>(out.size()));
    if (!f) return io_error("writing checkpoint '{}' failed", tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return io_error("cannot move checkpoint into '{}'", path);
  return Status::ok();
}

Result<TensorMap> load_tensors(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return not_found("checkpoint '{}' not found", path);
  std::string data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  Reader r(data);
  KILN_ASSIGN_OR_RETURN(std::string magic, r.bytes(sizeof(kMagic), "magic"));
  if (magic != std::string(kMagic, sizeof(kMagic))) return invalid_argument("'{}' is not a Kiln checkpoint", path);
  KILN_ASSIGN_OR_RETURN(uint32_t version, r.get<uint32_t>("version"));
  if (version != kVersion) return invalid_argument("checkpoint '{}' has version {}, expected {}", path, version, kVersion);
  KILN_ASSIGN_OR_RETURN(uint64_t count, r.get<uint64_t>("entry count"));
  TensorMap out;
  for (uint64_t e = 0; e < count; ++e) {
    KILN_ASSIGN_OR_RETURN(uint32_t name_len, r.get<uint32_t>("name length"));
    KILN_ASSIGN_OR_RETURN(std::string name, r.bytes(name_len, "name"));
    KILN_ASSIGN_OR_RETURN(int32_t dtype, r.get<int32_t>("dtype"));
    KILN_ASSIGN_OR_RETURN(uint32_t rank, r.get<uint32_t>("rank"));
    if (rank > 16) return invalid_argument("checkpoint entry '{}' has rank {}", name, rank);
    Dims dims;
    for (uint32_t i = 0; i < rank; ++i) {
      KILN_ASSIGN_OR_RETURN(int64_t d, r.get<int64_t>("dim"));
      dims.push_back(d);
    }
    DataType dt = static_cast<DataType>(dtype);
    if (dt != DataType::kFloat32 && dt != DataType::kFloat64 && dt != DataType::kInt64 && dt != DataType::kInt32) {
      return invalid_argument("checkpoint entry '{}' has unsupported dtype {}", name, dtype);
    }
    KILN_ASSIGN_OR_RETURN(uint64_t nbytes, r.get<uint64_t>("size"));
    auto t = Tensor::allocate(dt, dims);
    if (!t.is_ok()) return t.status().with_context("checkpoint entry '" + name + "'");
    if (t->nbytes() != nbytes) return invalid_argument("checkpoint entry '{}' holds {} bytes for {}", name, nbytes, t->debug_string());
    KILN_ASSIGN_OR_RETURN(std::string raw, r.bytes(nbytes, "tensor data"));
    std::memcpy(t->raw_data(), raw.data(), nbytes);
    out[name] = std::move(t).value();
  }
  if (!r.done()) return invalid_argument("checkpoint '{}' has trailing bytes", path);
  return out;
}

}  // namespace kiln::train
