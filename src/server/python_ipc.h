// Frames between the server and a Python-backend process: two little-endian
// uint64 (header length, payload length), a JSON header, the payload. The
// payload holds tensors back to back in the wire layout of tensor_codec.h;
// the header describes each as {name, datatype, shape, offset, size}.
#pragma once

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <string>
#include <string_view>

#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::server {

struct IpcFrame {
  std::string header;
  std::string payload;
};

// Blocking; errors name what failed (a closed peer is Unavailable).
Status write_frame(int fd, std::string_view header, std::string_view payload);
Result<IpcFrame> read_frame(int fd);

using IpcWriter = rapidjson::Writer<rapidjson::StringBuffer>;
// Writes `t`'s description into the open JSON array of `w` and its bytes to `payload`.
void add_ipc_tensor(IpcWriter& w, std::string& payload, const std::string& name, const Tensor& t);
// Reads a tensor description of a reply; offsets and sizes are checked against `payload`.
Result<std::pair<std::string, Tensor>> read_ipc_tensor(const rapidjson::Value& desc, std::string_view payload);

}  // namespace kiln::server
