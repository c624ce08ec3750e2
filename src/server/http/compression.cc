#include "server/http/compression.h"

#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <vector>

#include "core/error.h"

namespace kiln::server {
namespace {

std::string trim_lower(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

// zlib window bits: 15 + 16 selects the gzip wrapper, 15 the zlib one.
int window_bits(Encoding e) { return e == Encoding::kGzip ? 15 + 16 : 15; }

}  // namespace

Result<Encoding> parse_content_encoding(std::string_view value) {
  std::string v = trim_lower(value);
  if (v.empty() || v == "identity") return Encoding::kIdentity;
  if (v == "gzip") return Encoding::kGzip;
  if (v == "deflate") return Encoding::kDeflate;
  return unimplemented("Unsupported compression type '{}' (gzip, deflate or identity)", v);
}

Encoding choose_response_encoding(std::string_view accept) {
  Encoding best = Encoding::kIdentity;
  double best_q = 0.0;
  size_t pos = 0;
  while (pos <= accept.size()) {
    size_t end = accept.find(',', pos);
    if (end == std::string_view::npos) end = accept.size();
    std::string_view item = accept.substr(pos, end - pos);
    pos = end + 1;
    double q = 1.0;
    size_t semi = item.find(';');
    std::string name = trim_lower(item.substr(0, semi));
    if (semi != std::string_view::npos) {
      std::string param = trim_lower(item.substr(semi + 1));
      if (param.rfind("q=", 0) == 0) q = std::strtod(param.c_str() + 2, nullptr);
    }
    Encoding e;
    if (name == "gzip") {
      e = Encoding::kGzip;
    } else if (name == "deflate") {
      e = Encoding::kDeflate;
    } else {
      continue;
    }
    if (q > best_q) {
      best = e;
      best_q = q;
    }
  }
  return best;
}

const char* encoding_name(Encoding encoding) {
  switch (encoding) {
    case Encoding::kGzip:
      return "gzip";
    case Encoding::kDeflate:
      return "deflate";
    default:
      return "identity";
  }
}

Result<std::string> decompress(std::string_view data, Encoding encoding, size_t max_bytes) {
  if (encoding == Encoding::kIdentity) return std::string(data);
  z_stream zs{};
  if (inflateInit2(&zs, window_bits(encoding)) != Z_OK) return internal_error("zlib inflateInit failed");
  std::string out;
  std::vector<char> chunk(64 * 1024);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    zs.next_out = reinterpret_cast<Bytef*>(chunk.data());
    zs.avail_out = static_cast<uInt>(chunk.size());
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      inflateEnd(&zs);
      return invalid_argument("cannot decompress the {} request body: {}", encoding_name(encoding),
                              zs.msg ? zs.msg : "corrupt or truncated data");
    }
    out.append(chunk.data(), chunk.size() - zs.avail_out);
    if (out.size() > max_bytes) {
      inflateEnd(&zs);
      return invalid_argument("decompressed request body is larger than the server's limit of {} bytes", max_bytes);
    }
    if (rc == Z_OK && zs.avail_in == 0 && zs.avail_out != 0) {
      inflateEnd(&zs);
      return invalid_argument("cannot decompress the {} request body: truncated data", encoding_name(encoding));
    }
  }
  inflateEnd(&zs);
  return out;
}

Result<std::string> compress(std::string_view data, Encoding encoding) {
  if (encoding == Encoding::kIdentity) return std::string(data);
  z_stream zs{};
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, window_bits(encoding), 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return internal_error("zlib deflateInit failed");
  }
  std::string out(deflateBound(&zs, static_cast<uLong>(data.size())), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&zs, Z_FINISH);
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) return internal_error("zlib deflate failed");
  out.resize(zs.total_out);
  return out;
}

}  // namespace kiln::server
