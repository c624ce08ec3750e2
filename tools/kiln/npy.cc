#include "npy.h"

#include <fmt/format.h>

#include <bit>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <vector>

#include "core/error.h"

namespace kiln::cli {
namespace {

constexpr std::string_view kMagic = "\x93NUMPY";
static_assert(std::endian::native == std::endian::little, "the .npy code assumes a little-endian host");

// descr without its byte-order character -> Kiln type.
struct Descr {
  std::string_view code;
  DataType type;
};
constexpr Descr kDescrs[] = {
    {"b1", DataType::kBool},     {"i1", DataType::kInt8},       {"i2", DataType::kInt16},
    {"i4", DataType::kInt32},    {"i8", DataType::kInt64},      {"u1", DataType::kUInt8},
    {"u2", DataType::kUInt16},   {"u4", DataType::kUInt32},     {"u8", DataType::kUInt64},
    {"f2", DataType::kFloat16},  {"f4", DataType::kFloat32},    {"f8", DataType::kFloat64},
    {"c8", DataType::kComplex64}, {"c16", DataType::kComplex128},
};

// The header is a Python dict literal: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
struct Header {
  std::string descr;
  std::optional<bool> fortran_order;
  std::optional<Dims> shape;
};

class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& name) : s_(text), name_(name) {}

  Result<Header> parse() {
    Header h;
    skip_space();
    KILN_RETURN_IF_ERROR(expect('{'));
    while (true) {
      skip_space();
      if (peek() == '}') break;
      KILN_ASSIGN_OR_RETURN(std::string key, parse_string());
      skip_space();
      KILN_RETURN_IF_ERROR(expect(':'));
      skip_space();
      if (key == "descr") {
        KILN_ASSIGN_OR_RETURN(h.descr, parse_string());
      } else if (key == "fortran_order") {
        KILN_ASSIGN_OR_RETURN(bool b, parse_bool());
        h.fortran_order = b;
      } else if (key == "shape") {
        KILN_ASSIGN_OR_RETURN(Dims d, parse_shape());
        h.shape = std::move(d);
      } else {
        return error(fmt::format("unexpected key '{}' in the header", key));
      }
      skip_space();
      if (peek() == ',') ++pos_;
    }
    ++pos_;
    skip_space();
    if (pos_ != s_.size()) return error("unexpected text after the header dict");
    if (h.descr.empty()) return error("the header has no 'descr'");
    if (!h.fortran_order) return error("the header has no 'fortran_order'");
    if (!h.shape) return error("the header has no 'shape'");
    return h;
  }

 private:
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void skip_space() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\t')) ++pos_;
  }
  Status error(const std::string& what) const { return invalid_argument("{}: malformed .npy header: {}", name_, what); }
  Status expect(char c) {
    if (peek() != c) return error(fmt::format("expected '{}' at offset {}", c, pos_));
    ++pos_;
    return Status::ok();
  }
  Result<std::string> parse_string() {
    char quote = peek();
    if (quote != '\'' && quote != '"') return error(fmt::format("expected a quoted string at offset {}", pos_));
    size_t end = s_.find(quote, pos_ + 1);
    if (end == std::string_view::npos) return error("unterminated string");
    std::string out(s_.substr(pos_ + 1, end - pos_ - 1));
    pos_ = end + 1;
    return out;
  }
  Result<bool> parse_bool() {
    if (s_.substr(pos_, 4) == "True") {
      pos_ += 4;
      return true;
    }
    if (s_.substr(pos_, 5) == "False") {
      pos_ += 5;
      return false;
    }
    return error("fortran_order is neither True nor False");
  }
  Result<Dims> parse_shape() {
    KILN_RETURN_IF_ERROR(expect('('));
    Dims dims;
    while (true) {
      skip_space();
      if (peek() == ')') break;
      if (peek() < '0' || peek() > '9') return error(fmt::format("expected a dim at offset {}", pos_));
      int64_t v = 0;
      while (peek() >= '0' && peek() <= '9') {
        if (v > (int64_t{1} << 50)) return error("a dim is too large");
        v = v * 10 + (peek() - '0');
        ++pos_;
      }
      if (peek() == 'L') ++pos_;  // Python 2 longs
      dims.push_back(v);
      skip_space();
      if (peek() == ',') {
        ++pos_;
      } else if (peek() != ')') {
        return error(fmt::format("expected ',' or ')' in the shape at offset {}", pos_));
      }
    }
    ++pos_;
    return dims;
  }

  std::string_view s_;
  const std::string& name_;
  size_t pos_ = 0;
};

uint32_t read_le(std::string_view bytes, size_t offset, size_t n) {
  uint32_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= static_cast<uint32_t>(static_cast<unsigned char>(bytes[offset + i])) << (8 * i);
  return v;
}

