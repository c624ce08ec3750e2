// UTF-8 splitting and case mapping for the string ops (see string_util.h).
#include "ops/string_util.h"

namespace kiln::ops {
namespace {

// One decoded code point and the number of bytes it took; an invalid or
// truncated sequence decodes as one byte with cp = -1.
struct CodePoint {
  int32_t cp;
  size_t len;
};

CodePoint decode_at(std::string_view s, size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return {b0, 1};
  size_t len = 0;
  int32_t cp = 0;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2;
    cp = b0 & 0x1F;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3;
    cp = b0 & 0x0F;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4;
    cp = b0 & 0x07;
  } else {
    return {-1, 1};
  }
  if (i + len > s.size()) return {-1, 1};
  for (size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return {-1, 1};
    cp = (cp << 6) | (b & 0x3F);
  }
  // Reject overlong encodings, surrogates and values past U+10FFFF.
  static constexpr int32_t kMinForLen[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMinForLen[len] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return {-1, 1};
  return {cp, len};
}

void encode(int32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Python's str.isspace() code points.
bool is_space(int32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

// Latin Extended-A pairs: upper case is even in [0x100, 0x137] and
// [0x14A, 0x177], odd in [0x139, 0x148] and [0x179, 0x17E].
bool latin_a_upper(int32_t cp) {
  if ((cp >= 0x100 && cp <= 0x12F) || (cp >= 0x132 && cp <= 0x137) || (cp >= 0x14A && cp <= 0x177)) {
    return cp % 2 == 0;
  }
  if ((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17E)) return cp % 2 == 1;
  return false;
}
bool latin_a_lower(int32_t cp) {
  if ((cp >= 0x100 && cp <= 0x12F) || (cp >= 0x132 && cp <= 0x137) || (cp >= 0x14A && cp <= 0x177)) {
    return cp % 2 == 1;
  }
  if ((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17E)) return cp % 2 == 0;
  return false;
}

int32_t lower_cp(int32_t cp) {
  if (cp >= 'A' && cp <= 'Z') return cp + 32;
  if (cp < 0x80) return cp;
  if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) return cp + 32;
  if (latin_a_upper(cp)) return cp + 1;
  if (cp == 0x178) return 0xFF;
  if (cp >= 0x391 && cp <= 0x3A9 && cp != 0x3A2) return cp + 32;
  if (cp == 0x386) return 0x3AC;
  if (cp >= 0x388 && cp <= 0x38A) return cp + 37;
  if (cp == 0x38C) return 0x3CC;
  if (cp == 0x38E || cp == 0x38F) return cp + 63;
  if (cp >= 0x410 && cp <= 0x42F) return cp + 32;
  if (cp >= 0x400 && cp <= 0x40F) return cp + 80;
  return cp;
}

int32_t upper_cp(int32_t cp) {
  if (cp >= 'a' && cp <= 'z') return cp - 32;
  if (cp < 0x80) return cp;
  if (cp == 0xB5) return 0x39C;
  if (cp >= 0xE0 && cp <= 0xFE && cp != 0xF7) return cp - 32;
  if (cp == 0xFF) return 0x178;
  if (latin_a_lower(cp)) return cp - 1;
  if (cp == 0x3C2) return 0x3A3;
  if (cp >= 0x3B1 && cp <= 0x3C9) return cp - 32;
  if (cp == 0x3AC) return 0x386;
  if (cp >= 0x3AD && cp <= 0x3AF) return cp - 37;
  if (cp == 0x3CC) return 0x38C;
  if (cp == 0x3CD || cp == 0x3CE) return cp - 63;
  if (cp >= 0x430 && cp <= 0x44F) return cp - 32;
  if (cp >= 0x450 && cp <= 0x45F) return cp - 80;
  return cp;
}

template <class Map>
std::string map_code_points(std::string_view s, Map map) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    CodePoint c = decode_at(s, i);
    if (c.cp < 0) {
      out += s[i];
    } else {
      map(c.cp, out);
    }
    i += c.len;
  }
  return out;
}

}  // namespace

std::vector<std::string> split_whitespace(std::string_view s, int64_t maxsplit) {
  std::vector<std::string> out;
  size_t i = 0;
  auto space_at = [&](size_t k) {
    CodePoint c = decode_at(s, k);
    return std::make_pair(c.cp >= 0 && is_space(c.cp), c.len);
  };
  auto skip_space = [&] {
    while (i < s.size()) {
      auto [space, len] = space_at(i);
      if (!space) break;
      i += len;
    }
  };
  for (int64_t splits = 0; maxsplit < 0 || splits < maxsplit; ++splits) {
    skip_space();
    if (i == s.size()) break;
    size_t j = i;
    while (i < s.size()) {
      auto [space, len] = space_at(i);
      if (space) break;
      i += len;
    }
    out.emplace_back(s.substr(j, i - j));
  }
  if (i < s.size()) {  // the split limit was reached: the rest is one field
    skip_space();
    if (i < s.size()) out.emplace_back(s.substr(i));
  }
  return out;
}

std::vector<std::string> split_on(std::string_view s, std::string_view sep, int64_t maxsplit) {
  std::vector<std::string> out;
  size_t start = 0;
  for (int64_t splits = 0; maxsplit < 0 || splits < maxsplit; ++splits) {
    size_t pos = s.find(sep, start);
    if (pos == std::string_view::npos) break;
    out.emplace_back(s.substr(start, pos - start));
    start = pos + sep.size();
  }
  out.emplace_back(s.substr(start));
  return out;
}

std::string utf8_lower(std::string_view s) {
  return map_code_points(s, [](int32_t cp, std::string& out) { encode(lower_cp(cp), out); });
}

std::string utf8_upper(std::string_view s) {
  return map_code_points(s, [](int32_t cp, std::string& out) {
    if (cp == 0xDF) {
      out += "SS";
    } else {
      encode(upper_cp(cp), out);
    }
  });
}

}  // namespace kiln::ops
