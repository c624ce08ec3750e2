// Helpers of the string op family (string.cc, string_tfidf.cc): UTF-8 aware
// splitting and case mapping with Python's str semantics, which ONNX's
// reference implementation of the string ops uses.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::ops {

class Registry;

// Python's s.split(None, maxsplit): runs of whitespace separate fields and
// leading/trailing whitespace is dropped; after `maxsplit` splits (negative:
// no limit) the rest of the string, leading whitespace removed, is the last
// field. Whitespace is what Python's str.isspace() accepts, decoded from
// UTF-8 (bytes that are not valid UTF-8 are never whitespace).
std::vector<std::string> split_whitespace(std::string_view s, int64_t maxsplit);

// Python's s.split(sep, maxsplit) for a non-empty `sep`: every occurrence
// separates two fields, so "a,,b" gives "a", "", "b" and "" gives one "".
std::vector<std::string> split_on(std::string_view s, std::string_view sep, int64_t maxsplit);

// Lower/upper case of UTF-8 text: ASCII, Latin-1, Latin Extended-A, Greek and
// Cyrillic letters map as Python's str.lower/upper does (and ß uppercases to
// "SS"); every other code point and any invalid byte is kept as is.
std::string utf8_lower(std::string_view s);
std::string utf8_upper(std::string_view s);

// TfIdfVectorizer, registered by register_string (string_tfidf.cc).
void register_tfidf_vectorizer(Registry& r);

}  // namespace kiln::ops
