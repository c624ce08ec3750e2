#include "server/python_ipc.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "server/tensor_codec.h"
#include "server/types.h"

namespace kiln::server {
namespace {

constexpr uint64_t kMaxHeader = uint64_t{64} << 20;
constexpr uint64_t kMaxPayload = uint64_t{16} << 30;

Status write_all(int fd, const char* data, size_t n) {
  while (n > 0) {
    ssize_t k = send(fd, data, n, MSG_NOSIGNAL);
    if (k < 0) {
      if (errno == EINTR) continue;
      return unavailable("writing to the Python process failed: {}", std::strerror(errno));
    }
    data += k;
    n -= static_cast<size_t>(k);
  }
  return Status::ok();
}

Status read_all(int fd, char* data, size_t n) {
  while (n > 0) {
    ssize_t k = recv(fd, data, n, 0);
    if (k == 0) return unavailable("the Python process closed its connection");
    if (k < 0) {
      if (errno == EINTR) continue;
      return unavailable("reading from the Python process failed: {}", std::strerror(errno));
    }
    data += k;
    n -= static_cast<size_t>(k);
  }
  return Status::ok();
}

void put_u64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

uint64_t get_u64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

}  // namespace

Status write_frame(int fd, std::string_view header, std::string_view payload) {
  char prefix[16];
  put_u64(prefix, header.size());
  put_u64(prefix + 8, payload.size());
  KILN_RETURN_IF_ERROR(write_all(fd, prefix, sizeof(prefix)));
  KILN_RETURN_IF_ERROR(write_all(fd, header.data(), header.size()));
  return write_all(fd, payload.data(), payload.size());
}

Result<IpcFrame> read_frame(int fd) {
  char prefix[16];
  KILN_RETURN_IF_ERROR(read_all(fd, prefix, sizeof(prefix)));
  uint64_t header_len = get_u64(prefix);
  uint64_t payload_len = get_u64(prefix + 8);
  if (header_len > kMaxHeader || payload_len > kMaxPayload) {
    return internal_error("the Python process sent a frame of {} + {} bytes, over the limits", header_len, payload_len);
  }
  IpcFrame frame;
  frame.header.resize(header_len);
  frame.payload.resize(payload_len);
  KILN_RETURN_IF_ERROR(read_all(fd, frame.header.data(), header_len));
  KILN_RETURN_IF_ERROR(read_all(fd, frame.payload.data(), payload_len));
  return frame;
}

void add_ipc_tensor(IpcWriter& w, std::string& payload, const std::string& name, const Tensor& t) {
  size_t offset = payload.size();
  size_t size = append_raw(t, payload);
  w.StartObject();
  w.Key("name");
  w.String(name.data(), static_cast<rapidjson::SizeType>(name.size()));
  w.Key("datatype");
  std::string_view dt = protocol_dtype_name(t.dtype());
  w.String(dt.data(), static_cast<rapidjson::SizeType>(dt.size()));
  w.Key("shape");
  w.StartArray();
  for (int64_t d : t.dims()) w.Int64(d);
  w.EndArray();
  w.Key("offset");
  w.Uint64(offset);
  w.Key("size");
  w.Uint64(size);
  w.EndObject();
}

Result<std::pair<std::string, Tensor>> read_ipc_tensor(const rapidjson::Value& desc, std::string_view payload) {
  if (!desc.IsObject()) return internal_error("the Python process sent a tensor description that is not an object");
  auto name = desc.FindMember("name");
  auto dt = desc.FindMember("datatype");
  auto shape = desc.FindMember("shape");
  auto offset = desc.FindMember("offset");
  auto size = desc.FindMember("size");
  if (name == desc.MemberEnd() || !name->value.IsString() || dt == desc.MemberEnd() || !dt->value.IsString() ||
      shape == desc.MemberEnd() || !shape->value.IsArray() || offset == desc.MemberEnd() ||
      !offset->value.IsUint64() || size == desc.MemberEnd() || !size->value.IsUint64()) {
    return internal_error("the Python process sent a malformed tensor description");
  }
  std::string tensor_name = name->value.GetString();
  std::optional<DataType> dtype = dtype_from_protocol(dt->value.GetString());
  if (!dtype) return invalid_argument("output '{}' has datatype {}, which Kiln cannot carry", tensor_name, dt->value.GetString());
  std::vector<int64_t> dims;
  for (const auto& d : shape->value.GetArray()) {
    if (!d.IsInt64() || d.GetInt64() < 0) return internal_error("output '{}' has a bad shape", tensor_name);
    dims.push_back(d.GetInt64());
  }
  uint64_t off = offset->value.GetUint64();
  uint64_t n = size->value.GetUint64();
  if (off > payload.size() || n > payload.size() - off) {
    return internal_error("output '{}' lies outside the Python process's reply", tensor_name);
  }
  KILN_ASSIGN_OR_RETURN(Tensor t, tensor_from_raw(tensor_name, *dtype, dims, payload.substr(off, n)));
  return std::make_pair(std::move(tensor_name), std::move(t));
}

}  // namespace kiln::server