// Appends the UTF-8 encoding of code point `cp`; false if it is not a valid scalar value.
bool append_utf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    if (cp >= 0xd800 && cp < 0xe000) return false;
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x110000) {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    return false;
  }
  return true;
}

// Decodes UTF-8 into code points; nullopt if invalid.
std::optional<std::vector<uint32_t>> decode_utf8(const std::string& s) {
  static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
  std::vector<uint32_t> out;
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t extra = 0;
    if (c < 0x80) {
      extra = 0;
    } else if ((c >> 5) == 0x6) {
      extra = 1;
    } else if ((c >> 4) == 0xe) {
      extra = 2;
    } else if ((c >> 3) == 0x1e) {
      extra = 3;
    } else {
      return std::nullopt;
    }
    if (s.size() - i <= extra) return std::nullopt;
    uint32_t cp = extra == 0 ? c : (c & (0x3fu >> extra));
    for (size_t k = 1; k <= extra; ++k) {
      auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xc0) != 0x80) return std::nullopt;
      cp = (cp << 6) | (d & 0x3fu);
    }
    if (cp < kMin[extra] || cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000)) return std::nullopt;
    out.push_back(cp);
    i += extra + 1;
  }
  return out;
}

Result<std::string> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return not_found("{}: cannot open file", path);
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) return io_error("{}: read failed", path);
  return std::move(ss).str();
}

}  // namespace

Result<Tensor> parse_npy(std::string_view bytes, const std::string& name) {
  if (bytes.size() < kMagic.size() + 2 || bytes.substr(0, kMagic.size()) != kMagic) {
    return invalid_argument("{}: not a .npy file (no \\x93NUMPY magic)", name);
  }
  int major = static_cast<unsigned char>(bytes[6]);
  if (major < 1 || major > 3) return invalid_argument("{}: unsupported .npy format version {}", name, major);
  size_t len_size = major == 1 ? 2 : 4;
  size_t header_start = 8 + len_size;
  if (bytes.size() < header_start) return invalid_argument("{}: truncated .npy file (in the header length)", name);
  size_t header_len = read_le(bytes, 8, len_size);
  if (bytes.size() < header_start + header_len) {
    return invalid_argument("{}: truncated .npy file: the header needs {} bytes, the file has {}", name, header_len,
                            bytes.size() - header_start);
  }
  HeaderParser parser(bytes.substr(header_start, header_len), name);
  KILN_ASSIGN_OR_RETURN(Header h, parser.parse());
  if (*h.fortran_order) {
    return invalid_argument("{}: Fortran-order arrays are not supported; save with np.ascontiguousarray", name);
  }
  KILN_ASSIGN_OR_RETURN(int64_t numel, checked_numel(*h.shape));
  if (h.descr.size() < 2) return invalid_argument("{}: unsupported dtype '{}'", name, h.descr);
  char order = h.descr[0];
  std::string code = h.descr.substr(1);
  if (order == '>') return invalid_argument("{}: big-endian dtype '{}' is not supported", name, h.descr);
  if (order != '<' && order != '|' && order != '=') return invalid_argument("{}: unsupported dtype '{}'", name, h.descr);
  if (code == "O") {
    return invalid_argument("{}: object arrays are pickled and cannot be read; save strings as a unicode array "
                            "(np.array(x, dtype=str))", name);
  }

  // Strings: fixed width, 'U' in UTF-32 code units, 'S' in bytes.
  int64_t width = 0;
  char string_kind = 0;
  DataType type = DataType::kUndefined;
  if (code[0] == 'U' || code[0] == 'S') {
    string_kind = code[0];
    std::string digits = code.substr(1);
    if (digits.empty() || digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) {
      return invalid_argument("{}: unsupported dtype '{}'", name, h.descr);
    }
    width = std::stoll(digits);
    type = DataType::kString;
  } else {
    for (const auto& d : kDescrs) {
      if (d.code == code) type = d.type;
    }
    if (type == DataType::kUndefined) return invalid_argument("{}: unsupported dtype '{}'", name, h.descr);
  }
  uint64_t item = type == DataType::kString ? static_cast<uint64_t>(width) * (string_kind == 'U' ? 4 : 1)
                                            : element_size(type);
  uint64_t expected = static_cast<uint64_t>(numel) * item;
  size_t data_start = header_start + header_len;
  uint64_t available = bytes.size() - data_start;
  if (available < expected) {
    return invalid_argument("{}: truncated .npy file: shape {} of '{}' needs {} bytes of data, the file has {}", name,
                            dims_to_string(*h.shape), h.descr, expected, available);
  }
  if (available > expected) {
    return invalid_argument("{}: {} unexpected bytes after the array data", name, available - expected);
  }
  KILN_ASSIGN_OR_RETURN(Tensor t, Tensor::allocate(type, *h.shape));
  const char* data = bytes.data() + data_start;
  if (type != DataType::kString) {
    if (expected > 0) std::memcpy(t.raw_data(), data, expected);
    if (type == DataType::kBool) {
      for (int64_t i = 0; i < numel; ++i) {
        if (static_cast<unsigned char>(data[i]) > 1) return invalid_argument("{}: bool element {} is not 0 or 1", name, i);
      }
    }
    return t;
  }
  auto* out = t.data<std::string>();
  for (int64_t i = 0; i < numel; ++i) {
    const char* p = data + static_cast<uint64_t>(i) * item;
    std::string& s = out[i];
    if (string_kind == 'S') {
      size_t n = static_cast<size_t>(width);
      while (n > 0 && p[n - 1] == '\0') --n;
      s.assign(p, n);
      continue;
    }
    int64_t n = width;
    while (n > 0 && read_le({p, static_cast<size_t>(item)}, static_cast<size_t>(n - 1) * 4, 4) == 0) --n;
    for (int64_t k = 0; k < n; ++k) {
      uint32_t cp = read_le({p, static_cast<size_t>(item)}, static_cast<size_t>(k) * 4, 4);
      if (!append_utf8(cp, s)) return invalid_argument("{}: element {} holds an invalid code point {:#x}", name, i, cp);
    }
  }
  return t;
}

