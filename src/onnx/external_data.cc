// External tensor data: TensorProto.external_data names a file relative to the
// model's folder ("location"), a byte offset and a length. The file must stay
// inside that folder: absolute paths, ".." components and symlinks leading out
// are rejected, so a model cannot make Kiln read arbitrary files.
#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <optional>
#include <vector>

#include "core/error.h"
#include "onnx/proto_convert.h"

namespace kiln::onnx {
namespace {

namespace fs = std::filesystem;

// A non-negative decimal integer, the whole string.
Result<uint64_t> parse_size(const std::string& text, std::string_view key, std::string_view what) {
  uint64_t v = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (text.empty() || ec != std::errc() || ptr != end) {
    return invalid_argument("{}: external data {} '{}' is not a non-negative integer", what, key, text);
  }
  return v;
}

// base_dir/location, after checking that it stays inside base_dir.
Result<fs::path> resolve_location(const std::string& base_dir, const std::string& location, std::string_view what) {
  if (location.empty()) return invalid_argument("{}: external data has an empty location", what);
  if (location.find('\0') != std::string::npos) {
    return invalid_argument("{}: external data location contains a NUL byte", what);
  }
  const fs::path rel(location);
  if (rel.is_absolute() || rel.has_root_name() || rel.has_root_directory()) {
    return invalid_argument("{}: external data location '{}' is an absolute path; it must be relative to the "
                            "model's folder", what, location);
  }
  for (const auto& part : rel) {
    if (part == "..") {
      return invalid_argument("{}: external data location '{}' leaves the model's folder", what, location);
    }
  }
  std::error_code ec;
  const fs::path base = fs::weakly_canonical(fs::path(base_dir), ec);
  if (ec) return io_error("{}: cannot resolve the model folder '{}': {}", what, base_dir, ec.message());
  const fs::path full = fs::weakly_canonical(base / rel, ec);
  if (ec) return io_error("{}: cannot resolve external data '{}': {}", what, location, ec.message());
  // Symlinks may still point elsewhere: compare the resolved paths.
  auto [b, f] = std::mismatch(base.begin(), base.end(), full.begin(), full.end());
  if (b != base.end()) {
    return invalid_argument("{}: external data location '{}' resolves to '{}', outside the model's folder", what,
                            location, full.string());
  }
  return full;
}

}  // namespace

Status read_external_data(const pb::TensorProto& p, const TensorSource& source, Tensor& out, std::string_view what) {
  if (source.base_dir.empty()) {
    return failed_precondition("{}: uses external data, which needs the model's folder; load the model from its "
                               "file instead of from bytes", what);
  }
  std::string location;
  uint64_t offset = 0;
  std::optional<uint64_t> length;
  for (const auto& entry : p.external_data()) {
    if (entry.key() == "location") {
      location = entry.value();
    } else if (entry.key() == "offset") {
      KILN_ASSIGN_OR_RETURN(offset, parse_size(entry.value(), "offset", what));
    } else if (entry.key() == "length") {
      KILN_ASSIGN_OR_RETURN(length, parse_size(entry.value(), "length", what));
    }
  }
  KILN_ASSIGN_OR_RETURN(fs::path path, resolve_location(source.base_dir, location, what));

  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (ec || !fs::exists(status)) {
    return not_found("{}: external data file '{}' not found (looked for {})", what, location, path.string());
  }
  if (!fs::is_regular_file(status)) {
    return invalid_argument("{}: external data '{}' is not a regular file", what, location);
  }
  const uint64_t file_size = fs::file_size(path, ec);
  if (ec) return io_error("{}: cannot read the size of external data file '{}': {}", what, location, ec.message());

  const uint64_t expected = packed_byte_size(out.dtype(), out.numel());
  if (length && *length != expected) {
    return invalid_argument("{}: external data length is {} bytes, but {}{} needs {}", what, *length,
                            data_type_name(out.dtype()), dims_to_string(out.dims()), expected);
  }
  if (offset > file_size || expected > file_size - offset) {
    return out_of_range("{}: external data file '{}' has {} bytes; offset {} + length {} runs past its end", what,
                        location, file_size, offset, expected);
  }
  if (expected == 0) return Status::ok();

  std::ifstream in(path, std::ios::binary);
  if (!in) return io_error("{}: cannot open external data file '{}'", what, location);
  in.seekg(static_cast<std::streamoff>(offset));
  // Plain types are read straight into the tensor; packed and bool data go
  // through decode_raw_bytes.
  const bool direct = bits_per_element(out.dtype()) >= 8 && out.dtype() != DataType::kBool;
  std::vector<uint8_t> buffer;
  char* dst = static_cast<char*>(out.raw_data());
  if (!direct) {
    buffer.resize(static_cast<size_t>(expected));
    dst = reinterpret_cast<char*>(buffer.data());
  }
  in.read(dst, static_cast<std::streamsize>(expected));
  if (!in || static_cast<uint64_t>(in.gcount()) != expected) {
    return io_error("{}: reading {} bytes at offset {} of external data file '{}' failed", what, expected, offset,
                    location);
  }
  if (!direct) return decode_raw_bytes(buffer.data(), expected, out, what);
  return Status::ok();
}

}  // namespace kiln::onnx