Result<Tensor> read_npy(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(std::string bytes, read_file(path));
  return parse_npy(bytes, path);
}

Result<std::string> format_npy(const Tensor& tensor) {
  std::string descr;
  std::string payload;
  if (tensor.dtype() == DataType::kString) {
    std::vector<std::vector<uint32_t>> decoded;
    bool utf8 = true;
    size_t width = 0;
    for (const std::string& s : tensor.span<std::string>()) {
      auto cps = decode_utf8(s);
      if (!cps) {
        utf8 = false;
        break;
      }
      width = std::max(width, cps->size());
      decoded.push_back(std::move(*cps));
    }
    if (utf8) {
      width = std::max<size_t>(width, 1);
      descr = fmt::format("<U{}", width);
      payload.assign(decoded.size() * width * 4, '\0');
      for (size_t i = 0; i < decoded.size(); ++i) {
        for (size_t k = 0; k < decoded[i].size(); ++k) {
          uint32_t cp = decoded[i][k];
          std::memcpy(&payload[(i * width + k) * 4], &cp, 4);
        }
      }
    } else {
      width = 1;
      for (const std::string& s : tensor.span<std::string>()) width = std::max(width, s.size());
      descr = fmt::format("|S{}", width);
      payload.assign(static_cast<size_t>(tensor.numel()) * width, '\0');
      size_t i = 0;
      for (const std::string& s : tensor.span<std::string>()) std::memcpy(&payload[i++ * width], s.data(), s.size());
    }
  } else {
    for (const auto& d : kDescrs) {
      if (d.type == tensor.dtype()) descr = fmt::format("{}{}", element_size(d.type) == 1 ? '|' : '<', d.code);
    }
    if (descr.empty()) return unimplemented("type {} cannot be written to a .npy file", data_type_name(tensor.dtype()));
    payload.assign(static_cast<const char*>(tensor.raw_data()), tensor.nbytes());
  }
  // Python's tuple spelling: (), (3,), (2, 3).
  std::string shape = fmt::format("{}", fmt::join(tensor.dims(), ", "));
  if (tensor.rank() == 1) shape += ',';
  std::string dict = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': ({}), }}", descr, shape);
  // The header (magic + length + dict + padding + '\n') is a multiple of 64 bytes.
  bool v2 = dict.size() + 1 + 10 > 65535;
  size_t prefix = v2 ? 12 : 10;
  size_t total = (prefix + dict.size() + 1 + 63) / 64 * 64;
  dict.append(total - prefix - dict.size() - 1, ' ');
  dict += '\n';
  std::string out(kMagic);
  out += static_cast<char>(v2 ? 2 : 1);
  out += '\0';
  uint32_t len = static_cast<uint32_t>(dict.size());
  for (size_t i = 0; i < (v2 ? 4u : 2u); ++i) out += static_cast<char>((len >> (8 * i)) & 0xff);
  out += dict;
  out += payload;
  return out;
}

Status write_npy(const std::string& path, const Tensor& tensor) {
  KILN_ASSIGN_OR_RETURN(std::string bytes, format_npy(tensor));
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) return io_error("{}: cannot create file", path);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  f.close();
  if (!f) return io_error("{}: write failed", path);
  return Status::ok();
}

}  // namespace kiln::cli
